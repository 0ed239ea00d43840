/**
 * What a remote peer may get away with on a link, sans-IO: every protocol violation it commits
 * (broken frames, out-of-window data, floods) is counted and costs it from a leaky bucket; past
 * the budget the link is dropped. Occasional garbage (a bug, a bit flip) is tolerated, a peer
 * that keeps sending it is not. Rate gates bound the work one peer can make us do in answer
 * (pongs, resends). Events and a clock in, verdicts out; tested in test/shared/link/conduct.test.ts.
 */

export type Violation =
  /** A `control` frame that does not decode (bad JSON, unknown type, bad fields). */
  | "malformed-frame"
  /** A health probe on `telemetry` that does not decode. */
  | "malformed-probe"
  /** Something our protocol never sends on that channel (binary or raw text on `control`). */
  | "unexpected-message"
  /** A data frame too far ahead of the next expected one (window in messages). */
  | "out-of-window"
  /** Data waiting ahead of a gap past the byte bound. */
  | "reorder-overflow"
  /** An acknowledgement of messages we never sent. */
  | "bad-ack"
  /** Pings faster than any policy of ours sends them. */
  | "probe-flood"
  /** A second hello on one channel (each asks us to resend our whole backlog). */
  | "hello-flood"
  /** More data channels than a link may have, or a channel label past the limit. */
  | "channel-flood"
  /** A fragment of a large message that breaks reassembly (order, size, encoding). */
  | "bad-fragment"
  /** A large message declared past the receiver's `maxMessageBytes`. */
  | "oversized-message"
  /** A file transfer breaking its protocol (rover/file-transfer.ts): bad names, sizes, bytes. */
  | "bad-transfer"
  /**
   * A request the rover refuses (a forward to a port not allowed, a file it will not take):
   * cheap, a person retrying is fine, a flood of them is not (each was a warn line).
   */
  | "refused-request"
  /**
   * A file transfer the peer gave up after the rover took it (a part file made and removed, two
   * log lines): cheap, as a person stopping a transfer is fine; ~50 a second were not.
   */
  | "abandoned-transfer"
  /** A new `control` stream on a live link (each restarts the receiver, and was a warn line). */
  | "stream-churn"
  /**
   * An ICE restart past the restart rate (by re-POST or PATCH): not carried out. Each one that
   * never completes left werift polling its check list every 20 ms, for good (docs/werift-patches.md).
   */
  | "restart-flood"
  /** Remote ICE candidates past the bound for one ICE session (rover/candidate-exchange.ts). */
  | "candidate-flood";

export interface ConductConfig {
  /** Cost a peer may accumulate before its link is dropped. */
  budget: number;
  /** Cost forgiven per second. */
  forgivePerS: number;
  /** What each violation costs. */
  cost: Record<Violation, number>;
  /** Pings answered per second at most (our own policy sends at most 4/s). */
  pongsPerS: number;
  /** ICE restarts by the peer carried out at once at most (a flapping uplink restarts in bursts). */
  restartBurst: number;
  /** ICE restarts by the peer carried out per minute at most once the burst is spent. */
  restartsPerMin: number;
  /**
   * The peer's ICE restarts carried out on one PeerConnection with none completing: past this,
   * the next is refused. Each one werift starts and never completes leaves a check-list poller
   * running until the connection closes (docs/werift-patches.md); our own policy rebuilds after 4.
   */
  maxUnfinishedRestarts: number;
}

export const DEFAULT_CONDUCT: Readonly<ConductConfig> = Object.freeze({
  budget: 20,
  forgivePerS: 1,
  cost: Object.freeze({
    "malformed-frame": 1,
    "malformed-probe": 1,
    "unexpected-message": 1,
    "out-of-window": 5,
    "reorder-overflow": 21,
    "bad-ack": 5,
    "probe-flood": 0.1,
    "hello-flood": 1,
    "channel-flood": 5,
    "bad-fragment": 5,
    "oversized-message": 5,
    "bad-transfer": 5,
    "refused-request": 1,
    "abandoned-transfer": 1,
    "stream-churn": 5,
    "restart-flood": 3,
    "candidate-flood": 5,
  }),
  pongsPerS: 20,
  // Our own policy: at most 4 restarts in a series (~10 s), then a rebuild (a new session).
  restartBurst: 10,
  restartsPerMin: 30,
  maxUnfinishedRestarts: 6,
});

export type Verdict = "tolerate" | "drop";

export class PeerConduct {
  readonly config: ConductConfig;
  #level = 0;
  #at: number;
  #counts = new Map<Violation, number>();
  #pongTokens: number;
  #pongAt: number;
  #restartTokens: number;
  #restartAt: number;
  #unfinishedRestarts = 0;
  #dropped = false;

