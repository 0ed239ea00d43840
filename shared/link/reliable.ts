/**
 * Exactly-once, in-order delivery on `control` across ICE restarts and full PeerConnection
 * rebuilds. SCTP is reliable only while its association lives; a rebuilt PeerConnection loses
 * whatever was in flight. So each message carries a sequence number, the receiver acknowledges
 * cumulatively, the sender keeps what is not acknowledged and resends it when a channel
 * (re)opens and the other side says where it is (`hello`). Sans-IO: frames in, frames out.
 *
 * Wire format (JSON text frames; `rl` marks them so that raw text from a browser passes through):
 *   {"rl":1,"t":"d","st":"<stream>","s":<seq>,"p":"<payload>"[,"b":1]}  data (b: payload is base64)
 *   00 72 6c 01 <header length, u16 BE> {"rl":1,"t":"d",...,"b":1} <bytes>
 *                                    binary data frame: the same fields but `p`, then the payload
 *   {"rl":1,"t":"d","st":"<stream>","s":<seq>,"p":"","e":1}              expired: fills the place of
 *                                                                        a message whose TTL passed
 *   {"rl":1,"t":"d",...,"m":1[,"z":<bytes>][,"u":1]}                      a fragment of a large message
 *   {"rl":1,"t":"a","n":<next expected seq>[,"d":<ms>]}                  cumulative ack; d: how long
 *                                                                        it was held after the newest
 *                                                                        data it covers arrived
 *   {"rl":1,"t":"h","st":"<stream>","n":<next expected seq>[,"bf":1]}    hello on (re)open
 * `st` names the sender's stream (one per agent process): a new stream resets the receiver.
 * Binary data frames (docs/reliability.md, "Binary frames"): bytes go as they are instead of in
 * base64 (a third more on the wire, and encoding at both ends), but only to a peer whose hello on
 * this channel carried `bf` (it can read them); anyone else gets JSON. Senders keep bytes as bytes
 * and choose the encoding per channel when a frame is written (`encodeWire`).
 *
 * Large messages (docs/reliability.md, "Large messages"): a message whose frame would not fit in
 * the peer's SCTP max-message-size is sent as consecutive fragments, each its own data frame
 * (own sequence number, acknowledged and resent like any other). The first carries `z` (the whole
 * message's size in bytes, checked against the receiver's limit before anything is kept) and,
 * for text, `u` (the bytes are UTF-8); every fragment but the last carries `m` (more follow).
 * Fragment payloads are always base64 bytes. The receiver reassembles in order and acknowledges
 * (and keeps as delivered) only whole messages, so a crash mid-message resends all of it.
 *
 * Persistence (docs/reliability.md): both ends take an injected, synchronous store (SenderStore,
 * ReceiverStore); the default keeps nothing (in-memory). A store may batch: then a frame is
 * transmitted only once the store says it is durable (`onDurable`), and the receiver acknowledges
 * (and says hello with) only its durable high-water mark, so a crash of either end neither loses
 * an acknowledged message nor delivers one twice.
 *
 * TTL: a message may carry a time to live; once it has passed, the sender sends an expired
 * placeholder in its place (the receiver counts it and moves on) instead of the message.
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

/** A frame's payload: text, or (`b`) bytes, kept as bytes or as the base64 that JSON carried. */
export type FramePayload = string | Uint8Array;

/** Fragment fields of a data frame: more follow, declared size (first), UTF-8 text (first). */
export interface FragmentFields {
  m?: 1;
  z?: number;
  u?: 1;
}

export type Frame =
  | ({ rl: 1; t: "d"; st: string; s: number; p: FramePayload; b?: 1; e?: 1 } & FragmentFields)
  | { rl: 1; t: "a"; n: number; d?: number }
  | { rl: 1; t: "h"; st: string; n: number; bf?: 1 };

/**
 * The most an ack may say it was held (ms): ours are held 50 ms at most. A larger claim is a
 * broken peer (RTT figures take the delay off only down to the path's minimum anyway).
 */
export const MAX_ACK_DELAY_MS = 10_000;

/** Arrival times kept for acks to come (a burst between two acks; more is a stalled store). */
const MAX_ARRIVALS = 16_384;

export class FrameError extends Error {}
export class BacklogFullError extends Error {
  override name = "BacklogFullError";
}
/** A message larger than the sender's bound (`maxMessageBytes`): not accepted. */
export class MessageTooLargeError extends RangeError {
  override name = "MessageTooLargeError";
}
/** A fragment that breaks reassembly; `kind` names what it broke. */
export class FragmentError extends FrameError {
  readonly kind: "bad-fragment" | "oversized-message";
  constructor(kind: "bad-fragment" | "oversized-message", message: string) {
    super(message);
    this.kind = kind;
  }
}
/** A data frame outside the receive window; `kind` names the bound it broke. */
export class WindowError extends FrameError {
  readonly kind: "out-of-window" | "reorder-overflow";
  constructor(kind: "out-of-window" | "reorder-overflow", message: string) {
    super(message);
    this.kind = kind;
  }
}

