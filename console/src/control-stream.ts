/**
 * The console's end of `control`: the shared reliable stream (shared/link/reliable.ts), the same
 * one the rover agent speaks, so that messages to and from the browser are exactly-once and in
 * order across ICE restarts and PeerConnection rebuilds. Every message is a data frame kept until
 * acknowledged; acks are batched; on each opening of `control` we say hello (where our receiver
 * is) and resend what the other side's hello says it lacks. A peer that does not frame `control`
 * (a third-party browser client, see docs/protocol.md `meta.control`) gets raw text both ways.
 *
 * DOM-free: a channel is anything with `readyState` and `send(text)`, so it is unit-tested in
 * Node (test/browser/console-units.test.ts).
 */
import type { Violation } from "../../shared/link/conduct.ts";
import {
  decodeFrame,
  encodeFrame,
  type Frame,
  type ReliableReceiver,
  type ReliableSender,
  WindowError,
} from "../../shared/link/reliable.ts";

export interface ChannelLike {
  readonly readyState: string;
  send(text: string): void;
}

/** The stream state for one peer process: it outlives links (a rebuild makes a new one). */
export interface ControlStreams {
  sender: ReliableSender;
  receiver: ReliableReceiver;
}

export interface ControlStreamOptions extends ControlStreams {
  /** The peer frames `control` (rl1); false: raw text, no guarantees beyond SCTP's. */
  framed: boolean;
  /** A message for the application, in order, once. */
  deliver(text: string): void;
  /** The peer broke the stream protocol (counted by the caller's PeerConduct). */
  violation(kind: Violation, detail: string): void;
  /** Acks are batched: at most one per this long (ms). */
  ackDelayMs?: number;
  /** The peer has every message below sequence number `below` (its ack, or its hello). */
  acked?(below: number): void;
}

const decoder = new TextDecoder();

export class ControlStream {
  readonly framed: boolean;
  #o: ControlStreamOptions;
  /** The `control` channel of the current PeerConnection (null before the first opens). */
  #dc: ChannelLike | null = null;
  /** Channels on which the peer said hello already (each hello asks for a full resend). */
  #helloed = new WeakSet<ChannelLike>();
  #ackTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(o: ControlStreamOptions) {
    this.#o = o;
    this.framed = o.framed;
  }

  /** A `control` channel opened: it carries the stream from now on. Says hello. */
  opened(dc: ChannelLike): void {
    this.#dc = dc;
    if (this.framed) this.#write(dc, this.#o.receiver.hello());
  }

  /** Text that arrived on the `control` channel `dc`. */
  receive(dc: ChannelLike, text: string): void {
    if (!this.framed) {
      this.#o.deliver(text);
      return;
    }
    let f: Frame | null;
    try {
      f = decodeFrame(text);
    } catch (e) {
      this.#o.violation("malformed-frame", e instanceof Error ? e.message : String(e));
      return;
    }
    // Raw text on a framed stream would bypass exactly-once delivery.
    if (!f) {
      this.#o.violation("unexpected-message", "raw text on framed control");
      return;
    }
    switch (f.t) {
      case "d": {
        let out: ReturnType<ReliableReceiver["onData"]>;
        try {
          out = this.#o.receiver.onData(f, performance.now());
        } catch (e) {
          if (!(e instanceof WindowError)) throw e;
          this.#o.violation(e.kind, e.message);
          return;
        }
        for (const p of out) this.#o.deliver(typeof p === "string" ? p : decoder.decode(p));
        this.#scheduleAck(dc);
        return;
      }
      case "a":
        if (!this.#o.sender.onAck(f.n)) this.#o.violation("bad-ack", `ack ${f.n}`);
        else this.#o.acked?.(f.n);
        return;
      case "h": {
        if (this.#helloed.has(dc)) {
          this.#o.violation("hello-flood", "second hello on one channel");
          return;
        }
        this.#helloed.add(dc);
        const sender = this.#o.sender;
        // A hello about another stream (ours from before a reload, or none) acknowledges nothing.
        let n = f.st === sender.stream ? f.n : 0;
        if (n > sender.nextSeq) {
          this.#o.violation("bad-ack", `hello ${n}`);
          n = 0;
        }
        for (const r of sender.resendFrom(n)) this.#write(dc, r);
        if (n > 0) this.#o.acked?.(n);
        return;
      }
    }
  }

  /**
   * Send a message. Framed: kept until acknowledged, sent now if `control` is open, else resent
   * after the next hello; throws BacklogFullError when too much is unacknowledged. Raw: sent if
   * open, else lost (as SCTP would lose it on a rebuild anyway). Returns the message's sequence
   * number (`acked` reports it delivered), or null when raw (nothing will say).
   */
  send(text: string): number | null {
    const dc = this.#dc;
    if (!this.framed) {
      if (dc?.readyState === "open") dc.send(text);
      return null;
    }
    const f = this.#o.sender.send(text);
    if (dc?.readyState === "open") this.#write(dc, f);
    return f.s;
  }

  close(): void {
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
  }

  #scheduleAck(dc: ChannelLike): void {
    if (this.#ackTimer) return;
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = null;
      // The newest channel: an ack is cumulative, any open one will do.
      const target = this.#dc?.readyState === "open" ? this.#dc : dc;
      this.#write(target, this.#o.receiver.ack(performance.now()));
    }, this.#o.ackDelayMs ?? 50);
  }

  #write(dc: ChannelLike, f: Frame): void {
    if (dc.readyState !== "open") return;
    try {
      dc.send(encodeFrame(f));
    } catch {
      // Closing under us: what is unacknowledged goes again after the next hello.
    }
  }
}