  constructor(config: Partial<ConductConfig> = {}, now = 0) {
    this.config = {
      ...DEFAULT_CONDUCT,
      ...config,
      cost: { ...DEFAULT_CONDUCT.cost, ...config.cost },
    };
    this.#at = now;
    this.#pongAt = now;
    this.#pongTokens = this.config.pongsPerS;
    this.#restartAt = now;
    this.#restartTokens = this.config.restartBurst;
  }

  /** A violation happened: tolerated, or the link must go (once "drop", always "drop"). */
  onViolation(kind: Violation, now: number): Verdict {
    this.#counts.set(kind, (this.#counts.get(kind) ?? 0) + 1);
    const forgiven = (Math.max(0, now - this.#at) / 1000) * this.config.forgivePerS;
    this.#level = Math.max(0, this.#level - forgiven) + this.config.cost[kind];
    this.#at = now;
    if (this.#level > this.config.budget) this.#dropped = true;
    return this.#dropped ? "drop" : "tolerate";
  }

  /** May we answer this ping? (Token bucket; a refused one is a `probe-flood` violation.) */
  allowPong(now: number): boolean {
    const rate = this.config.pongsPerS;
    this.#pongTokens = Math.min(
      rate,
      this.#pongTokens + (Math.max(0, now - this.#pongAt) / 1000) * rate,
    );
    this.#pongAt = now;
    if (this.#pongTokens < 1) return false;
    this.#pongTokens -= 1;
    return true;
  }

  /**
   * Whether to carry out the peer's ICE restart now: null to carry it out (it counts as
   * unfinished until restartsSettled()), else why not. A refused one is a `restart-flood`.
   */
  restartRefusal(now: number): string | null {
    const max = this.config.maxUnfinishedRestarts;
    if (this.#unfinishedRestarts >= max) return `after ${max} that did not complete`;
    if (!this.allowRestart(now)) return "past the restart rate";
    this.#unfinishedRestarts++;
    return null;
  }

  /** The ICE session settled (a restart or a rebuild completed, a new PeerConnection). */
  restartsSettled(): void {
    this.#unfinishedRestarts = 0;
  }

  /** May we carry out the peer's ICE restart, by rate alone? (Token bucket.) */
  allowRestart(now: number): boolean {
    const c = this.config;
    const refill = (Math.max(0, now - this.#restartAt) / 60_000) * c.restartsPerMin;
    this.#restartTokens = Math.min(c.restartBurst, this.#restartTokens + refill);
    this.#restartAt = now;
    if (this.#restartTokens < 1) return false;
    this.#restartTokens -= 1;
    return true;
  }

  get dropped(): boolean {
    return this.#dropped;
  }

  /** Violations so far, by kind. */
  counts(): Partial<Record<Violation, number>> {
    return Object.fromEntries(this.#counts);
  }

  total(): number {
    let n = 0;
    for (const v of this.#counts.values()) n += v;
    return n;
  }
}

export interface QuarantineConfig {
  /** How long a peer is refused after its first drop (ms); doubled per further strike. */
  firstMs: number;
  /** The longest refusal, and how long strikes are remembered after one ends (ms). */
  maxMs: number;
}

export const DEFAULT_QUARANTINE: Readonly<QuarantineConfig> = Object.freeze({
  firstMs: 60_000,
  maxMs: 3_600_000,
});

/**
 * Peers whose link was dropped for misbehaving are refused (their offers declined, no offers to
 * them) for a while, longer for each strike. Sans-IO.
 */
export class Quarantine {
  readonly config: QuarantineConfig;
  #peers = new Map<
    string,
    { until: number; strikes: number; declined: number; released: boolean }
  >();

  constructor(config: Partial<QuarantineConfig> = {}) {
    this.config = { ...DEFAULT_QUARANTINE, ...config };
  }

  /** A strike against `peer`: how long it is refused now (ms). */
  strike(peer: string, now: number): number {
    const strikes = (this.#peers.get(peer)?.strikes ?? 0) + 1;
    const ms = Math.min(this.config.firstMs * 2 ** (strikes - 1), this.config.maxMs);
    this.#peers.set(peer, { until: now + ms, strikes, declined: 0, released: false });
    return ms;
  }

  refused(peer: string, now: number): boolean {
    const q = this.#peers.get(peer);
    return q !== undefined && now < q.until;
  }

  /** An offer from a refused peer was declined: true for the first of this refusal (to log). */
  declined(peer: string): boolean {
    const q = this.#peers.get(peer);
    return q !== undefined && q.declined++ === 0;
  }

  /** Whether a refusal is still to end (the agent sweeps often only then). */
  get refusing(): boolean {
    for (const q of this.#peers.values()) if (!q.released) return true;
    return false;
  }

  /** Peers whose refusal ended since the last call; strikes are forgotten after `maxMs` more. */
  released(now: number): string[] {
    const out: string[] = [];
    for (const [peer, q] of this.#peers) {
      if (now < q.until) continue;
      if (!q.released) out.push(peer);
      q.released = true;
      if (now - q.until >= this.config.maxMs) this.#peers.delete(peer);
    }
    return out;
  }
}
