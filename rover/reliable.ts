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
 * Overflow: at most `maxBacklog` unacknowledged messages; `send` then throws BacklogFullError
 * (the caller counts and reports it) rather than silently dropping anything already accepted.
 */

export type Payload = string | Uint8Array;

export type Frame =
  | { rl: 1; t: "d"; st: string; s: number; p: string; b?: 1 }
  | { rl: 1; t: "a"; n: number }
  | { rl: 1; t: "h"; st: string; n: number };

export class FrameError extends Error {}
export class BacklogFullError extends Error {}

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
  #next = 0;
  #unacked = new Map<number, Frame & { t: "d" }>();
  #bytes = 0;
  #stats = { sent: 0, resent: 0, acked: 0, rejected: 0 };

  constructor(opts: { stream?: string; maxBacklog?: number } = {}) {
    this.stream = opts.stream ?? Math.random().toString(36).slice(2, 10);
    this.maxBacklog = opts.maxBacklog ?? 10_000;
  }

  /** Wrap a message; keep it until acknowledged. Throws BacklogFullError when full. */
  send(payload: Payload): Frame {
    if (this.#unacked.size >= this.maxBacklog) {
      this.#stats.rejected++;
      throw new BacklogFullError(
        `control backlog full (${this.maxBacklog} unacknowledged messages)`,
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

  /** Cumulative ack: everything below `n` arrived. */
  onAck(n: number): void {
    for (const [s, f] of this.#unacked) {
      if (s >= n) break;
      this.#unacked.delete(s);
      this.#bytes -= f.p.length;
      this.#stats.acked++;
    }
  }

  /** The other side (re)opened and expects `n` next: frames to send again, in order. */
  resendFrom(n: number): Frame[] {
    this.onAck(n);
    const out = [...this.#unacked.values()];
    this.#stats.resent += out.length;
    return out;
  }

  backlog(): { messages: number; bytes: number } {
    return { messages: this.#unacked.size, bytes: this.#bytes };
  }

  stats(): SenderStats {
    return { ...this.#stats, backlog: this.#unacked.size, backlogBytes: this.#bytes };
  }
}

export class ReliableReceiver {
  #stream: string | null = null;
  #expected = 0;
  duplicates = 0;
  /** Out-of-order frames ahead of a gap (SCTP keeps order; only a resend overlap can do this). */
  #ahead = new Map<number, Frame & { t: "d" }>();

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
    }
    if (f.s < this.#expected || this.#ahead.has(f.s)) {
      this.duplicates++;
      return [];
    }
    this.#ahead.set(f.s, f);
    const out: Payload[] = [];
    for (let g = this.#ahead.get(this.#expected); g; g = this.#ahead.get(this.#expected)) {
      this.#ahead.delete(this.#expected);
      this.#expected++;
      out.push(g.b ? fromBase64(g.p) : g.p);
    }
    return out;
  }
}
