/**
 * Exactly-once, in-order delivery on `control` across ICE restarts and full PeerConnection
 * rebuilds. SCTP is reliable only while its association lives; a rebuilt PeerConnection loses
 * whatever was in flight. So each message carries a sequence number, the receiver acknowledges
 * cumulatively, the sender keeps what is not acknowledged and resends it when a channel
 * (re)opens and the other side says where it is (`hello`). Sans-IO: frames in, frames out.
 *
 * Wire format (JSON text frames; `rl` marks them so that raw text from a browser passes through):
 *   {"rl":1,"t":"d","st":"<stream>","s":<seq>,"p":"<payload>"[,"b":1]}  data (b: payload is base64)
 *   {"rl":1,"t":"a","n":<next expected seq>}                             cumulative ack
 *   {"rl":1,"t":"h","st":"<stream>","n":<next expected seq>}             hello on (re)open
 * `st` names the sender's stream (one per agent process): a new stream resets the receiver.
 *
 * Overflow: at most `maxBacklog` unacknowledged messages and `maxBacklogBytes` of payload; `send`
 * then throws BacklogFullError (the caller counts and reports it) rather than silently dropping
 * anything already accepted.
 *
 * The other side is not trusted: the receiver holds frames ahead of a gap only within a window
 * (`maxAhead` messages past the next expected one, `maxAheadBytes` in all) and throws WindowError
 * for one outside it, keeping nothing; the sender ignores acknowledgements of messages it never
 * sent. A well-behaved peer never comes near either bound (SCTP delivers `control` in order; gaps
 * come only from a resend overlapping what was in flight).
 */

export type Payload = string | Uint8Array;

export type Frame =
  | { rl: 1; t: "d"; st: string; s: number; p: string; b?: 1 }
  | { rl: 1; t: "a"; n: number }
  | { rl: 1; t: "h"; st: string; n: number };

export class FrameError extends Error {}
export class BacklogFullError extends Error {}
/** A data frame outside the receive window; `kind` names the bound it broke. */
export class WindowError extends FrameError {
  readonly kind: "out-of-window" | "reorder-overflow";
  constructor(kind: "out-of-window" | "reorder-overflow", message: string) {
    super(message);
    this.kind = kind;
  }
}

function toBase64(u: Uint8Array): string {
  let s = "";
  for (const b of u) s += String.fromCharCode(b);
  return btoa(s);
}

function fromBase64(s: string): Uint8Array {
  const bin = atob(s);
  const u = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
  return u;
}

export function encodeFrame(f: Frame): string {
  return JSON.stringify(f);
}

/** A frame, or null when the text is not one of ours (raw application text). Throws on a broken frame. */
export function decodeFrame(text: string): Frame | null {
  if (!text.startsWith('{"rl":')) return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new FrameError("reliable frame is not valid JSON");
  }
  const f = v as Record<string, unknown>;
  if (f.rl !== 1) throw new FrameError(`unknown reliable frame version ${String(f.rl)}`);
  const int = (x: unknown) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
  switch (f.t) {
    case "d":
      if (typeof f.st !== "string" || !int(f.s) || typeof f.p !== "string")
        throw new FrameError("bad data frame");
      return f as Frame;
    case "a":
      if (!int(f.n)) throw new FrameError("bad ack frame");
      return f as Frame;
    case "h":
      if (typeof f.st !== "string" || !int(f.n)) throw new FrameError("bad hello frame");
      return f as Frame;
    default:
      throw new FrameError(`unknown reliable frame type ${String(f.t)}`);
  }
}

export interface SenderStats {
  sent: number;
  resent: number;
  acked: number;
  backlog: number;
  backlogBytes: number;
  rejected: number;
}

export class ReliableSender {
  readonly stream: string;
  readonly maxBacklog: number;
  readonly maxBacklogBytes: number;
  #next = 0;
  #unacked = new Map<number, Frame & { t: "d" }>();
  #bytes = 0;
  #stats = { sent: 0, resent: 0, acked: 0, rejected: 0 };

  constructor(opts: { stream?: string; maxBacklog?: number; maxBacklogBytes?: number } = {}) {
    this.stream = opts.stream ?? Math.random().toString(36).slice(2, 10);
    this.maxBacklog = opts.maxBacklog ?? 10_000;
    this.maxBacklogBytes = opts.maxBacklogBytes ?? 32 * 1024 * 1024;
  }

