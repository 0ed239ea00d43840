/**
 * One forwarded TCP connection: a local socket and its own reliable, ordered data channel
 * (wire format: shared/forward-wire.ts). Backpressure both ways, half-close both ways, and one
 * end reported per connection. The opener's side reads nothing until the peer accepts.
 */
import type { Socket } from "node:net";
import type { RTCDataChannel } from "werift";
import { decodeForwardMessage, encodeForwardMessage } from "../shared/forward-wire.ts";
import { errnoText } from "./errno.ts";

/** Largest data message: well under werift's 64 KiB max-message-size, small enough to interleave. */
const CHUNK = 16 * 1024;
/** Stop reading the socket with more than this queued on the channel; read again below LOW. */
const HIGH = 1024 * 1024;
const LOW = 256 * 1024;
/** The opener gives up on a peer that neither accepts nor refuses in this time (ms). */
const ACCEPT_TIMEOUT_MS = 15_000;
/** After both fins, the channel closes when our fin is acknowledged, or after this (ms). */
const FIN_ACK_TIMEOUT_MS = 30_000;

export interface TcpPipeEnd {
  reason: string;
  /** Both directions finished with a half-close: nothing was cut short. */
  clean: boolean;
  /** Bytes from the local socket to the peer, and back. */
  bytesOut: number;
  bytesIn: number;
}

export interface TcpPipeHooks {
  /** Opener: the peer accepted (the receiver's side is open as soon as the pipe exists). */
  opened(): void;
  /** Opener: refused by the peer, or no answer; the socket is destroyed. */
  notOpened(reason: string): void;
  /** The connection is over (after `opened`, or from the start on the receiving side). */
  ended(e: TcpPipeEnd): void;
}

export class TcpPipe {
  #sock: Socket;
  #dc: RTCDataChannel;
  #hooks: TcpPipeHooks;
  #accepted: boolean;
  #sentFin = false;
  #gotFin = false;
  #finAcked = false;
  #peerPaused = false;
  #askedPause = false;
  #why: string | null = null;
  #done = false;
  #timer: NodeJS.Timeout | null = null;
  #bytesOut = 0;
  #bytesIn = 0;

