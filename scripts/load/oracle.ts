/**
 * What each peer should receive, derived from what the load clients did (joins, offers,
 * trickles, leaves), and the comparison with what each peer's event stream delivered.
 * An event is identified by its meaning (type + subject), not by its cursor, so that a
 * re-emitted copy under a new cursor counts as a duplicate too.
 */
import type { RoomEvent } from "../../shared/protocol.ts";

export function eventKey(e: RoomEvent): string {
  switch (e.type) {
    case "peer-joined":
    case "peer-updated":
      return `${e.type}:${e.peer.id}`;
    case "peer-left":
      return `${e.type}:${e.peer}`;
    case "nearby":
      return `${e.type}:${e.peers.join(",")}`;
    case "seat-taken":
      return `${e.type}:${e.incarnation}`;
    default:
      return `${e.type}:${e.session}`;
  }
}

export interface Delivery {
  expected: number;
  delivered: number;
  lost: number;
  duplicates: number;
  unexpected: number;
  outOfOrder: number;
  /** Trickled candidates seen before the offer they belong to. */
  causalViolations: number;
  /** A few examples per kind of problem, for the report. */
  examples: string[];
}

export class Oracle {
  readonly #expected = new Map<string, Set<string>>();
  readonly #seen = new Map<string, RoomEvent[]>();

  expect(peer: string, key: string): void {
    const s = this.#expected.get(peer) ?? new Set<string>();
    this.#expected.set(peer, s);
    s.add(key);
  }

  record(peer: string, e: RoomEvent): void {
    const l = this.#seen.get(peer) ?? [];
    this.#seen.set(peer, l);
    l.push(e);
  }

  /** True when the peer has seen every event expected of it so far. */
  caughtUp(peer: string): boolean {
    const want = this.#expected.get(peer);
    if (!want) return true;
    const got = new Set((this.#seen.get(peer) ?? []).map(eventKey));
    for (const k of want) if (!got.has(k)) return false;
    return true;
  }

  compare(): Delivery {
    const d: Delivery = {
      expected: 0,
      delivered: 0,
      lost: 0,
      duplicates: 0,
      unexpected: 0,
      outOfOrder: 0,
      causalViolations: 0,
      examples: [],
    };
    const example = (s: string) => {
      if (d.examples.length < 20) d.examples.push(s);
    };
    const peers = new Set([...this.#expected.keys(), ...this.#seen.keys()]);
    for (const peer of peers) {
      const want = this.#expected.get(peer) ?? new Set<string>();
      const seen = this.#seen.get(peer) ?? [];
      const counts = new Map<string, number>();
      for (const e of seen) counts.set(eventKey(e), (counts.get(eventKey(e)) ?? 0) + 1);
      d.expected += want.size;
      for (const k of want) {
        const n = counts.get(k) ?? 0;
        if (n > 0) d.delivered++;
        else {
          d.lost++;
          example(`${peer}: lost ${k}`);
        }
      }
      for (const [k, n] of counts) {
        if (n > 1) {
          d.duplicates += n - 1;
          example(`${peer}: ${k} delivered ${n} times`);
        }
        if (!want.has(k)) {
          d.unexpected += n;
          example(`${peer}: unexpected ${k}`);
        }
      }
      for (let i = 1; i < seen.length; i++) {
        if (Number((seen[i] as RoomEvent).id) <= Number((seen[i - 1] as RoomEvent).id)) {
          d.outOfOrder++;
          example(
            `${peer}: cursor ${(seen[i] as RoomEvent).id} after ${(seen[i - 1] as RoomEvent).id}`,
          );
        }
      }
      const offered = new Set<string>();
      for (const e of seen) {
        if (e.type === "offer") offered.add(e.session);
        if (e.type === "candidates" && !offered.has(e.session)) {
          d.causalViolations++;
          example(`${peer}: candidates for ${e.session} before its offer`);
        }
      }
    }
    return d;
  }
}
