/**
 * File transfers between agents (wire: shared/file-wire.ts; API: docs/rover.md, "Files").
 * `sendFile` sends one file on its own data channel and resolves once the receiver verified its
 * sha256 and put it under its name; across a handover the transfer goes on: an ICE restart keeps
 * the channel, and after a rebuild the sender opens it again and resumes from the offset the
 * receiver says it kept. `FileReceiver` writes what peers send into one directory: under a hidden
 * temporary name, fsync'd, renamed once the sha256 matches. I/O only; decisions in file-wire.ts.
 */
import { createHash, type Hash, randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import {
  closeSync,
  createReadStream,
  existsSync,
  fsyncSync,
  lstatSync,
  openSync,
  readdirSync,
  renameSync,
  statfsSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { type FileHandle, open, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import type { RTCDataChannel } from "werift";
import {
  badFileName,
  DEFAULT_RECEIVE_LIMITS,
  decodeFileMessage,
  encodeFileMessage,
  type FileMessage,
  fileLabel,
  PART_PREFIX,
  parseFileLabel,
  partName,
  type ReceiveLimits,
  refuseOffer,
} from "../shared/file-wire.ts";
import { DEFAULT_MAX_FRAME_BYTES } from "../shared/link/reliable.ts";
import { errnoText } from "./errno.ts";
import { holdStreamIdUntilReset, remoteMaxMessageSize } from "./werift-internals.ts";
import { checkDirWritable } from "./write-check.ts";

/** What the file code needs of the agent (rover/agent.ts). */
export interface FileAgent {
  openChannel(peer: string, label: string, opts: { ordered: boolean }): RTCDataChannel;
  on(event: "file-channel", listener: (peer: string, dc: RTCDataChannel) => void): unknown;
  on(event: "link-up", listener: (peer: string) => void): unknown;
  on(event: "stopped", listener: () => void): unknown;
  off(event: "file-channel", listener: (peer: string, dc: RTCDataChannel) => void): unknown;
  off(event: "link-up", listener: (peer: string) => void): unknown;
  off(event: "stopped", listener: () => void): unknown;
  /** The room's other peers as the agent knows them; a transfer to one not there fails at once. */
  peers?(): { id: string }[];
  /** Whether a link to `peer` exists (up or recovering). */
  hasLink?(peer: string): boolean;
  /** Count a protocol breach against the peer's link (shared/link/conduct.ts). */
  violation?(
    peer: string,
    kind: "bad-transfer" | "refused-request" | "abandoned-transfer",
    detail: string,
  ): void;
}

export interface FileLogger {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
}

/** A transfer that ended without the file delivered; the message is the one-line reason. */
export class FileTransferError extends Error {
  override name = "FileTransferError";
}

/** Stop handing chunks to the channel above this many buffered bytes; go on below the low mark. */
const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
/** The receiver says how far it is at least this often (bytes): progress, and stalls seen. */
const ACK_EVERY = 256 * 1024;
/** A closed channel whose link is still up is opened again after this (ms). */
const REOPEN_MS = 1_000;
/** A file channel must bring its offer within this long (ms)... */
const OFFER_WAIT_MS = 10_000;
/** ...and a peer may have this many such channels waiting at once. */
const MAX_UNOFFERED = 8;
/** The receiver forgets an interrupted transfer (and its temp file) after this (ms). */
const RESUME_WINDOW_MS = 10 * 60_000;

export interface FileProgress {
  /** Bytes the receiver said it kept. */
  acked: number;
  /** Bytes handed to the channel (resends after a rebuild counted again). */
  sent: number;
  size: number;
}

export interface FileSent {
  id: string;
  name: string;
  bytes: number;
  sha256: string;
  ms: number;
  /** Offsets the receiver accepted when the channel was opened again (one per resume). */
  resumedFrom: number[];
  /** Bytes put on the wire in all: `bytes` plus what a resume sent again. */
  sentBytes: number;
  /** Longest time without the receiver acknowledging more (ms): a handover's gap shows here. */
  maxStallMs: number;
}

export interface SendFileOptions {
  /** The name the receiver gives it (default: the file's base name). */
  name?: string;
  /** Give up when the receiver acknowledges nothing for this long (ms; default 120 000). */
  idleTimeoutMs?: number;
  /** A transfer id (default random); the same id resumes the receiver's interrupted transfer. */
  id?: string;
}

/**
 * One file on its way to a peer: events `progress` (FileProgress), `resumed` (offset),
 * `interrupted` (the channel closed under it); `done` resolves on verified delivery.
 */
export class OutgoingFile extends EventEmitter {
  readonly id: string;
  readonly peer: string;
  readonly path: string;
  readonly name: string;
  readonly done: Promise<FileSent>;
  #agent: FileAgent;
  #idleMs: number;
  #fh: FileHandle | null = null;
  #size = 0;
  #sha = "";
  #dc: RTCDataChannel | null = null;
  #pos = 0;
  #acked = 0;
  #sent = 0;
  #opens = 0;
  #resumed: number[] = [];
  #pumping = false;
  #finished = false;
  #lastProgress = Date.now();
  #maxStall = 0;
  #started = Date.now();
  #timers: NodeJS.Timeout[] = [];
  #settle!: { ok: (r: FileSent) => void; fail: (e: Error) => void };

  constructor(agent: FileAgent, peer: string, path: string, o: SendFileOptions = {}) {
    super();
    this.#agent = agent;
    this.peer = peer;
    this.path = path;
    this.name = o.name ?? basename(path);
    this.id = o.id ?? randomBytes(6).toString("hex");
    this.#idleMs = o.idleTimeoutMs ?? 120_000;
    this.done = new Promise<FileSent>((ok, fail) => {
      this.#settle = { ok, fail };
    });
    this.done.catch(() => {}); // the caller awaits it; an early failure must not be unhandled
    void this.#start();
  }

  async #start(): Promise<void> {
    try {
      const bad = badFileName(this.name);
      if (bad) throw new FileTransferError(`cannot send ${JSON.stringify(this.name)}: ${bad}`);
      const unreadable = (e: NodeJS.ErrnoException) => {
        throw new FileTransferError(`cannot read ${this.path}: ${errnoText(e)}`);
      };
      const st = await stat(this.path).catch(unreadable);
      if (!st.isFile()) throw new FileTransferError(`${this.path} is not a regular file`);
      this.#size = st.size;
      // Opened first: an unreadable file (EACCES) is said as a missing one is, in one line.
      this.#fh = await open(this.path, "r").catch(unreadable);
      this.#sha = await sha256File(this.path).catch(unreadable);
    } catch (e) {
      this.#fail(e instanceof FileTransferError ? e : new FileTransferError(String(e)));
      return;
    }
    if (this.#finished) return;
    const a = this.#agent;
    if (a.peers && !a.hasLink?.(this.peer) && !a.peers().some((p) => p.id === this.peer)) {
      this.#fail(new FileTransferError(`no peer "${this.peer}" in the room`));
      return;
    }
    this.#started = Date.now();
    this.#lastProgress = this.#started;
    this.#agent.on("link-up", this.#onLinkUp);
    this.#agent.on("stopped", this.#onStopped);
    // Timers do not keep the process alive: the agent does while it runs, and its stop ends this.
    const idle = setInterval(() => {
      if (Date.now() - this.#lastProgress > this.#idleMs)
        this.#fail(
          new FileTransferError(
            `no progress for ${Math.round(this.#idleMs / 1000)} s (${this.#acked} of ${this.#size} bytes delivered)`,
          ),
        );
    }, 1_000);
    idle.unref();
    this.#timers.push(idle);
    this.#open();
  }

  /** Stop the transfer (the receiver drops its part after its resume window). */
  cancel(reason = "cancelled"): void {
    this.#fail(new FileTransferError(reason));
  }

  #onStopped = () => {
    this.#fail(
      new FileTransferError(`the agent stopped (${this.#acked} of ${this.#size} bytes delivered)`),
    );
  };

  #onLinkUp = (peer: string) => {
    if (peer === this.peer && !this.#dc && !this.#finished) this.#open();
  };

  #open(): void {
    let dc: RTCDataChannel;
    try {
      dc = this.#agent.openChannel(this.peer, fileLabel(this.id), { ordered: true });
    } catch {
      return; // no link now: `link-up` opens it
    }
    this.#dc = dc;
    holdStreamIdUntilReset(dc);
    dc.bufferedAmountLowThreshold = LOW_WATER;
    dc.bufferedAmountLow.subscribe(() => {
      if (this.#dc === dc) void this.#pump();
    });
    const offer = () =>
      this.#send(dc, { t: "offer", name: this.name, size: this.#size, sha256: this.#sha });
    if (dc.readyState === "open") offer();
    dc.stateChanged.subscribe((s) => {
      if (s === "open") offer();
      if (s !== "closed" || this.#dc !== dc) return;
      this.#dc = null;
      if (this.#finished) return;
      this.emit("interrupted");
      // A rebuild brings `link-up`; a channel closed while the link stays up is opened again.
      const t = setTimeout(() => {
        if (!this.#dc && !this.#finished) this.#open();
      }, REOPEN_MS);
      t.unref();
      this.#timers.push(t);
    });
    dc.onMessage.subscribe((m) => {
      if (this.#dc !== dc) return;
      if (typeof m !== "string") {
        this.#fail(new FileTransferError("the receiver sent bytes on the transfer channel"));
        return;
      }
      let msg: FileMessage;
      try {
        msg = decodeFileMessage(m);
      } catch (e) {
        this.#fail(
          new FileTransferError(`the receiver broke the protocol: ${(e as Error).message}`),
        );
        return;
      }
      this.#onMessage(dc, msg);
    });
  }

  #onMessage(dc: RTCDataChannel, m: FileMessage): void {
    switch (m.t) {
      case "accept":
        if (m.offset > this.#size) {
          this.#fail(new FileTransferError(`the receiver accepted at ${m.offset}, past the end`));
          return;
        }
        if (this.#opens++ > 0 || m.offset > 0) {
          this.#resumed.push(m.offset);
          this.emit("resumed", m.offset);
        }
        this.#pos = m.offset;
        // The receiver's word, also when lower than before (it forgot a part): the bar and the
        // idle timer count from there, not from a high mark that would hold them still.
        this.#acked = m.offset;
        this.#lastProgress = Date.now();
        this.#progress(m.offset);
        void this.#pump();
        return;
      case "ack":
        this.#progress(m.offset);
        return;
      case "refuse":
        this.#fail(new FileTransferError(`${this.peer} refused the file: ${m.reason}`), false);
        return;
      case "fail":
        this.#fail(
          new FileTransferError(`${this.peer} could not take the file: ${m.reason}`),
          false,
        );
        return;
      case "done":
        if (m.sha256 !== this.#sha) {
          this.#fail(new FileTransferError("the receiver reports a different sha256"));
          return;
        }
        this.#progress(this.#size);
        this.#finish(dc);
        return;
      default:
        this.#fail(new FileTransferError(`unexpected "${m.t}" from the receiver`));
    }
  }

  #progress(acked: number): void {
    if (acked > this.#acked) {
      const now = Date.now();
      this.#maxStall = Math.max(this.#maxStall, now - this.#lastProgress);
      this.#lastProgress = now;
    }
    this.#acked = Math.max(this.#acked, acked);
    this.emit("progress", { acked: this.#acked, sent: this.#sent, size: this.#size });
  }

  /** Hand chunks to the channel while its buffer is under the high-water mark. */
  async #pump(): Promise<void> {
    const dc = this.#dc;
    const fh = this.#fh;
    if (this.#pumping || !dc || !fh) return;
    this.#pumping = true;
    const chunk = chunkBytes(dc);
    try {
      while (
        this.#dc === dc &&
        dc.readyState === "open" &&
        this.#pos < this.#size &&
        dc.bufferedAmount < HIGH_WATER
      ) {
        const n = Math.min(chunk, this.#size - this.#pos);
        const buf = Buffer.allocUnsafe(n);
        const { bytesRead } = await fh.read(buf, 0, n, this.#pos);
        if (bytesRead !== n) throw new FileTransferError(`${this.path} shrank while being sent`);
        if (this.#dc !== dc || dc.readyState !== "open") break;
        dc.send(buf);
        this.#pos += n;
        this.#sent += n;
      }
    } catch (e) {
      if (e instanceof FileTransferError) this.#fail(e);
      // Otherwise the channel is closing under us: the next open resumes.
    } finally {
      this.#pumping = false;
    }
    // Room may have come (bufferedamountlow) while a read was pending.
    if (
      this.#dc === dc &&
      dc.readyState === "open" &&
      this.#pos < this.#size &&
      dc.bufferedAmount < HIGH_WATER
    )
      void this.#pump();
  }

  #send(dc: RTCDataChannel, m: FileMessage): void {
    try {
      dc.send(encodeFileMessage(m));
    } catch {
      // closing: the next open starts over with an offer
    }
  }

  #finish(dc: RTCDataChannel): void {
    if (this.#finished) return;
    this.#cleanup();
    closeQuietly(dc);
    this.#settle.ok({
      id: this.id,
      name: this.name,
      bytes: this.#size,
      sha256: this.#sha,
      ms: Date.now() - this.#started,
      resumedFrom: this.#resumed,
      sentBytes: this.#sent,
      maxStallMs: this.#maxStall,
    });
  }

  /**
   * `tell`: say so to the receiver first (`fail`), which then drops its part at once rather than
   * holding it, and a slot of the peer's, for its resume window.
   */
  #fail(e: Error, tell = true): void {
    if (this.#finished) return;
    const dc = this.#dc;
    this.#cleanup();
    if (dc) {
      if (tell && dc.readyState === "open") this.#send(dc, { t: "fail", reason: e.message });
      closeQuietly(dc);
    }
    this.#settle.fail(e);
  }

  #cleanup(): void {
    this.#finished = true;
    this.#dc = null;
    for (const t of this.#timers) clearTimeout(t);
    this.#agent.off("link-up", this.#onLinkUp);
    this.#agent.off("stopped", this.#onStopped);
    void this.#fh?.close().catch(() => {});
    this.#fh = null;
  }
}

/** Send `path` to `peer`; `done` resolves once the receiver verified it. */
export function sendFile(
  agent: FileAgent,
  peer: string,
  path: string,
  o: SendFileOptions = {},
): OutgoingFile {
  return new OutgoingFile(agent, peer, path, o);
}

/** Chunks as large as the peer takes in one message, at most 64 KiB. */
function chunkBytes(dc: RTCDataChannel): number {
  const peer = remoteMaxMessageSize(dc) ?? DEFAULT_MAX_FRAME_BYTES;
  return peer > 0 ? Math.min(peer, DEFAULT_MAX_FRAME_BYTES) : DEFAULT_MAX_FRAME_BYTES;
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }))
    h.update(chunk as Buffer);
  return h.digest("hex");
}