  /** `role` opener: we opened the channel, and wait for accept; receiver: we accept now. */
  constructor(sock: Socket, dc: RTCDataChannel, role: "opener" | "receiver", hooks: TcpPipeHooks) {
    this.#sock = sock;
    this.#dc = dc;
    this.#hooks = hooks;
    this.#accepted = role === "receiver";
    sock.pause();
    dc.bufferedAmountLowThreshold = LOW;
    dc.bufferedAmountLow.subscribe(() => this.#maybeResume());
    dc.onMessage.subscribe((m) => {
      // Runs inside werift's SCTP receive path: a bad message ends this connection, nothing more.
      try {
        this.#onMessage(m);
      } catch (e) {
        this.#abort(`bad message from the peer: ${(e as Error).message}`);
      }
    });
    dc.stateChanged.subscribe((s) => {
      if (s === "closed") this.#channelClosed();
    });
    sock.on("data", (b: Buffer) => this.#onData(b));
    sock.on("end", () => {
      // The local program half-closed: tell the peer, whose socket half-closes in turn.
      this.#sentFin = true;
      this.#ctl({ t: "fin" });
    });
    sock.on("error", (e: NodeJS.ErrnoException) => {
      this.#why ??= `local socket: ${errnoText(e)}`;
    });
    sock.on("close", () => this.#socketClosed());
    if (role === "receiver") {
      whenOpen(dc, () => {
        this.#ctl({ t: "accept" });
        this.#maybeResume();
      });
    } else {
      this.#timer = setTimeout(
        () => this.#notOpened(`no answer from the peer in ${ACCEPT_TIMEOUT_MS / 1000} s`),
        ACCEPT_TIMEOUT_MS,
      );
    }
  }

  #onData(b: Buffer): void {
    if (this.#dc.readyState !== "open") return; // closing: the socket goes too
    for (let i = 0; i < b.length; i += CHUNK) this.#dc.send(b.subarray(i, i + CHUNK));
    this.#bytesOut += b.length;
    if (this.#dc.bufferedAmount > HIGH) this.#sock.pause();
  }

  #maybeResume(): void {
    if (!this.#accepted || this.#peerPaused || this.#dc.bufferedAmount > LOW) return;
    if (!this.#sock.destroyed && !this.#sock.readableEnded) this.#sock.resume();
  }

  #onMessage(m: string | Buffer): void {
    if (typeof m !== "string") {
      if (!this.#accepted || this.#gotFin) throw new Error("data outside the connection");
      this.#bytesIn += m.length;
      // The local program reads slower than the peer sends: ask the peer to stop until it drains.
      if (!this.#sock.write(m) && !this.#askedPause) {
        this.#askedPause = true;
        this.#ctl({ t: "pause" });
        this.#sock.once("drain", () => {
          this.#askedPause = false;
          this.#ctl({ t: "resume" });
        });
      }
      return;
    }
    const msg = decodeForwardMessage(m);
    switch (msg.t) {
      case "accept":
        if (this.#accepted) throw new Error("second accept");
        this.#accepted = true;
        this.#clearTimer();
        this.#hooks.opened();
        this.#maybeResume();
        return;
      case "refuse":
        if (this.#accepted) throw new Error("refuse after accept");
        this.#notOpened(msg.reason);
        return;
      case "fin":
        if (this.#gotFin) throw new Error("second fin");
        this.#gotFin = true;
        this.#ctl({ t: "fin-ack" });
        this.#sock.end();
        this.#maybeClose();
        return;
      case "fin-ack":
        this.#finAcked = true;
        this.#maybeClose();
        return;
      case "pause":
        this.#peerPaused = true;
        this.#sock.pause();
        return;
      case "resume":
        this.#peerPaused = false;
        this.#maybeResume();
        return;
    }
  }

  /** Both fins through and ours acknowledged: nothing is in flight, the stream reset loses nothing. */
  #maybeClose(): void {
    if (this.#gotFin && this.#finAcked) closeQuietly(this.#dc);
  }

  #ctl(m: Parameters<typeof encodeForwardMessage>[0]): void {
    if (this.#dc.readyState === "open") this.#dc.send(encodeForwardMessage(m));
  }

  #notOpened(reason: string): void {
    if (this.#done) return;
    this.#done = true;
    this.#clearTimer();
    cutOff(this.#sock);
    closeQuietly(this.#dc);
    this.#hooks.notOpened(reason);
  }

  #abort(reason: string): void {
    this.#why ??= reason;
    cutOff(this.#sock);
    closeQuietly(this.#dc);
  }

  #channelClosed(): void {
    if (!this.#accepted) {
      this.#notOpened("the peer closed the channel without accepting");
      return;
    }
    if (this.#sentFin && this.#gotFin) return; // done: the socket closes by itself
    // Gone mid-stream: the peer's connection ended abnormally, the peer left, or the link was
    // rebuilt (a new PeerConnection has none of the old channels).
    this.#why ??= "the channel closed (peer connection reset, peer gone or link rebuilt)";
    cutOff(this.#sock);
  }

  #socketClosed(): void {
    if (this.#done) return;
    const clean = this.#sentFin && this.#gotFin && this.#why === null;
    if (!clean) {
      this.#why ??= "local connection closed";
      closeQuietly(this.#dc);
    } else if (!this.#finAcked) {
      this.#timer = setTimeout(() => closeQuietly(this.#dc), FIN_ACK_TIMEOUT_MS).unref();
    }
    this.#done = true;
    if (!clean) this.#clearTimer();
    this.#hooks.ended({
      reason: this.#why ?? "closed",
      clean,
      bytesOut: this.#bytesOut,
      bytesIn: this.#bytesIn,
    });
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}

/**
 * End a connection that did not finish: a reset, so that the local program sees an error and
 * never takes a cut-off stream for a complete one.
 */
export function cutOff(sock: Socket): void {
  if (!sock.destroyed) sock.resetAndDestroy();
}

/** Run `f` once the channel is open (now if it is). */
export function whenOpen(dc: RTCDataChannel, f: () => void): void {
  if (dc.readyState === "open") {
    f();
    return;
  }
  const sub = dc.stateChanged.subscribe((s) => {
    if (s !== "open" && s !== "closed") return;
    sub.unSubscribe();
    if (s === "open") f();
  });
}

export function closeQuietly(dc: RTCDataChannel): void {
  try {
    dc.close();
  } catch {
    // already closed
  }
}
