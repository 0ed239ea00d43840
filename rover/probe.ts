/**
 * `--probe`: numbered probe messages on `control`, echoed back by an `--echo` peer, and the
 * figures `--stats-json` writes. Pure: times are passed in.
 */

export interface ProbeMessage {
  t: "probe";
  seq: number;
  ts: number;
  from: string;
  to: string;
}

export function probeMessage(from: string, to: string, seq: number, ts: number): string {
  return JSON.stringify({ t: "probe", seq, ts, from, to } satisfies ProbeMessage);
}

/** A probe of ours that came back, or null. */
export function parseEcho(text: string, self: string): ProbeMessage | null {
  if (!text.startsWith('{"t":"probe"')) return null;
  try {
    const m = JSON.parse(text) as ProbeMessage;
    return m.from === self && Number.isSafeInteger(m.seq) ? m : null;
  } catch {
    return null;
  }
}

export interface ProbeFigures {
  sent: number;
  received: number;
  lost: number;
  duplicated: number;
  reordered: number;
  maxGapMs: number;
  rttMs: { p50: number | null; p99: number | null };
  /** Handovers completed: switches to a backup path, ICE restarts and rebuilds. */
  handovers: number;
  /** Of those, the ones that went through the edge: ICE restarts and rebuilds. */
  restarts: number;
  linkUpMs: number | null;
}

export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? null;
}

export class ProbeStats {
  readonly #start: number;
  #sent = 0;
  #seen = new Set<string>();
  #maxSeq = new Map<string, number>();
  #duplicated = 0;
  #reordered = 0;
  #rtts: number[] = [];
  #handovers = 0;
  #restarts = 0;
  #linkUpAt: number | null = null;
  /** Last echo (or link-up) while the link should be up; null while no link is up. */
  #lastEcho: number | null = null;
  #maxGap = 0;

  constructor(start: number) {
    this.#start = start;
  }

  linkUp(now: number): void {
    if (this.#linkUpAt === null) this.#linkUpAt = now;
    if (this.#lastEcho === null) this.#lastEcho = now;
  }

  /**
   * No link is left to probe (the peers left): the time from here to the next link-up is not a
   * gap. The gap up to now counts when probes were still outstanding.
   */
  linksGone(now: number): void {
    if (this.#lastEcho !== null && this.#seen.size < this.#sent)
      this.#maxGap = Math.max(this.#maxGap, now - this.#lastEcho);
    this.#lastEcho = null;
  }

  /** A handover completed: `kind` "switch" (a backup path, no signaling), "restart" or "rebuild". */
  handover(kind: string): void {
    this.#handovers++;
    if (kind !== "switch") this.#restarts++;
  }

  sent(): void {
    this.#sent++;
  }

  echoed(m: ProbeMessage, now: number): void {
    const key = `${m.to}#${m.seq}`;
    if (this.#seen.has(key)) {
      this.#duplicated++;
      return;
    }
    this.#seen.add(key);
    const max = this.#maxSeq.get(m.to) ?? -1;
    if (m.seq < max) this.#reordered++;
    else this.#maxSeq.set(m.to, m.seq);
    this.#rtts.push(now - m.ts);
    if (this.#lastEcho !== null) this.#maxGap = Math.max(this.#maxGap, now - this.#lastEcho);
    this.#lastEcho = now;
  }

  /** The figures; `now` closes the current gap (only when probes were still outstanding). */
  figures(now: number): ProbeFigures {
    const received = this.#seen.size;
    let maxGap = this.#maxGap;
    if (this.#lastEcho !== null && received < this.#sent)
      maxGap = Math.max(maxGap, now - this.#lastEcho);
    const sorted = [...this.#rtts].sort((a, b) => a - b);
    const round = (x: number | null) => (x === null ? null : Math.round(x * 10) / 10);
    return {
      sent: this.#sent,
      received,
      lost: this.#sent - received,
      duplicated: this.#duplicated,
      reordered: this.#reordered,
      maxGapMs: Math.round(maxGap),
      rttMs: { p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)) },
      handovers: this.#handovers,
      restarts: this.#restarts,
      linkUpMs: this.#linkUpAt === null ? null : this.#linkUpAt - this.#start,
    };
  }
}