/** The receive directory cannot be used; the message is one line. */
export class FileReceiveError extends Error {
  override name = "FileReceiveError";
}

export interface ReceivedFile {
  peer: string;
  id: string;
  name: string;
  path: string;
  bytes: number;
  sha256: string;
  /** Offsets at which the transfer was resumed on a new channel. */
  resumedFrom: number[];
}

export interface FileReceiverOptions {
  agent: FileAgent;
  dir: string;
  limits?: Partial<ReceiveLimits>;
  log: FileLogger;
}

interface Incoming {
  peer: string;
  id: string;
  name: string;
  size: number;
  sha256: string;
  part: string;
  fd: number;
  hash: Hash;
  written: number;
  ackedAt: number;
  dc: RTCDataChannel | null;
  resumedFrom: number[];
  forget: NodeJS.Timeout | null;
}

/**
 * Takes the files peers send into `dir`: events `offer` ({peer, id, name, size}), `progress`
 * ({peer, id, name, written, size}), `received` (ReceivedFile), `failed` ({peer, id, name,
 * reason}), `refused` ({peer, id, name, reason}).
 */
export class FileReceiver extends EventEmitter {
  readonly dir: string;
  readonly limits: ReceiveLimits;
  #o: FileReceiverOptions;
  #transfers = new Map<string, Incoming>();
  /** File channels per peer that brought no offer yet. */
  #unoffered = new Map<string, number>();