/** Node's Buffer when there is one (a byte-at-a-time loop is ~50x slower on a 16 MiB message). */
const NodeBuffer = (
  globalThis as {
    Buffer?: {
      from(
        a: ArrayBufferLike | string,
        b?: number | string,
        c?: number,
      ): Uint8Array & {
        toString(enc: string): string;
      };
    };
  }
).Buffer;

function toBase64(u: Uint8Array): string {
  if (NodeBuffer) return NodeBuffer.from(u.buffer, u.byteOffset, u.byteLength).toString("base64");
  let s = "";
  for (const b of u) s += String.fromCharCode(b);
  return btoa(s);
}

function fromBase64(s: string): Uint8Array {
  if (NodeBuffer) {
    const b = NodeBuffer.from(s, "base64");
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  }
  const bin = atob(s);
  const u = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
  return u;
}

/** The frame as JSON text (bytes in base64): what every peer reads. */
export function encodeFrame(f: Frame): string {
  if (f.t === "d" && typeof f.p !== "string") return JSON.stringify({ ...f, p: toBase64(f.p) });
  return JSON.stringify(f);
}

/** First bytes of a binary data frame: NUL (never the start of text we send), "rl", version 1. */
const BINARY_MAGIC = [0x00, 0x72, 0x6c, 0x01] as const;
const BINARY_HEAD = BINARY_MAGIC.length + 2;
/** The longest JSON header a binary frame may have. */
const MAX_BINARY_HEADER = 512;
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
/** A reassembled text message: invalid bytes become U+FFFD, as a data channel's own strings do. */
const toText = new TextDecoder();

/**
 * The frame as it goes to a channel: a data frame holding bytes as a binary frame when the peer
 * reads them (`binary`: its hello on this channel said `bf`), else JSON text.
 */
export function encodeWire(f: Frame, binary: boolean): string | Uint8Array {
  if (!binary || f.t !== "d" || !f.b) return encodeFrame(f);
  const { p, ...fields } = f;
  const bytes = typeof p === "string" ? fromBase64(p) : p;
  const head = utf8.encode(JSON.stringify(fields));
  const out = new Uint8Array(BINARY_HEAD + head.byteLength + bytes.byteLength);
  out.set(BINARY_MAGIC);
  out[4] = head.byteLength >>> 8;
  out[5] = head.byteLength & 0xff;
  out.set(head, BINARY_HEAD);
  out.set(bytes, BINARY_HEAD + head.byteLength);
  return out;
}

/**
 * A binary data frame, or null when the bytes are not one (raw application bytes). Throws on a
 * broken one. The payload is a view into `u`.
 */