  /** Wrap a message; keep it until acknowledged. Throws BacklogFullError when full. */
  send(payload: Payload): Frame {
    if (this.#unacked.size >= this.maxBacklog) {
      this.#stats.rejected++;
      throw new BacklogFullError(
        `control backlog full (${this.maxBacklog} unacknowledged messages)`,
      );
    }
    if (this.#bytes >= this.maxBacklogBytes) {
      this.#stats.rejected++;
      throw new BacklogFullError(
        `control backlog full (${this.maxBacklogBytes} bytes unacknowledged)`,
      );
    }
    const f: Frame & { t: "d" } =
      typeof payload === "string"
        ? { rl: 1, t: "d", st: this.stream, s: this.#next, p: payload }
        : { rl: 1, t: "d", st: this.stream, s: this.#next, p: toBase64(payload), b: 1 };
    this.#next++;
    this.#unacked.set(f.s, f);
    this.#bytes += f.p.length;
    this.#stats.sent++;
    return f;
  }

  /** Cumulative ack: everything below `n` arrived. False (and ignored) past what was sent. */
  onAck(n: number): boolean {
    if (n > this.#next) return false;
    for (const [s, f] of this.#unacked) {
      if (s >= n) break;
      this.#unacked.delete(s);
      this.#bytes -= f.p.length;
      this.#stats.acked++;
    }
    return true;
  }

  /**
   * The other side (re)opened and expects `n` next: frames to send again, in order. A hello
   * claiming more than was sent is a lie (or the other side's state of an older stream): it
   * acknowledges nothing and everything unacknowledged goes again.
   */
  resendFrom(n: number): Frame[] {
    this.onAck(n);
    const out = [...this.#unacked.values()];
    this.#stats.resent += out.length;
    return out;
  }

  /** The sequence number the next message gets (everything below it was sent). */
  get nextSeq(): number {
    return this.#next;
  }

  backlog(): { messages: number; bytes: number } {
    return { messages: this.#unacked.size, bytes: this.#bytes };
  }

  stats(): SenderStats {
    return { ...this.#stats, backlog: this.#unacked.size, backlogBytes: this.#bytes };
  }
}

export interface ReceiverLimits {
  /** How far past the next expected sequence number a frame may be held (messages). */
  maxAhead: number;
  /** Payload bytes held ahead of a gap, in all. */
  maxAheadBytes: number;
}

export const DEFAULT_RECEIVER_LIMITS: Readonly<ReceiverLimits> = Object.freeze({
  maxAhead: 1_024,
  maxAheadBytes: 4 * 1024 * 1024,
});

export class ReliableReceiver {
  readonly limits: ReceiverLimits;
  #stream: string | null = null;
  #expected = 0;
  duplicates = 0;
  /** Out-of-order frames ahead of a gap (SCTP keeps order; only a resend overlap can do this). */
  #ahead = new Map<number, Frame & { t: "d" }>();
  #aheadBytes = 0;

  constructor(limits: Partial<ReceiverLimits> = {}) {
    this.limits = { ...DEFAULT_RECEIVER_LIMITS, ...limits };
  }

  /** Frames and payload bytes held ahead of a gap now. */
  held(): { messages: number; bytes: number } {
    return { messages: this.#ahead.size, bytes: this.#aheadBytes };
  }

  nextExpected(): number {
    return this.#expected;
  }

  hello(): Frame & { t: "h" } {
    return { rl: 1, t: "h", st: this.#stream ?? "", n: this.#expected };
  }

  ack(): Frame & { t: "a" } {
    return { rl: 1, t: "a", n: this.#expected };
  }

  /** A data frame arrived: the payloads now deliverable, in order (possibly none). */
  onData(f: Frame & { t: "d" }): Payload[] {
    if (this.#stream !== f.st) {
      // A new sender stream (the other agent restarted): start over.
      this.#stream = f.st;
      this.#expected = 0;
      this.#ahead.clear();
      this.#aheadBytes = 0;
    }
    if (f.s < this.#expected || this.#ahead.has(f.s)) {
      this.duplicates++;
      return [];
    }
    if (f.s > this.#expected) {
      // Held until the gap fills: only within the window.
      if (f.s - this.#expected > this.limits.maxAhead)
        throw new WindowError(
          "out-of-window",
          `data frame ${f.s} is more than ${this.limits.maxAhead} past ${this.#expected}`,
        );
      if (this.#aheadBytes + f.p.length > this.limits.maxAheadBytes)
        throw new WindowError(
          "reorder-overflow",
          `more than ${this.limits.maxAheadBytes} bytes held ahead of a gap`,
        );
      this.#aheadBytes += f.p.length;
    }
    this.#ahead.set(f.s, f);
    const out: Payload[] = [];
    for (let g = this.#ahead.get(this.#expected); g; g = this.#ahead.get(this.#expected)) {
      this.#ahead.delete(this.#expected);
      if (g !== f) this.#aheadBytes -= g.p.length;
      this.#expected++;
      out.push(g.b ? fromBase64(g.p) : g.p);
    }
    return out;
  }
}