  constructor(o: FileReceiverOptions) {
    super();
    this.#o = o;
    this.dir = resolve(o.dir);
    this.limits = { ...DEFAULT_RECEIVE_LIMITS, ...o.limits };
  }

  /** Checks the directory (one-line FileReceiveError) and starts taking files. */
  start(): void {
    try {
      if (!statSync(this.dir).isDirectory()) throw new Error("not a directory");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new FileReceiveError(
        `--receive-dir ${this.dir}: ${code === "ENOENT" ? "no such directory" : (e as Error).message}`,
      );
    }
    try {
      checkDirWritable(this.dir);
    } catch (e) {
      throw new FileReceiveError(`--receive-dir ${this.dir}: not writable (${errnoText(e)})`);
    }
    this.#removeStaleParts();
    this.#o.agent.on("file-channel", this.#onChannel);
  }

  /**
   * Parts an earlier process left (killed mid-transfer): neither side resumes after its own
   * restart, so they are garbage, hidden (a leading dot), holding disk and refusing the same
   * transfer again as EEXIST or as "not enough free space".
   */
  #removeStaleParts(): void {
    let n = 0;
    let bytes = 0;
    for (const name of readdirSync(this.dir)) {
      if (!name.startsWith(PART_PREFIX)) continue;
      const path = join(this.dir, name);
      try {
        const st = lstatSync(path);
        if (!st.isFile()) continue;
        unlinkSync(path);
        n++;
        bytes += st.size;
      } catch {
        // gone meanwhile, or not ours to remove: the offer that needs it says why
      }
    }
    if (n > 0)
      this.#o.log.warn(
        { dir: this.dir, files: n, bytes },
        "removed partial files an earlier run left (transfers interrupted by a restart)",
      );
  }

  /** Stop taking files; interrupted transfers' temp files are removed. */
  stop(): void {
    this.#o.agent.off("file-channel", this.#onChannel);
    for (const t of this.#transfers.values()) this.#drop(t);
  }

  active(peer?: string): number {
    let n = 0;
    for (const t of this.#transfers.values()) if (peer === undefined || t.peer === peer) n++;
    return n;
  }

  #onChannel = (peer: string, dc: RTCDataChannel) => {
    holdStreamIdUntilReset(dc);
    const id = parseFileLabel(dc.label);
    if (!id) {
      this.#breach(peer, dc, null, `malformed file channel label "${dc.label.slice(0, 64)}"`);
      return;
    }
    // File channels are outside the link's channel cap (their own labels): one that brings no
    // offer is held only briefly, and only a few at a time (1800 were held, without end).
    const waiting = this.#unoffered.get(peer) ?? 0;
    if (waiting >= MAX_UNOFFERED) {
      this.#breach(peer, dc, null, `more than ${MAX_UNOFFERED} file channels without an offer`);
      return;
    }
    this.#unoffered.set(peer, waiting + 1);
    let offered = false;
    const settle = () => {
      if (offered) return;
      offered = true;
      clearTimeout(noOffer);
      const n = (this.#unoffered.get(peer) ?? 1) - 1;
      if (n > 0) this.#unoffered.set(peer, n);
      else this.#unoffered.delete(peer);
    };
    const noOffer = setTimeout(() => {
      if (offered) return;
      settle();
      this.#breach(peer, dc, null, `no offer within ${OFFER_WAIT_MS / 1000} s on a file channel`);
    }, OFFER_WAIT_MS);
    noOffer.unref();
    dc.stateChanged.subscribe((st) => {
      if (st === "closed") settle();
    });
    let bound: Incoming | null = null;
    dc.onMessage.subscribe((m) => {
      settle();
      // Inside werift's receive path: nothing may escape.
      try {
        if (typeof m === "string") {
          if (bound) {
            const gaveUp = senderGaveUp(m);
            if (gaveUp !== null) {
              this.#o.agent.violation?.(
                peer,
                "abandoned-transfer",
                `the sender gave up: ${gaveUp}`,
              );
              this.#failTransfer(bound, `the sender gave up: ${gaveUp}`);
            } else this.#breach(peer, dc, bound, "a second offer on one channel");
            return;
          }
          bound = this.#onOffer(peer, id, dc, m);
        } else if (!bound || bound.dc !== dc) {
          this.#breach(peer, dc, null, "file bytes before an accepted offer");
        } else this.#onBytes(bound, m);
      } catch (e) {
        this.#o.log.warn({ peer, id, err: (e as Error).message }, "file transfer error");
      }
    });
    dc.stateChanged.subscribe((s) => {
      if (s !== "closed" || !bound || bound.dc !== dc) return;
      const t = bound;
      t.dc = null;
      // Kept for the sender to resume on a new channel; forgotten if it never comes back.
      t.forget = setTimeout(() => {
        if (this.#transfers.get(key(t)) !== t || t.dc) return;
        this.#drop(t);
        this.#o.log.warn({ peer, id, name: t.name }, "file transfer not resumed in time: dropped");
        this.emit("failed", { peer, id, name: t.name, reason: "not resumed in time" });
      }, RESUME_WINDOW_MS);
      t.forget.unref();
    });
  };

  #onOffer(peer: string, id: string, dc: RTCDataChannel, raw: string): Incoming | null {
    let m: FileMessage;
    try {
      m = decodeFileMessage(raw);
    } catch (e) {
      this.#breach(peer, dc, null, (e as Error).message);
      return null;
    }
    if (m.t !== "offer") {
      this.#breach(peer, dc, null, `"${m.t}" before an offer`);
      return null;
    }
    const k = `${peer}\n${id}`;
    const old = this.#transfers.get(k);
    if (old) {
      if (old.name !== m.name || old.size !== m.size || old.sha256 !== m.sha256) {
        this.#refuse(
          peer,
          id,
          dc,
          m.name,
          "a different file under the id of a transfer in progress",
        );
        return null;
      }
      if (old.dc && old.dc !== dc) closeQuietly(old.dc);
      if (old.forget) clearTimeout(old.forget);
      old.forget = null;
      old.dc = dc;
      old.resumedFrom.push(old.written);
      send(dc, { t: "accept", offset: old.written });
      this.#o.log.info(
        { peer, id, name: old.name, offset: old.written, size: old.size },
        "file transfer resumed",
      );
      return old;
    }
    const final = join(this.dir, m.name);
    const reason = refuseOffer(m, {
      limits: this.limits,
      active: this.active(peer),
      exists: !badFileName(m.name) && existsSync(final),
      // What transfers under way still need is not free (two large ones overcommitted the disk).
      freeBytes: freeBytes(this.dir, this.#stillNeeded()),
    });
    if (reason) {
      this.#refuse(peer, id, dc, m.name, reason);
      return null;
    }
    const part = join(this.dir, partName(peer, id));
    let fd: number;
    try {
      fd = openSync(part, "wx", 0o600);
    } catch (e) {
      this.#refuse(peer, id, dc, m.name, `cannot write: ${errnoText(e)}`);
      return null;
    }
    const t: Incoming = {
      peer,
      id,
      name: m.name,
      size: m.size,
      sha256: m.sha256,
      part,
      fd,
      hash: createHash("sha256"),
      written: 0,
      ackedAt: 0,
      dc,
      resumedFrom: [],
      forget: null,
    };
    this.#transfers.set(k, t);
    send(dc, { t: "accept", offset: 0 });
    this.emit("offer", { peer, id, name: m.name, size: m.size });
    this.#o.log.info({ peer, id, name: m.name, size: m.size }, "file transfer started");
    if (m.size === 0) this.#complete(t);
    return t;
  }

  /** Bytes the transfers in progress have yet to write. */
  #stillNeeded(): number {
    let n = 0;
    for (const t of this.#transfers.values()) n += t.size - t.written;
    return n;
  }

  #onBytes(t: Incoming, chunk: Buffer): void {
    // Chunks in flight after the transfer failed (a full disk): one failure, said once.
    if (t.fd < 0) return;
    if (t.written + chunk.length > t.size) {
      this.#breach(t.peer, t.dc, t, `bytes past the declared size of ${t.size}`);
      return;
    }
    try {
      writeSync(t.fd, chunk, 0, chunk.length, t.written);
    } catch (e) {
      this.#failTransfer(t, `write failed: ${errnoText(e)}`);
      return;
    }
    t.hash.update(chunk);
    t.written += chunk.length;
    this.emit("progress", {
      peer: t.peer,
      id: t.id,
      name: t.name,
      written: t.written,
      size: t.size,
    });
    if (t.written === t.size) this.#complete(t);
    else if (t.written - t.ackedAt >= ACK_EVERY && t.dc) {
      t.ackedAt = t.written;
      send(t.dc, { t: "ack", offset: t.written });
    }
  }

  /** Every byte is here: on disk, checked, then under its name. */
  #complete(t: Incoming): void {
    const got = t.hash.digest("hex");
    if (got !== t.sha256) {
      this.#failTransfer(
        t,
        `sha256 mismatch (got ${got.slice(0, 12)}…, offered ${t.sha256.slice(0, 12)}…)`,
      );
      return;
    }
    const final = join(this.dir, t.name);
    try {
      fsyncSync(t.fd);
      closeSync(t.fd);
      t.fd = -1;
      if (existsSync(final)) throw new Error(`"${t.name}" appeared meanwhile`);
      renameSync(t.part, final);
      syncDir(this.dir);
    } catch (e) {
      this.#failTransfer(t, errnoText(e));
      return;
    }
    this.#transfers.delete(key(t));
    if (t.dc) {
      send(t.dc, { t: "done", sha256: got });
      const dc = t.dc;
      // The sender closes it once it has `done`; ours closes it if the sender never does.
      setTimeout(() => closeQuietly(dc), 10_000).unref();
    }
    const r: ReceivedFile = {
      peer: t.peer,
      id: t.id,
      name: t.name,
      path: final,
      bytes: t.size,
      sha256: got,
      resumedFrom: t.resumedFrom,
    };
    this.#o.log.info({ ...r }, "file received");
    this.emit("received", r);
  }

  #refuse(peer: string, id: string, dc: RTCDataChannel, name: string, reason: string): void {
    this.#o.agent.violation?.(peer, "refused-request", `file refused: ${reason}`);
    send(dc, { t: "refuse", reason });
    this.#o.log.warn({ peer, id, name: name.slice(0, 64), reason }, "file refused");
    this.emit("refused", { peer, id, name, reason });
    setTimeout(() => closeQuietly(dc), 5_000).unref();
  }

  #failTransfer(t: Incoming, reason: string): void {
    if (t.dc) {
      send(t.dc, { t: "fail", reason });
      const dc = t.dc;
      setTimeout(() => closeQuietly(dc), 5_000).unref();
    }
    this.#drop(t);
    this.#o.log.warn({ peer: t.peer, id: t.id, name: t.name, reason }, "file transfer failed");
    this.emit("failed", { peer: t.peer, id: t.id, name: t.name, reason });
  }

  /** A breach of the protocol: counted against the peer; its transfer (if any) ends. */
  #breach(peer: string, dc: RTCDataChannel | null, t: Incoming | null, detail: string): void {
    this.#o.agent.violation?.(peer, "bad-transfer", detail);
    if (t) this.#failTransfer(t, detail);
    else {
      if (dc) send(dc, { t: "fail", reason: detail });
      this.#o.log.warn({ peer, reason: detail }, "file transfer refused");
      if (dc) setTimeout(() => closeQuietly(dc), 1_000).unref();
    }
  }

  #drop(t: Incoming): void {
    this.#transfers.delete(key(t));
    if (t.forget) clearTimeout(t.forget);
    try {
      if (t.fd >= 0) closeSync(t.fd);
    } catch {
      // closed already
    }
    t.fd = -1;
    try {
      unlinkSync(t.part);
    } catch {
      // gone already
    }
  }
}

/** The sender's `fail` on its transfer channel: its reason, or null for anything else. */
function senderGaveUp(raw: string): string | null {
  try {
    const m = decodeFileMessage(raw);
    return m.t === "fail" ? m.reason : null;
  } catch {
    return null;
  }
}

function key(t: Incoming): string {
  return `${t.peer}\n${t.id}`;
}

function send(dc: RTCDataChannel, m: FileMessage): void {
  try {
    dc.send(encodeFileMessage(m));
  } catch {
    // closing
  }
}

function freeBytes(dir: string, reserved: number): number | null {
  try {
    const s = statfsSync(dir);
    return Math.max(0, s.bavail * s.bsize - reserved);
  } catch {
    return null;
  }
}

/** The rename is durable once the directory is. */
function syncDir(dir: string): void {
  let fd = -1;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // some file systems refuse a directory fsync; the rename stands
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

function closeQuietly(dc: RTCDataChannel): void {
  try {
    dc.close();
  } catch {
    // closed already
  }
}