export function decodeBinaryFrame(u: Uint8Array): Frame | null {
  if (u.byteLength < BINARY_HEAD || BINARY_MAGIC.some((b, i) => u[i] !== b)) return null;
  const n = ((u[4] as number) << 8) | (u[5] as number);
  if (BINARY_HEAD + n > u.byteLength) throw new FrameError("binary frame header runs past its end");
  // Ours are under 100 bytes. The payload is a view into `u`: a long header would be held with it.
  if (n > MAX_BINARY_HEADER)
    throw new FrameError(`binary frame header of ${n} bytes (at most ${MAX_BINARY_HEADER})`);
  let v: unknown;
  try {
    v = JSON.parse(fromUtf8.decode(u.subarray(BINARY_HEAD, BINARY_HEAD + n)));
  } catch {
    throw new FrameError("binary frame header is not valid JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new FrameError("binary frame header is not an object");
  const h = v as Record<string, unknown>;
  if (h.t !== "d" || h.b !== 1 || "p" in h)
    throw new FrameError("a binary frame carries data bytes only");
  return checkFrame({ ...h, p: u.subarray(BINARY_HEAD + n) });
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
  return checkFrame(v as Record<string, unknown>);
}

/** The longest stream id a frame may carry (ours are 8 characters). */
const MAX_STREAM_ID = 64;

/**
 * A data frame of the fields we know, nothing else: frames held ahead of a gap or in a message
 * being reassembled are kept as built here, and a peer's own extra fields (60 KB of them per
 * frame) were kept with them, past the bounds that count payload bytes.
 */
function dataFrame(f: Record<string, unknown>): DataFrame {
  const d: DataFrame = {
    rl: 1,
    t: "d",
    st: f.st as string,
    s: f.s as number,
    p: f.p as FramePayload,
  };
  if (f.b === 1) d.b = 1;
  if (f.e === 1) d.e = 1;
  if (f.m === 1) d.m = 1;
  if (f.u === 1) d.u = 1;
  if (f.z !== undefined) d.z = f.z as number;
  return d;
}

/** A parsed frame's fields checked (its payload: a string, or bytes from a binary frame). */
function checkFrame(f: Record<string, unknown>): Frame {
  if (f.rl !== 1) throw new FrameError(`unknown reliable frame version ${String(f.rl)}`);
  const int = (x: unknown) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
  // Stream ids are ours (8 characters); a long one was kept, stored and sent back in hellos.
  const stream = (x: unknown) => typeof x === "string" && x.length <= MAX_STREAM_ID;
  switch (f.t) {
    case "d":
      if (!stream(f.st) || !int(f.s) || (typeof f.p !== "string" && !(f.p instanceof Uint8Array)))
        throw new FrameError("bad data frame");
      if (
        (f.m !== undefined && f.m !== 1) ||
        (f.u !== undefined && f.u !== 1) ||
        (f.z !== undefined && !int(f.z))
      )
        throw new FrameError("bad fragment fields");
      if ((f.b !== undefined && f.b !== 1) || (f.e !== undefined && f.e !== 1))
        throw new FrameError("bad data frame flags");
      return dataFrame(f);
    case "a":
      if (!int(f.n) || (f.d !== undefined && !(int(f.d) && (f.d as number) <= MAX_ACK_DELAY_MS)))
        throw new FrameError("bad ack frame");
      return f as Frame;
    case "h":
      if (!stream(f.st) || !int(f.n) || (f.bf !== undefined && f.bf !== 1))
        throw new FrameError("bad hello frame");
      return f as Frame;
    default:
      throw new FrameError(`unknown reliable frame type ${String(f.t)}`);
  }
}

export type DataFrame = Frame & { t: "d" };

/** A message kept until acknowledged: `at` accepted (ms), `x` expires (ms; none: no TTL). */
export interface StoredFrame extends FragmentFields {
  s: number;
  p: FramePayload;
  b?: 1;
  e?: 1;
  at: number;
  x?: number;
}

/** The fragment fields of `from`, copied onto `to` (only those present). */
function copyFragment(from: FragmentFields, to: FragmentFields): void {
  if (from.m) to.m = 1;
  if (from.z !== undefined) to.z = from.z;
  if (from.u) to.u = 1;
}

/** A payload's size: UTF-16 code units of text (as a channel counts them), bytes of bytes. */
export function payloadSize(p: FramePayload): number {
  return typeof p === "string" ? p.length : p.byteLength;
}

/** A `b` frame's bytes, whether kept as bytes or carried as base64. */
function bytesOf(p: FramePayload): Uint8Array {
  return typeof p === "string" ? fromBase64(p) : p;
}

/** The default largest frame: RFC 8841's max-message-size when the SDP has none (werift's too). */
export const DEFAULT_MAX_FRAME_BYTES = 65_536;
/** Largest message accepted by default, both ways (the receiver's reassembly bound per peer). */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** Room a data frame's JSON takes besides its payload (fields, a 16-digit seq, the stream id). */
const FRAME_OVERHEAD = 256;

/**
 * Raw bytes per fragment so that its base64 frame fits in `maxFrameBytes` (sized for JSON, so that
 * a frame kept for a resend fits whichever way the channel it goes on takes it).
 */
export function fragmentBytes(maxFrameBytes: number): number {
  return Math.max(3, Math.floor((maxFrameBytes - FRAME_OVERHEAD) / 4) * 3);
}

/**
 * The message as frame parts: one when it fits in `maxFrameBytes` (payload as is), else its
 * bytes in fragments. Bytes are copied (the caller may reuse its buffer) and kept as bytes.
 * Pure; sequence numbers and stream are the sender's.
 */
export function splitMessage(
  payload: Payload,
  maxFrameBytes: number,
): ({ p: FramePayload; b?: 1 } & FragmentFields)[] {
  if (typeof payload === "string") {
    // Each UTF-16 code unit is 1 to 6 bytes as UTF-8 with JSON escapes: a string longer than the
    // room never fits, one under a sixth of it always does; only in between is it measured (on a
    // 256 KiB string, JSON.stringify and the count cost more than the rest of splitting it).
    const room = maxFrameBytes - FRAME_OVERHEAD;
    if (
      payload.length <= room &&
      (payload.length * 6 <= room || utf8Length(JSON.stringify(payload)) <= room)
    )
      return [{ p: payload }];
    return fragments(utf8.encode(payload), maxFrameBytes, true);
  }
  if (Math.ceil(payload.byteLength / 3) * 4 + FRAME_OVERHEAD <= maxFrameBytes)
    return [{ p: payload.slice(), b: 1 }];
  return fragments(payload.slice(), maxFrameBytes, false);
}

function fragments(
  bytes: Uint8Array,
  maxFrameBytes: number,
  text: boolean,
): ({ p: Uint8Array; b: 1 } & FragmentFields)[] {
  const size = fragmentBytes(maxFrameBytes);
  const out: ({ p: Uint8Array; b: 1 } & FragmentFields)[] = [];
  for (let at = 0; at < bytes.byteLength; at += size) {
    const part: { p: Uint8Array; b: 1 } & FragmentFields = {
      p: bytes.subarray(at, at + size),
      b: 1,
    };
    if (at + size < bytes.byteLength) part.m = 1;
    if (at === 0) {
      part.z = bytes.byteLength;
      if (text) part.u = 1;
    }
    out.push(part);
  }
  return out;
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

export interface SenderState {
  stream: string;
  /** Everything below was acknowledged by the receiver. */
  acked: number;
  /** Unacknowledged messages, in order (sequence numbers acked, acked + 1, ...). */
  frames: StoredFrame[];
}

/** What a batching store tells its owner once a batch committed or failed. */
export interface StoreHooks {
  durable(): void;
  failed(err: Error): void;
}

/**
 * Where a sender keeps its stream. Synchronous; a store that batches returns false from `append`
 * and later calls `durable` (or `failed`: everything appended since the last `durable` is gone).
 * Methods other than `append` must not throw (a failure goes to `failed`).
 */
export interface SenderStore {
  load(): SenderState | null;
  /** A new stream replaces whatever was kept (first use, or after the peer lost its state). */
  reset(state: SenderState): boolean;
  /** Keep a new message; true when durable already. Throws when it cannot be kept. */
  append(f: StoredFrame): boolean;
  /** Everything below `n` was acknowledged. */
  ack(n: number): void;
  attach?(hooks: StoreHooks): void;
}

/** The default: nothing kept beyond the process (every write is "durable" at once). */
export const MEMORY_SENDER_STORE: SenderStore = Object.freeze({
  load: () => null,
  reset: () => true,
  append: () => true,
  ack: () => {},
});

export interface SenderStats {
  sent: number;
  resent: number;
  acked: number;
  backlog: number;
  backlogBytes: number;
  rejected: number;
  /** Messages whose TTL passed before they were acknowledged: never delivered. */
  expired: number;
  /** Streams started afresh because the receiver had lost its state (`rebase`). */
  rebased: number;
}

interface Entry {
  f: DataFrame;
  at: number;
  x?: number;
}

export interface SendOptions {
  /** Drop the message (counted, never delivered) if not acknowledged within this many ms. */
  ttlMs?: number;
}

export class ReliableSender {
  readonly maxBacklog: number;
  readonly maxBacklogBytes: number;
  /** Largest message `send` accepts (bytes; text counted as UTF-8 once fragmented). */
  readonly maxMessageBytes: number;
  /**
   * Largest frame to build: the peer's SCTP max-message-size (LinkChannels sets it from the SDP
   * when `control` opens). Messages are split when they are sent, so frames kept from before
   * keep the size they were built with.
   */
  maxFrameBytes = DEFAULT_MAX_FRAME_BYTES;
  #stream: string;
  #store: SenderStore;
  #clock: () => number;
  #next = 0;
  /** Lowest unacknowledged sequence number (everything below was acknowledged). */
  #acked = 0;
  /** Sequence numbers below this are durable in the store (and may be transmitted). */
  #durableBelow = 0;
  #unacked = new Map<number, Entry>();
  #bytes = 0;
  #stats = { sent: 0, resent: 0, acked: 0, rejected: 0, expired: 0, rebased: 0 };
  #onDurable: ((frames: DataFrame[]) => void) | null = null;
  /**
   * Called when the stream starts afresh because the receiver lost its state (`rebase`): how many
   * messages it carries, and the old sequence number of the first (a carried message's new
   * number is its old one minus `from`).
   */
  onRebased: ((carried: number, from: number) => void) | null = null;
  /** Set by a store failure: the error for the caller, and how many messages went with it. */
  lastFailure: { err: Error; lost: number } | null = null;

  constructor(
    opts: {
      stream?: string;
      maxBacklog?: number;
      maxBacklogBytes?: number;
      maxMessageBytes?: number;
      store?: SenderStore;
      clock?: () => number;
    } = {},
  ) {
    this.maxBacklog = opts.maxBacklog ?? 10_000;
    this.maxBacklogBytes = opts.maxBacklogBytes ?? 32 * 1024 * 1024;
    this.maxMessageBytes = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#store = opts.store ?? MEMORY_SENDER_STORE;
    this.#clock = opts.clock ?? Date.now;
    this.#store.attach?.({ durable: () => this.#madeDurable(), failed: (e) => this.#failed(e) });
    const kept = this.#store.load();
    this.#stream = kept?.stream ?? opts.stream ?? newStreamId();
    if (kept) {
      this.#acked = kept.acked;
      this.#next = kept.acked;
      for (const k of kept.frames) {
        const f: DataFrame = { rl: 1, t: "d", st: this.#stream, s: k.s, p: k.p };
        if (k.b) f.b = 1;
        if (k.e) f.e = 1;
        copyFragment(k, f);
        this.#keep(f, k.at, k.x);
        this.#next = k.s + 1;
      }
    } else {
      this.#store.reset({ stream: this.#stream, acked: 0, frames: [] });
    }
    this.#durableBelow = this.#next;
  }

  get stream(): string {
    return this.#stream;
  }

  /** Called with frames that became durable (batching stores): transmit them if the channel is open. */
  onDurable(fn: ((frames: DataFrame[]) => void) | null): void {
    this.#onDurable = fn;
  }

  /** False while the store has not made `f` durable yet: it must not be transmitted. */
  isDurable(f: Frame): boolean {
    return f.t !== "d" || f.s < this.#durableBelow;
  }

  /**
   * Wrap a message; keep it until acknowledged. Throws BacklogFullError when full, and the
   * store's error when it cannot keep it (nothing is kept then). A message split into fragments
   * (`sendFrames`) returns its last frame here.
   */
  send(payload: Payload, opts: SendOptions = {}): DataFrame {
    const frames = this.sendFrames(payload, opts);
    return frames[frames.length - 1] as DataFrame;
  }

  /**
   * `send`, giving every frame of the message: one, or its fragments when it does not fit in
   * `maxFrameBytes`. All or nothing: a message that does not fit in the backlog, or that the
   * store cannot keep, leaves nothing behind. Throws MessageTooLargeError past `maxMessageBytes`.
   */
  sendFrames(payload: Payload, opts: SendOptions = {}): DataFrame[] {
    // Text is bounded as the receiver counts it, in UTF-8 bytes (a UTF-16 length let a 9 Mi-char
    // "é…" through that the receiver refused as 18 MiB); under a third of the bound it always fits.
    const size =
      typeof payload !== "string"
        ? payload.byteLength
        : payload.length * 3 <= this.maxMessageBytes
          ? payload.length
          : utf8Length(payload);
    if (size > this.maxMessageBytes) {
      this.#stats.rejected++;
      throw new MessageTooLargeError(
        `message of ${size} bytes is larger than ${this.maxMessageBytes} (the largest on control)`,
      );
    }
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
    const parts = splitMessage(payload, this.maxFrameBytes);
    if (parts.length > 1 && this.#unacked.size + parts.length > this.maxBacklog) {
      this.#stats.rejected++;
      throw new BacklogFullError(
        `control backlog full (${this.maxBacklog} unacknowledged frames; the message needs ${parts.length})`,
      );
    }
    const at = this.#clock();
    const x = opts.ttlMs !== undefined ? at + opts.ttlMs : undefined;
    const out: DataFrame[] = [];
    let durable = true;
    try {
      for (const part of parts) {
        const f: DataFrame = {
          rl: 1,
          t: "d",
          st: this.#stream,
          s: this.#next + out.length,
          ...part,
        };
        const stored: StoredFrame = { s: f.s, p: f.p, at };
        if (f.b) stored.b = 1;
        copyFragment(part, stored);
        if (x !== undefined) stored.x = x;
        durable = this.#store.append(stored) && durable;
        out.push(f);
      }
    } catch (e) {
      this.#stats.rejected++;
      // A store that throws mid-message rolls its batch back (rover/outbox.ts): nothing is kept.
      throw e;
    }
    this.#next += out.length;
    if (durable) this.#durableBelow = this.#next;
    for (const f of out) this.#keep(f, at, x);
    this.#stats.sent++;
    return out;
  }

  #keep(f: DataFrame, at: number, x: number | undefined): void {
    const e: Entry = { f, at };
    if (x !== undefined) e.x = x;
    this.#unacked.set(f.s, e);
    this.#bytes += payloadSize(f.p);
  }

  #madeDurable(): void {
    if (this.#durableBelow >= this.#next) return;
    const from = this.#durableBelow;
    this.#durableBelow = this.#next;
    this.expire();
    const out: DataFrame[] = [];
    for (const [s, e] of this.#unacked) if (s >= from) out.push(e.f);
    if (out.length > 0) this.#onDurable?.(out);
  }

  /** The store lost what was not durable yet: those messages were never accepted. */
  #failed(err: Error): void {
    let lost = 0;
    for (const [s, e] of this.#unacked) {
      if (s < this.#durableBelow) continue;
      this.#unacked.delete(s);
      this.#bytes -= payloadSize(e.f.p);
      lost++;
    }
    this.#next = Math.max(this.#durableBelow, this.#acked);
    this.#stats.sent -= lost;
    this.#stats.rejected += lost;
    this.lastFailure = { err, lost };
  }

  /** Cumulative ack: everything below `n` arrived. False (and ignored) past what was sent. */
  onAck(n: number): boolean {
    if (n > this.#next) return false;
    if (n <= this.#acked) return true;
    for (const [s, e] of this.#unacked) {
      if (s >= n) break;
      this.#unacked.delete(s);
      this.#bytes -= payloadSize(e.f.p);
      this.#stats.acked++;
    }
    this.#acked = n;
    this.#store.ack(n);
    return true;
  }

  /**
   * The other side (re)opened and expects `n` next: frames to send again, in order. A hello
   * claiming more than was sent is a lie (or the other side's state of an older stream): it
   * acknowledges nothing and everything unacknowledged goes again. A hello below what it already
   * acknowledged means the receiver lost its state: the unacknowledged messages start a new
   * stream (`rebase`), since the old one's sequence numbers would leave it waiting for a gap.
   */
  resendFrom(n: number): DataFrame[] {
    if (n < this.#acked) this.rebase();
    else this.onAck(n);
    this.expire();
    const out: DataFrame[] = [];
    for (const [s, e] of this.#unacked) if (s < this.#durableBelow) out.push(e.f);
    this.#stats.resent += out.length;
    return out;
  }

  /** A new stream carrying the unacknowledged messages from sequence number 0. */
  rebase(): void {
    const old = [...this.#unacked.values()];
    const from = this.#acked;
    this.#stream = newStreamId();
    this.#unacked.clear();
    this.#bytes = 0;
    this.#next = 0;
    this.#acked = 0;
    const frames: StoredFrame[] = [];
    for (const e of old) {
      const f: DataFrame = { ...e.f, st: this.#stream, s: this.#next++ };
      this.#keep(f, e.at, e.x);
      const k: StoredFrame = { s: f.s, p: f.p, at: e.at };
      if (f.b) k.b = 1;
      if (f.e) k.e = 1;
      copyFragment(f, k);
      if (e.x !== undefined) k.x = e.x;
      frames.push(k);
    }
    this.#durableBelow = this.#store.reset({ stream: this.#stream, acked: 0, frames })
      ? this.#next
      : 0;
    this.#stats.rebased++;
    this.onRebased?.(frames.length, from);
  }

  /** Messages whose TTL passed become expired placeholders (counted, never delivered). */
  expire(now = this.#clock()): number {
    let n = 0;
    for (const e of this.#unacked.values()) {
      if (e.x === undefined || e.x > now || e.f.e) continue;
      this.#bytes -= payloadSize(e.f.p);
      const placeholder: DataFrame = { rl: 1, t: "d", st: e.f.st, s: e.f.s, p: "", e: 1 };
      // A fragment's place keeps its fragment fields: the receiver drops the whole message.
      copyFragment(e.f, placeholder);
      e.f = placeholder;
      if (!placeholder.m) n++; // counted once per message: at its last frame
    }
    this.#stats.expired += n;
    return n;
  }

  /** The sequence number the next message gets (everything below it was sent). */
  get nextSeq(): number {
    return this.#next;
  }

  backlog(): { messages: number; bytes: number } {
    return { messages: this.#unacked.size, bytes: this.#bytes };
  }

  /** When the oldest unacknowledged message was accepted (ms), or null. */
  oldestAt(): number | null {
    for (const e of this.#unacked.values()) return e.at;
    return null;
  }

  stats(): SenderStats {
    return { ...this.#stats, backlog: this.#unacked.size, backlogBytes: this.#bytes };
  }
}

function newStreamId(): string {
  return Math.random().toString(36).slice(2, 10);
}

export interface ReceiverState {
  /** The sender's stream this position belongs to. */
  stream: string;
  /** Next expected sequence number: everything below was handed to the application. */
  next: number;
}

/**
 * Where a receiver keeps its delivered high-water mark. `delivered` is called before the payloads
 * are handed to the application, so a store that batches commits the mark in the same
 * transaction as what the application does with them. Must not throw (failures go to `failed`).
 */
export interface ReceiverStore {
  load(): ReceiverState | null;
  /** True when durable already. */
  delivered(state: ReceiverState): boolean;
  attach?(hooks: StoreHooks): void;
}

export const MEMORY_RECEIVER_STORE: ReceiverStore = Object.freeze({
  load: () => null,
  delivered: () => true,
});

export interface ReceiverLimits {
  /** How far past the next expected sequence number a frame may be held (messages). */
  maxAhead: number;
  /** Payload bytes held ahead of a gap, in all. */
  maxAheadBytes: number;
  /** Largest message reassembled from fragments (declared size, bytes). */
  maxMessageBytes: number;
  /**
   * Smallest average fragment (bytes): a message of `z` bytes may come in at most `z / this`
   * pieces (16 at least). A sender cuts to our max-message-size (64 KiB from werift), so what a
   * reassembly holds stays near its declared size whatever a hostile peer's pieces.
   */
  minFragmentBytes: number;
}

export const DEFAULT_RECEIVER_LIMITS: Readonly<ReceiverLimits> = Object.freeze({
  maxAhead: 1_024,
  maxAheadBytes: 4 * 1024 * 1024,
  minFragmentBytes: 1024,
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
});

/** A message being reassembled from its fragments (at most one per stream: they come in order). */
interface Reassembly {
  parts: Uint8Array[];
  bytes: number;
  declared: number;
  text: boolean;
  /** A fragment's TTL passed at the sender: the message is dropped when its last one arrives. */
  expired: boolean;
  /** Broken or too large: what follows of it is discarded quietly (one violation is enough). */
  skip: boolean;
}

export class ReliableReceiver {
  readonly limits: ReceiverLimits;
  #store: ReceiverStore;
  #stream: string | null = null;
  #expected = 0;
  /** What the store holds durably: acknowledgements and hellos never claim more. */
  #durable: ReceiverState | null = null;
  /** When the message ending at each boundary not yet acknowledged arrived (for the ack delay). */
  #arrivedAt = new Map<number, number>();
  #lastArrival = -1;
  /** The state written to the store but not durable yet. */
  #pending: ReceiverState | null = null;
  #failedNow = false;
  duplicates = 0;
  /** Expired placeholders received (messages whose TTL passed at the sender). */
  expired = 0;
  /**
   * Called when data arrives on a new stream while this one had delivered messages of another:
   * the sender started over (it lost its state, or kept none).
   */
  onStreamReplaced: ((old: ReceiverState, stream: string) => void) | null = null;
  /** Out-of-order frames ahead of a gap (SCTP keeps order; only a resend overlap can do this). */
  #ahead = new Map<number, DataFrame>();
  #aheadBytes = 0;
  /** The message being reassembled, and the sequence number after the last whole message. */
  #partial: Reassembly | null = null;
  #boundary = 0;
  /** Fragments that broke reassembly (each also goes to `onFragmentError`). */
  badFragments = 0;
  /** Told of each fragment that breaks reassembly (the link counts it against the peer). */
  onFragmentError: ((e: FragmentError) => void) | null = null;

  constructor(limits: Partial<ReceiverLimits> = {}, store: ReceiverStore = MEMORY_RECEIVER_STORE) {
    this.limits = { ...DEFAULT_RECEIVER_LIMITS, ...limits };
    this.#store = store;
    const kept = store.load();
    if (kept) {
      this.#stream = kept.stream;
      this.#expected = kept.next;
      this.#boundary = kept.next;
      this.#durable = kept;
    }
    store.attach?.({
      durable: () => {
        if (this.#pending) this.#durable = this.#pending;
        this.#pending = null;
      },
      failed: () => this.#rollBack(),
    });
  }

  /** The store lost what was not durable: expect it again (the sender still has it). */
  #rollBack(): void {
    this.#failedNow = true;
    this.#pending = null;
    this.#stream = this.#durable?.stream ?? null;
    this.#expected = this.#durable?.next ?? 0;
    this.#boundary = this.#expected;
    this.#partial = null;
    this.#ahead.clear();
    this.#aheadBytes = 0;
  }

  /**
   * The channel closed: drop what is held past the last whole message (a message being
   * reassembled, frames ahead of a gap). None of it was acknowledged, so the sender sends it
   * again from our hello on the next channel; kept, a peer that left mid-message (or on purpose)
   * pinned it for as long as its stream state lived.
   */
  dropIncomplete(): void {
    this.#expected = this.#boundary;
    this.#partial = null;
    this.#ahead.clear();
    this.#aheadBytes = 0;
  }

  /** Bytes of the message being reassembled now. */
  reassembling(): number {
    return this.#partial?.bytes ?? 0;
  }

  /** Frames and payload bytes held ahead of a gap now. */
  held(): { messages: number; bytes: number } {
    return { messages: this.#ahead.size, bytes: this.#aheadBytes };
  }

  nextExpected(): number {
    return this.#expected;
  }

  hello(): Frame & { t: "h" } {
    return { rl: 1, t: "h", st: this.#durable?.stream ?? "", n: this.#durable?.next ?? 0 };
  }

  /**
   * The cumulative ack. Given the time now (the clock `onData` was given), it says how long it
   * was held since the newest message it acknowledges arrived, which the other side takes off its
   * RTT sample (QUIC's ack delay, RFC 9000 §13.2.5). That message, not the newest to arrive: with
   * a store that commits later, an ack sent as a message arrives covers only the one before, which
   * came a batching delay earlier (timing from the newest read ~0 held on a 50 ms wait: RTT shown
   * 15 times the path's).
   */
  ack(now?: number): Frame & { t: "a" } {
    const d = this.#durable;
    const n = d && d.stream === this.#stream ? d.next : 0;
    const arrived = this.#arrivedAt.get(n);
    for (const k of this.#arrivedAt.keys()) {
      if (k > n) break;
      this.#arrivedAt.delete(k);
    }
    if (now === undefined || arrived === undefined) return { rl: 1, t: "a", n };
    return {
      rl: 1,
      t: "a",
      n,
      d: Math.min(Math.max(0, Math.round(now - arrived)), MAX_ACK_DELAY_MS),
    };
  }

  /**
   * A data frame arrived: the payloads now deliverable, in order (possibly none). `now` (ms, any
   * monotonic clock): when, for the ack delay `ack` reports.
   */
  onData(f: DataFrame, now?: number): Payload[] {
    if (this.#stream !== f.st) {
      // A new sender stream (the other agent restarted without its state, or rebased): start over.
      if (this.#stream !== null && this.#expected > 0)
        this.onStreamReplaced?.({ stream: this.#stream, next: this.#expected }, f.st);
      this.#stream = f.st;
      this.#expected = 0;
      this.#boundary = 0;
      this.#partial = null;
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
      if (this.#aheadBytes + payloadSize(f.p) > this.limits.maxAheadBytes)
        throw new WindowError(
          "reorder-overflow",
          `more than ${this.limits.maxAheadBytes} bytes held ahead of a gap`,
        );
      this.#aheadBytes += payloadSize(f.p);
    }
    this.#ahead.set(f.s, f);
    const ready: DataFrame[] = [];
    for (let g = this.#ahead.get(this.#expected); g; g = this.#ahead.get(this.#expected)) {
      this.#ahead.delete(this.#expected);
      if (g !== f) this.#aheadBytes -= payloadSize(g.p);
      this.#expected++;
      ready.push(g);
    }
    if (ready.length === 0) return [];
    const out: Payload[] = [];
    for (const g of ready) this.#take(g, out);
    // Mid-message: nothing new is delivered, so nothing new to keep.
    const written = this.#pending ?? this.#durable;
    if (written?.stream === f.st && written.next === this.#boundary) return out;
    // The high-water mark (whole messages only) goes to the store before the hand-off (a
    // batching store commits both together); if the store failed, nothing is handed off and the
    // sender sends it again.
    const state = { stream: f.st, next: this.#boundary };
    if (now !== undefined) {
      // Keys ascend (boundaries only grow within a stream); a new stream starts the map over.
      if (state.next <= this.#lastArrival || this.#arrivedAt.size >= MAX_ARRIVALS)
        this.#arrivedAt.clear();
      this.#arrivedAt.set(state.next, now);
      this.#lastArrival = state.next;
    }
    this.#failedNow = false;
    const durable = this.#store.delivered(state);
    if (this.#failedNow) return [];
    if (durable) {
      this.#durable = state;
      this.#pending = null;
    } else this.#pending = state;
    return out;
  }

  /** One in-order frame: a whole message, or a fragment of one (reassembled here). */
  #take(g: DataFrame, out: Payload[]): void {
    const p = this.#partial;
    const fragment = g.m !== undefined || g.z !== undefined;
    if (!p && !fragment) {
      this.#boundary = g.s + 1;
      if (g.e) this.expired++;
      else out.push(g.b ? bytesOf(g.p) : (g.p as string));
      return;
    }
    if (p && g.z !== undefined) {
      this.#partial = null;
      this.#bad("bad-fragment", `fragment ${g.s} starts a message while one is incomplete`);
      this.#take(g, out);
      return;
    }
    if (!p) {
      if (g.z === undefined) {
        this.#bad("bad-fragment", `fragment ${g.s} continues no message`);
        // Its followers are discarded quietly until the message's last fragment.
        this.#partial = g.m ? skipping() : null;
        if (!g.m) this.#boundary = g.s + 1;
        return;
      }
      const np: Reassembly = {
        parts: [],
        bytes: 0,
        declared: g.z,
        text: g.u === 1,
        expired: false,
        skip: false,
      };
      if (g.z > this.limits.maxMessageBytes) {
        this.#bad(
          "oversized-message",
          `message of ${g.z} bytes declared; the largest accepted is ${this.limits.maxMessageBytes}`,
        );
        np.skip = true;
      }
      this.#partial = np;
      this.#fragment(np, g, out);
      return;
    }
    this.#fragment(p, g, out);
  }

  #fragment(p: Reassembly, g: DataFrame, out: Payload[]): void {
    if (!p.skip) {
      if (g.e) p.expired = true;
      else if (!g.b) {
        p.skip = true;
        this.#bad("bad-fragment", `fragment ${g.s} is not base64 bytes`);
      } else {
        const bytes = bytesOf(g.p);
        if (p.bytes + bytes.byteLength > p.declared) {
          p.skip = true;
          this.#bad("bad-fragment", `fragments exceed the declared ${p.declared} bytes`);
        } else if (bytes.byteLength === 0 && g.m) {
          // A sender never cuts an empty piece; kept, each was an entry without a byte to count.
          p.skip = true;
          this.#bad("bad-fragment", `fragment ${g.s} is empty and not the last`);
        } else if (p.parts.length >= this.#maxParts(p.declared)) {
          p.skip = true;
          this.#bad(
            "bad-fragment",
            `more than ${this.#maxParts(p.declared)} fragments for ${p.declared} declared bytes`,
          );
        } else {
          p.parts.push(bytes);
          p.bytes += bytes.byteLength;
        }
      }
    }
    if (g.m) return;
    this.#partial = null;
    this.#boundary = g.s + 1;
    if (p.skip) return;
    if (p.expired) {
      this.expired++;
      return;
    }
    if (p.bytes !== p.declared) {
      this.#bad("bad-fragment", `message ended at ${p.bytes} of ${p.declared} declared bytes`);
      return;
    }
    const whole = concat(p.parts, p.bytes);
    out.push(p.text ? toText.decode(whole) : whole);
  }

  /** The most fragments a message of `declared` bytes may come in (`minFragmentBytes`). */
  #maxParts(declared: number): number {
    return Math.max(16, Math.ceil(declared / Math.max(1, this.limits.minFragmentBytes)));
  }

  #bad(kind: "bad-fragment" | "oversized-message", message: string): void {
    this.badFragments++;
    this.onFragmentError?.(new FragmentError(kind, message));
  }
}

function skipping(): Reassembly {
  return { parts: [], bytes: 0, declared: 0, text: false, expired: false, skip: true };
}

function concat(parts: Uint8Array[], bytes: number): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array;
  const u = new Uint8Array(bytes);
  let at = 0;
  for (const part of parts) {
    u.set(part, at);
    at += part.byteLength;
  }
  return u;
}
