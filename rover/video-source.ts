/**
 * The rover's camera as the agent sees it: RTP packets from a local encoder (GStreamer, ffmpeg)
 * on a local UDP port, handed as they are to every link that carries video (no transcoding; each
 * link's werift sender rewrites SSRC, payload type, sequence and timestamp offsets). Going the
 * other way, towards the encoder: keyframe requests (RTCP PLI to the encoder's RTCP port and/or a
 * command hook) and the target bitrate (a command hook), the lowest of all links' targets since
 * one encoder feeds them all.
 */
import { spawn } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { EventEmitter } from "node:events";
import { PictureLossIndication, RtcpPayloadSpecificFeedback } from "werift";
import type { Logger } from "./link.ts";
import type { VideoConfig } from "./video-config.ts";
import { shouldAnnounce } from "./video-rate.ts";

/** Keyframe requests closer together than this are one request (browsers repeat PLIs). */
const KEYFRAME_GAP_MS = 500;

export interface VideoSourceStats {
  packets: number;
  bytes: number;
  /** Frames (packets with the RTP marker bit: the last of a video frame). */
  frames: number;
  /** Datagrams that were not RTP (or were RTCP) and were dropped. */
  dropped: number;
  keyframeRequests: number;
  /** Keyframe requests merged into an earlier one (within 500 ms). */
  keyframeRequestsMerged: number;
  /** The target bitrate announced to the encoder last (bit/s), or null before the first. */
  targetBps: number | null;
  encoderSsrc: number | null;
}

export class VideoSource extends EventEmitter {
  readonly config: VideoConfig;
  #log: Logger;
  #sock: Socket | null = null;
  #subs = new Set<(rtp: Buffer) => void>();
  #stats: VideoSourceStats = {
    packets: 0,
    bytes: 0,
    frames: 0,
    dropped: 0,
    keyframeRequests: 0,
    keyframeRequestsMerged: 0,
    targetBps: null,
    encoderSsrc: null,
  };
  #lastKeyframeAt = Number.NEGATIVE_INFINITY;
  #keyframeCmdRunning = false;
  #bitrateRunning = false;
  /** The newest bitrate to announce once the running hook exits. */
  #bitratePending: number | null = null;
  #targets = new Map<object, number>();
  #announced: { bps: number; at: number } | null = null;
  readonly #ourSsrc = (Math.random() * 0xffffffff) >>> 0;

  constructor(config: VideoConfig, log: Logger) {
    super();
    this.config = config;
    this.#log = log;
  }

  /** Bind the local RTP port; rejects with one line when it is taken or not ours. */
  async start(): Promise<void> {
    const { host, port } = this.config.listen;
    const sock = createSocket({ type: host.includes(":") ? "udp6" : "udp4" });
    sock.on("message", (msg) => this.#onDatagram(msg));
    await new Promise<void>((resolve, reject) => {
      sock.once("error", (e) =>
        reject(new Error(`--video: cannot listen on ${host}:${port}: ${e.message}`)),
      );
      sock.bind(port, host, () => resolve());
    });
    sock.on("error", (e) => this.#log.warn({ err: e.message }, "video socket error"));
    // A 30 fps keyframe is tens of packets at once: room for bursts.
    try {
      sock.setRecvBufferSize(4 * 1024 * 1024);
    } catch {
      // the system's cap is lower; the default will do
    }
    this.#sock = sock;
    this.#log.info({ listen: `${host}:${port}`, codec: this.config.codec }, "video input");
  }

  stats(): VideoSourceStats {
    return { ...this.#stats };
  }

  /** Receive every RTP packet from now on; returns the unsubscribe. */
  subscribe(f: (rtp: Buffer) => void): () => void {
    this.#subs.add(f);
    return () => this.#subs.delete(f);
  }

  #onDatagram(msg: Buffer): void {
    // RTP version 2, and not RTCP (payload types 200..204 with the marker bit: 72..76 masked).
    const pt = (msg[1] ?? 0) & 0x7f;
    if (msg.length < 12 || (msg[0] ?? 0) >> 6 !== 2 || (pt >= 72 && pt <= 76)) {
      this.#stats.dropped++;
      return;
    }
    this.#stats.packets++;
    this.#stats.bytes += msg.length;
    if ((msg[1] ?? 0) & 0x80) this.#stats.frames++;
    this.#stats.encoderSsrc = msg.readUInt32BE(8);
    for (const f of this.#subs) f(msg);
  }

  /** A browser asked for a keyframe (PLI/FIR): pass it on, at most once per 500 ms. */
  requestKeyframe(reason: string, now = Date.now()): void {
    if (now - this.#lastKeyframeAt < KEYFRAME_GAP_MS) {
      this.#stats.keyframeRequestsMerged++;
      return;
    }
    this.#lastKeyframeAt = now;
    this.#stats.keyframeRequests++;
    this.#log.debug({ reason }, "keyframe request");
    const to = this.config.rtcpTo;
    const ssrc = this.#stats.encoderSsrc;
    if (to && ssrc !== null && this.#sock) {
      const pli = new RtcpPayloadSpecificFeedback({
        feedback: new PictureLossIndication({ senderSsrc: this.#ourSsrc, mediaSsrc: ssrc }),
      }).serialize();
      this.#sock.send(pli, to.port, to.host);
    }
    if (this.config.keyframeCmd && !this.#keyframeCmdRunning) {
      this.#keyframeCmdRunning = true;
      this.#run(this.config.keyframeCmd, { ROVERLINK_VIDEO_KEYFRAME_REASON: reason }, () => {
        this.#keyframeCmdRunning = false;
      });
    }
    this.emit("keyframe-request", reason);
  }

  /** A link's target bitrate (`key`: the link's own object); null when the link is gone. */
  reportTarget(key: object, bps: number | null, now = Date.now()): void {
    if (bps === null) this.#targets.delete(key);
    else this.#targets.set(key, bps);
    if (this.#targets.size === 0) return;
    const lowest = Math.min(...this.#targets.values());
    if (!shouldAnnounce(this.#announced, lowest, now)) return;
    this.#announced = { bps: lowest, at: now };
    this.#stats.targetBps = lowest;
    this.emit("target", lowest);
    this.#announceBitrate(lowest);
  }

  /**
   * One bitrate hook at a time, the newest value next: two hooks run side by side could finish
   * out of order and leave the encoder on the older bitrate (seen in CI: 600 kb/s, then 900).
   */
  #announceBitrate(bps: number): void {
    const cmd = this.config.bitrateCmd;
    if (!cmd) return;
    if (this.#bitrateRunning) {
      this.#bitratePending = bps;
      return;
    }
    this.#bitrateRunning = true;
    this.#run(cmd, { ROVERLINK_VIDEO_BITRATE: String(bps) }, () => {
      this.#bitrateRunning = false;
      const next = this.#bitratePending;
      this.#bitratePending = null;
      if (next !== null) this.#announceBitrate(next);
    });
  }

  #run(cmd: string, env: Record<string, string>, done: () => void): void {
    const child = spawn("/bin/sh", ["-c", cmd], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    child.stderr?.on("data", (d: Buffer) => {
      err = (err + d.toString()).slice(-500);
    });
    child.on("error", (e) => {
      this.#log.warn({ cmd, err: e.message }, "video hook failed to start");
      done();
    });
    child.on("exit", (code) => {
      if (code !== 0) this.#log.warn({ cmd, code, err: err.trim() }, "video hook failed");
      done();
    });
  }

  close(): void {
    this.#subs.clear();
    this.#sock?.close();
    this.#sock = null;
  }
}
