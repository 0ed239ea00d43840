/**
 * A link's data channels: `control` with its reliable stream (shared/link/reliable.ts),
 * `telemetry` with the health probes (shared/link/probe-wire.ts), and application channels opened
 * on demand. Every byte from the peer is untrusted: nothing it sends can throw out of a handler
 * (they run inside werift's SCTP receive path), and every breach goes to the peer's conduct
 * record (shared/link/conduct.ts). I/O only; what to do about the link is the Link's business.
 */

import type { RTCDataChannel } from "werift";
import { errorMessage } from "../shared/errors.ts";
import { type ConductConfig, PeerConduct, type Violation } from "../shared/link/conduct.ts";
import { Outbox, type OutboxLimits } from "../shared/link/outbox.ts";
import { decodeProbe, encodeProbe, isProbe } from "../shared/link/probe-wire.ts";
import {
  BacklogFullError,
  type DataFrame,
  DEFAULT_MAX_FRAME_BYTES,
  decodeBinaryFrame,
  decodeFrame,
  encodeFrame,
  encodeWire,
  type Frame,
  type Payload,
  payloadSize,
  type ReliableReceiver,
  type ReliableSender,
  type SendOptions,
  WindowError,
} from "../shared/link/reliable.ts";
import { remoteMaxMessageSize } from "./werift-internals.ts";

export interface ChannelLogger {
  debug(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
  /** pino's: whether a line at `level` goes anywhere. */
  isLevelEnabled?(level: string): boolean;
}

/** Whether a handler's throw was reported as a process warning already (once per process). */
let handlerThrowReported = false;

/** What the channels tell the link. */
export interface ChannelHooks {
  /** A channel opened (the link decides whether it is up). */
  opened(dc: RTCDataChannel): void;
  /** The current `control` closed under us. */
  controlClosed(): void;
  /** Anything arrived from the peer (the path works). */
  received(now: number): void;
  probeAnswered(id: number, now: number): void;
  /** A reliable `control` message (or a resend) was handed to the channel: the peer will ack it. */
  reliableSent?(seq: number, now: number): void;
  /** The peer said hello: what is unacknowledged goes again (numbered afresh after a rebase). */
  reliableResent?(seqs: number[], now: number): void;
  /**
   * The peer acknowledged every `control` message below `next`, `ackDelayMs` after the newest of
   * them reached it (undefined: a peer that does not say).
   */
  reliableAcked?(next: number, now: number, ackDelayMs: number | undefined): void;
  /** An application message, or a `control` message in order and exactly once. */
  message(channel: string, data: Payload): void;
  /** The peer broke the protocol; `drop` once it is past its budget (reported once). */
  violation(kind: Violation, drop: boolean): void;
  /** Open a channel on the current PeerConnection (null when there is none). */
  create(label: string, opts: { ordered: boolean; maxRetransmits?: number }): RTCDataChannel | null;
  /** `control` has room again after a `send` returned false (like a stream's `drain`). */
  drained?(): void;
}

export interface ChannelOptions {
  peer: string;
  /** Remote is a browser speaking raw text on `control`: no reliable framing. */
  raw: boolean;
  sender: ReliableSender;
  receiver: ReliableReceiver;
  conduct?: Partial<ConductConfig>;
  /** Flow control on `control` (shared/link/outbox.ts). */
  outbox?: Partial<OutboxLimits>;
  log: ChannelLogger;
  hooks: ChannelHooks;
}

/** Messages an application channel may hold while it (re)opens. */
const APP_QUEUE_MAX = 1_000;
/** Data channels one link may have (ours and the peer's); more is a flood. */
const MAX_CHANNELS = 64;
/** Longest channel label accepted from the peer (it ends up in logs and metric labels). */
const MAX_LABEL = 64;
/** Acknowledgements are batched: sent alone this many ms after the first message they cover... */
const ACK_DELAY_MS = 50;
/**
 * ...or with outgoing data once they have waited this long (in a burst each way, at most one
 * per this many ms rather than one per message).
 */
const ACK_RIDE_MS = 10;

export class LinkChannels {
  readonly conduct: PeerConduct;
  telemetryDropped = 0;
  /** Application-channel messages given up because too many waited for the channel. */
  appDropped = 0;
  backlogRejected = 0;
  #o: ChannelOptions;
  #channels = new Map<string, RTCDataChannel>();
  #appQueue = new Map<string, Payload[]>();
  /** `control` channels on which the peer said hello already. */
  #helloed = new WeakSet<RTCDataChannel>();
  /** `control` channels whose peer said in its hello that it reads binary data frames (`bf`). */
  #binaryPeer = new WeakSet<RTCDataChannel>();
  #ackTimer: NodeJS.Timeout | null = null;
  /** When #ackTimer was set (performance.now()). */
  #ackSince = 0;
  /** Reliable frames waiting for room in `control`'s send buffer. */
  #outbox: Outbox;
  /** Payload bytes sent but not yet on disk (a durable outbox): they count towards `highWater`. */
  #awaitingDisk = 0;

