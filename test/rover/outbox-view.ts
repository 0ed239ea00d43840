/** The applications' own records in the outbox tests: what the sender sent, what the receiver got. */
import { DatabaseSync } from "node:sqlite";

export function appView(
  senderDb: string,
  receiverDb: string,
): { sent: number[]; sentPayloads: string[] | null; got: string[] } {
  const s = new DatabaseSync(senderDb);
  const r = new DatabaseSync(receiverDb);
  try {
    const sent = s
      .prepare("SELECT i FROM app_sent ORDER BY i")
      .all()
      .map((x) => Number(x.i));
    // Applications that record the payload they sent with its number (test/rover/outbox-pump.ts).
    const hasPayload = s
      .prepare("PRAGMA table_info(app_sent)")
      .all()
      .some((c) => c.name === "p");
    const sentPayloads = hasPayload
      ? s
          .prepare("SELECT p FROM app_sent ORDER BY i")
          .all()
          .map((x) => String(x.p))
      : null;
    const got = r
      .prepare("SELECT m FROM app_got ORDER BY k")
      .all()
      .map((x) => String(x.m));
    return { sent, sentPayloads, got };
  } finally {
    s.close();
    r.close();
  }
}

export interface Tally {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
  reordered: number;
  /** Got but never sent (e.g. from another sender, or corrupted). */
  unexpected: number;
}

/**
 * Count one direction from the applications' records: `sent` the numbers the sender recorded,
 * `got` the messages the receiver recorded in order, each `${prefix}${number}`.
 */
export function tally(sent: number[], got: string[], prefix: string): Tally {
  const want = new Set(sent);
  const seen = new Set<number>();
  let duplicated = 0;
  let reordered = 0;
  let unexpected = 0;
  let highest = -1;
  for (const m of got) {
    const n = m.startsWith(prefix) ? Number(m.slice(prefix.length)) : Number.NaN;
    if (!want.has(n)) {
      unexpected++;
      continue;
    }
    if (seen.has(n)) {
      duplicated++;
      continue;
    }
    seen.add(n);
    if (n < highest) reordered++;
    highest = Math.max(highest, n);
  }
  return {
    sent: sent.length,
    delivered: seen.size,
    lost: want.size - seen.size,
    duplicated,
    reordered,
    unexpected,
  };
}
