/**
 * Flow control for `control`: reliable frames wait here until the data channel's send buffer has
 * room, so that a burst never lands in werift (or a browser) all at once. The channel takes frames
 * while its `bufferedAmount` is under `highWater`; it asks again on `bufferedamountlow`, which it
 * fires at `lowWater`. Sans-IO: the caller passes the channel's `bufferedAmount` in and sends what
 * comes out. What waits here is also in the ReliableSender's backlog (bounded there).
 */

export interface OutboxLimits {
  /** Stop handing frames to the channel once this many bytes are buffered in it. */
  highWater: number;
  /** The channel's bufferedAmountLowThreshold: below it, the outbox is asked to refill. */
  lowWater: number;
}

export const DEFAULT_OUTBOX_LIMITS: Readonly<OutboxLimits> = Object.freeze({
  highWater: 1024 * 1024,
  lowWater: 256 * 1024,
});

/** An encoded frame: JSON text, or a binary data frame. */
export type WireFrame = string | Uint8Array;

/** What the channel counts for it in bufferedAmount: UTF-16 code units of text, bytes of bytes. */
const sizeOf = (f: WireFrame) => (typeof f === "string" ? f.length : f.byteLength);

export class Outbox {
  readonly limits: OutboxLimits;
  #queue: WireFrame[] = [];
  /** Index of the next frame to release (the queue is compacted when it is used up). */
  #head = 0;
  #bytes = 0;
  /** The caller was told to wait (a push returned false) and has not been told to go on yet. */
  #blocked = false;

  constructor(limits: Partial<OutboxLimits> = {}) {
    this.limits = { ...DEFAULT_OUTBOX_LIMITS, ...limits };
    if (!(this.limits.lowWater < this.limits.highWater))
      throw new RangeError("outbox lowWater must be below highWater");
  }

  /** Frames waiting, and their size (as the channel counts them: see sizeOf). */
  get pending(): { frames: number; bytes: number } {
    return { frames: this.#queue.length - this.#head, bytes: this.#bytes };
  }

  /**
   * Queue a frame. False when the caller should wait for `drained` before it sends more (like
   * Node's `stream.write`); the frame is kept either way.
   */
  push(frame: WireFrame, buffered: number): boolean {
    this.#queue.push(frame);
    this.#bytes += sizeOf(frame);
    const ok = buffered + this.#bytes < this.limits.highWater;
    if (!ok) this.#blocked = true;
    return ok;
  }

  /** Replace everything waiting (a resend from the peer's hello supersedes it). */
  replace(frames: WireFrame[]): void {
    this.#queue = [...frames];
    this.#head = 0;
    this.#bytes = frames.reduce((n, f) => n + sizeOf(f), 0);
  }

  /** Forget what waits (the channel closed; the sender's backlog still has it). */
  clear(): void {
    this.replace([]);
  }

  /** Frames to hand to the channel now, given what it has buffered; in order. */
  take(buffered: number): WireFrame[] {
    const out: WireFrame[] = [];
    let room = this.limits.highWater - buffered;
    while (this.#head < this.#queue.length && room > 0) {
      const f = this.#queue[this.#head++] as WireFrame;
      out.push(f);
      const n = sizeOf(f);
      room -= n;
      this.#bytes -= n;
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    }
    return out;
  }

  /**
   * True once, when a caller was told to wait and there is room again: nothing waits here and the
   * channel is below its low-water mark.
   */
  drained(buffered: number): boolean {
    if (!this.#blocked || this.#head < this.#queue.length || buffered > this.limits.lowWater)
      return false;
    this.#blocked = false;
    return true;
  }

  /**
   * For frames on their way here that are not pushed yet (a durable outbox commits in batches):
   * whether `extra` bytes more stay under the high-water mark. False, like push: the caller is to
   * wait for `drained`.
   */
  admit(extra: number, buffered: number): boolean {
    const ok = buffered + this.#bytes + extra < this.limits.highWater;
    if (!ok) this.#blocked = true;
    return ok;
  }

  /** Whether a push now would be accepted without asking the caller to wait. */
  writable(buffered: number): boolean {
    return !this.#blocked && buffered + this.#bytes < this.limits.highWater;
  }
}