  constructor(o: ChannelOptions) {
    this.#o = o;
    this.conduct = new PeerConduct(o.conduct, Date.now());
    this.#outbox = new Outbox(o.outbox);
    // A durable outbox commits in batches: frames go out once they are on disk.
    o.sender.onDurable((frames) => {
      this.#awaitingDisk = Math.max(
        0,
        this.#awaitingDisk - frames.reduce((n, f) => n + payloadSize(f.p), 0),
      );
      const dc = this.#channels.get("control");
      if (!this.#resumed(dc) || o.raw) return;
      const now = Date.now();
      for (const f of frames) {
        this.#outbox.push(this.#encode(dc, f), dc.bufferedAmount);
        if (f.t === "d") o.hooks.reliableSent?.(f.s, now);
      }
      this.#pumpControl();
    });
    // Fragments that break reassembly count against the peer like any other broken frame.
    o.receiver.onFragmentError = (e) => this.#violation(e.kind, e.message);
  }

  /** `control` is open and the peer said on it where its receiver is: frames may go out. */
  controlResumed(): boolean {
    return this.#resumed(this.#channels.get("control"));
  }

  #resumed(dc: RTCDataChannel | undefined): dc is RTCDataChannel {
    return dc?.readyState === "open" && this.#helloed.has(dc);
  }

  /** A frame as it goes on `dc`: bytes as a binary frame when the peer reads them, else JSON. */
  #encode(dc: RTCDataChannel, f: Frame): string | Buffer {
    const w = encodeWire(f, this.#binaryPeer.has(dc));
    // A view, not a copy: werift copies what is not a Buffer.
    return typeof w === "string" ? w : Buffer.from(w.buffer, w.byteOffset, w.byteLength);
  }

  /** Reliable frames waiting to be handed to `control`, and their size. */
  controlPending(): { frames: number; bytes: number } {
    return this.#outbox.pending;
  }

  /** Whether a `send` on `control` now would be taken without asking the caller to wait. */
  controlWritable(): boolean {
    return this.#outbox.writable(this.#controlBuffered());
  }

  get(label: string): RTCDataChannel | undefined {
    return this.#channels.get(label);
  }

  isOpen(label: string): boolean {
    return this.#channels.get(label)?.readyState === "open";
  }

  /** Offerer: the two channels every link has. */
  openStandard(): void {
    this.#openLocal("control", { ordered: true });
    // Stale telemetry is worthless: no retransmissions.
    this.#openLocal("telemetry", { ordered: false, maxRetransmits: 0 });
  }

  /** A channel the peer opened: accepted unless it is one too many. */
  accept(dc: RTCDataChannel): void {
    if (this.#channels.size >= MAX_CHANNELS || dc.label.length > MAX_LABEL) {
      this.#violation("channel-flood", `channel "${dc.label.slice(0, MAX_LABEL)}" refused`);
      closeQuietly(dc);
      return;
    }
    // A label in use on this PeerConnection: the channels are keyed by label, so the new one
    // replaced the old without counting (1500 "app" channels were held), and a second `control`
    // brought another hello, another full resend.
    const same = this.#channels.get(dc.label);
    if (same && same.readyState !== "closed") {
      this.#violation("channel-flood", `a second channel "${dc.label}" refused`);
      closeQuietly(dc);
      return;
    }
    this.wire(dc);
  }

  wire(dc: RTCDataChannel): void {
    this.#channels.set(dc.label, dc);
    if (dc.label === "control" && !this.#o.raw) {
      // Refill from the outbox as werift's buffer empties (it fires at the threshold, going down).
      dc.bufferedAmountLowThreshold = this.#outbox.limits.lowWater;
      dc.bufferedAmountLow.subscribe(() => {
        if (this.#channels.get("control") === dc) this.#pumpControl();
      });
    }
    const onOpen = () => {
      if (dc.label === "control") this.#o.sender.maxFrameBytes = frameLimit(dc);
      this.#flushApp(dc);
      this.#o.hooks.opened(dc);
    };
    if (dc.readyState === "open") onOpen();
    dc.stateChanged.subscribe((s) => {
      if (s === "open") onOpen();
      if (s === "closed" && this.#channels.get(dc.label) === dc && dc.label === "control") {
        // What waited is still in the sender's backlog: resent after the peer's next hello.
        this.#outbox.clear();
        // And what came of a message not yet whole comes again after ours: not held meanwhile.
        this.#o.receiver.dropIncomplete();
        this.#o.hooks.controlClosed();
      }
    });
    dc.onMessage.subscribe((m) => {
      // Called from inside werift's SCTP receive path: nothing may escape from here.
      try {
        this.#onMessage(dc, m);
      } catch (e) {
        this.#o.log.warn(
          { peer: this.#o.peer, channel: dc.label, err: errorMessage(e) },
          "error handling a message",
        );
      }
    });
  }

  /** `control` opened on a new PeerConnection: say where our receiver is (peer resends from there). */
  hello(): void {
    const control = this.#channels.get("control");
    // `bf`: we read binary data frames (a console, which reads text only, says nothing).
    if (control && !this.#o.raw) control.send(encodeFrame({ ...this.#o.receiver.hello(), bf: 1 }));
  }

  /** Application channels with messages waiting and no channel yet (after a rebuild). */
  reopenQueued(): void {
    for (const label of this.#appQueue.keys())
      if (!this.#channels.has(label)) this.#openLocal(label, { ordered: true });
  }

  /** Send a health probe; false when `telemetry` is not open. */
  ping(id: number): boolean {
    const t = this.#channels.get("telemetry");
    if (t?.readyState !== "open") return false;
    try {
      t.send(encodeProbe({ rlp: "ping", i: id }));
      return true;
    } catch {
      return false; // closing
    }
  }

  /** Whether the peer acknowledges what goes on `channel` (framed `control` only). */
  acknowledged(channel: string): boolean {
    return channel === "control" && !this.#o.raw;
  }

  /**
   * Send on a channel. `control`: reliable across restarts/rebuilds, flow-controlled: false when
   * the caller should wait for the `drained` hook before sending more (the message is kept either
   * way; BacklogFullError is the hard bound). `telemetry`: dropped when down.
   */
  send(channel: string, data: Payload, opts?: SendOptions): boolean {
    const dc = this.#channels.get(channel);
    if (channel === "control" && !this.#o.raw) {
      let frames: DataFrame[];
      try {
        // A message past the peer's max-message-size comes back as fragments (reliable.ts).
        frames = this.#o.sender.sendFrames(data, opts);
      } catch (e) {
        if (e instanceof BacklogFullError) this.backlogRejected++;
        throw e;
      }
      // Not open, or the peer has not said hello on it yet: kept in the backlog and resent, in
      // order, when the hello comes (sent before it, a frame could land more than the peer's
      // window past where its receiver is after a long outage or a restart).
      // Not yet on disk (a durable outbox commits in batches): sent by onDurable once it is.
      const last = frames[frames.length - 1] as DataFrame;
      if (!this.#resumed(dc)) return true;
      if (!this.#o.sender.isDurable(last)) {
        // Still counted against the high-water mark: a caller that honours `false` must be
        // held back by a durable outbox as by a memory one.
        this.#awaitingDisk += frames.reduce((n, f) => n + payloadSize(f.p), 0);
        return this.#outbox.admit(this.#awaitingDisk, dc.bufferedAmount);
      }
      let ok = true;
      const now = Date.now();
      for (const f of frames) {
        ok = this.#outbox.push(this.#encode(dc, f), dc.bufferedAmount) && ok;
        if (f.t === "d") this.#o.hooks.reliableSent?.(f.s, now);
      }
      this.#pumpControl();
      return ok;
    }
    if (dc?.readyState !== "open") {
      if (channel === "telemetry" || channel === "control") {
        this.telemetryDropped++;
        return true;
      }
      // An application channel: opened on demand; what is sent meanwhile goes once it opens.
      const q = this.#appQueue.get(channel) ?? [];
      q.push(data);
      if (q.length > APP_QUEUE_MAX) {
        q.shift();
        this.appDropped++;
      }
      this.#appQueue.set(channel, q);
      if (!dc || dc.readyState === "closing" || dc.readyState === "closed")
        this.#openLocal(channel, { ordered: true });
      return true;
    }
    dc.send(typeof data === "string" ? data : Buffer.from(data));
    return true;
  }

  /** Close every channel (the PeerConnection is being replaced or closed). */
  closeAll(): void {
    for (const dc of this.#channels.values()) closeQuietly(dc);
    this.#channels.clear();
    this.#outbox.clear();
  }

  /**
   * Bytes werift holds for `channel` now, not yet on the wire (0 when it is not open). For
   * `control` that is only what the pump handed it; the rest waits in the reliable backlog.
   */
  buffered(channel: string): number {
    const dc = this.#channels.get(channel);
    return dc?.readyState === "open" ? dc.bufferedAmount : 0;
  }

  #controlBuffered(): number {
    const dc = this.#channels.get("control");
    return dc?.readyState === "open" ? dc.bufferedAmount : 0;
  }

  /** Hand waiting frames to `control` while its buffer is under the high-water mark. */
  #pumpControl(): void {
    const dc = this.#channels.get("control");
    if (dc?.readyState !== "open") return;
    try {
      const frames = this.#outbox.take(dc.bufferedAmount);
      // A due acknowledgement rides along: sent in the same tick, werift bundles it into the
      // data's SCTP packet (patch 14) instead of sending a packet of its own when its timer fires.
      if (frames.length > 0 && this.#ackTimer && performance.now() - this.#ackSince >= ACK_RIDE_MS)
        this.#sendAck(dc);
      for (const f of frames) dc.send(typeof f === "string" ? f : (f as Buffer));
    } catch (e) {
      // Closing under us: the backlog keeps everything for the next channel.
      this.#o.log.debug({ peer: this.#o.peer, err: errorMessage(e) }, "control send failed");
      return;
    }
    if (this.#outbox.drained(dc.bufferedAmount)) this.#o.hooks.drained?.();
  }

  dispose(): void {
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    this.closeAll();
  }

  #openLocal(label: string, opts: { ordered: boolean; maxRetransmits?: number }): void {
    const dc = this.#o.hooks.create(label, opts);
    if (dc) this.wire(dc);
  }

  #onMessage(dc: RTCDataChannel, m: string | Buffer): void {
    const now = Date.now();
    this.#o.hooks.received(now);
    const text = typeof m === "string" ? m : null;
    if (dc.label === "telemetry" && text !== null && isProbe(text)) {
      this.#onProbe(dc, text, now);
      return;
    }
    if (dc.label === "control" && !this.#o.raw) {
      // Between agents `control` carries reliable frames only: anything else would bypass
      // exactly-once delivery.
      let f: Frame | null;
      try {
        f = text === null ? decodeBinaryFrame(m as Buffer) : decodeFrame(text);
      } catch (e) {
        this.#violation("malformed-frame", errorMessage(e));
        return;
      }
      if (f) this.#onFrame(dc, f);
      else this.#violation("unexpected-message", text === null ? "binary on control" : "raw text");
      return;
    }
    this.#deliver(dc.label, text ?? new Uint8Array(m as Buffer));
  }

  #onProbe(dc: RTCDataChannel, text: string, now: number): void {
    let p: ReturnType<typeof decodeProbe>;
    try {
      p = decodeProbe(text);
    } catch (e) {
      this.#violation("malformed-probe", errorMessage(e));
      return;
    }
    if (p.rlp === "pong") {
      this.#o.hooks.probeAnswered(p.i, now);
      return;
    }
    if (this.conduct.allowPong(now)) dc.send(encodeProbe({ rlp: "pong", i: p.i }));
    else this.#violation("probe-flood", "ping rate");
  }

  #onFrame(dc: RTCDataChannel, f: Frame): void {
    const { sender, receiver } = this.#o;
    switch (f.t) {
      case "d": {
        let out: Payload[];
        try {
          out = receiver.onData(f, performance.now());
        } catch (e) {
          if (!(e instanceof WindowError)) throw e;
          this.#violation(e.kind, e.message);
          return;
        }
        // Before delivery: a reply the application sends from its handler carries the ack.
        this.#scheduleAck(dc);
        for (const p of out) this.#deliver("control", p);
        return;
      }
      case "a":
        if (!sender.onAck(f.n)) this.#violation("bad-ack", `ack ${f.n}`);
        else this.#o.hooks.reliableAcked?.(f.n, Date.now(), f.d);
        return;
      case "h": {
        // One hello per opening of the peer's `control`: each asks us to resend the backlog.
        if (this.#helloed.has(dc)) {
          this.#violation("hello-flood", "second hello on one channel");
          return;
        }
        this.#helloed.add(dc);
        if (f.bf === 1) this.#binaryPeer.add(dc);
        let n = f.st === sender.stream ? f.n : 0;
        if (n > sender.nextSeq) {
          this.#violation("bad-ack", `hello ${n}`);
          n = 0;
        }
        // Through the outbox: a long backlog must not land in werift at once either.
        const resend = sender.resendFrom(n);
        this.#outbox.replace(resend.map((r) => this.#encode(dc, r)));
        this.#o.hooks.reliableResent?.(
          resend.map((r) => r.s),
          Date.now(),
        );
        this.#pumpControl();
        return;
      }
    }
  }

  #scheduleAck(dc: RTCDataChannel): void {
    if (this.#ackTimer) return;
    this.#ackSince = performance.now();
    this.#ackTimer = setTimeout(() => this.#sendAck(dc), ACK_DELAY_MS);
  }

  /** The batched acknowledgement, now (its timer fired, or data leaves that it can ride with). */
  #sendAck(dc: RTCDataChannel): void {
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
    if (dc.readyState === "open") dc.send(encodeFrame(this.#o.receiver.ack(performance.now())));
  }

  /** Hand a message to the application; its handler's errors are its own, not the link's. */
  #deliver(channel: string, data: Payload): void {
    try {
      this.#o.hooks.message(channel, data);
    } catch (e) {
      this.#o.log.warn(
        { peer: this.#o.peer, channel, err: errorMessage(e) },
        "message handler threw",
      );
      // The library's default logger is silent: a bug in the application's handler must not
      // vanish without a trace, nor flood stderr once per message.
      if (!handlerThrowReported && this.#o.log.isLevelEnabled?.("warn") === false) {
        handlerThrowReported = true;
        process.emitWarning(
          `a "message" handler threw on ${channel} from ${this.#o.peer}: ${errorMessage(e)} (the message counts as delivered; later throws go only to the agent's logger)`,
          { code: "ROVERLINK_HANDLER_THREW" },
        );
      }
    }
  }

  /** Counted and logged (the first of each kind at warn); `drop` is reported once. */
  violation(kind: Violation, detail: string): void {
    this.#violation(kind, detail);
  }

  #violation(kind: Violation, detail: string): void {
    const wasDropped = this.conduct.dropped;
    const first = (this.conduct.counts()[kind] ?? 0) === 0;
    const verdict = this.conduct.onViolation(kind, Date.now());
    const entry = { peer: this.#o.peer, violation: kind, detail };
    if (first) this.#o.log.warn(entry, "peer broke the link protocol");
    else this.#o.log.debug(entry, "peer broke the link protocol");
    this.#o.hooks.violation(kind, verdict === "drop" && !wasDropped);
  }

  /** Send what waited for an application channel to open. */
  #flushApp(dc: RTCDataChannel): void {
    const q = this.#appQueue.get(dc.label);
    if (!q) return;
    this.#appQueue.delete(dc.label);
    for (const data of q) dc.send(typeof data === "string" ? data : Buffer.from(data));
  }
}

/**
 * The largest `control` frame to build for this peer: its max-message-size from the SDP, but no
 * more than 64 KiB (a bigger frame holds up everything behind it on the ordered channel for longer
 * and gains little); 0 in the SDP means no limit.
 */
function frameLimit(dc: RTCDataChannel): number {
  const peer = remoteMaxMessageSize(dc) ?? DEFAULT_MAX_FRAME_BYTES;
  return peer > 0 ? Math.min(peer, DEFAULT_MAX_FRAME_BYTES) : DEFAULT_MAX_FRAME_BYTES;
}

function closeQuietly(dc: RTCDataChannel): void {
  try {
    dc.close();
  } catch {
    // already closed
  }
}
