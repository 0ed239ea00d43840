/**
 * A camera for tests and the bench: ffmpeg's test pattern as VP8 RTP sent to the agent's --video
 * port, as a rover's encoder would. ffmpeg must be installed (.ci/run installs it): without it
 * these throw, so that tests fail rather than skip.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { type StampLayout, stampFilter, stampLayout } from "./video-stamp.ts";

export function requireFfmpeg(): void {
  try {
    execFileSync("ffmpeg", ["-hide_banner", "-version"], { stdio: "ignore" });
  } catch {
    throw new Error("ffmpeg is missing: apt-get install -y ffmpeg (the video tests need it)");
  }
}

/** VP8 for low latency: realtime deadline, no lookahead, a keyframe every `gop` frames. */
export function vp8Args(o: { kbps?: number; gop?: number } = {}): string[] {
  return [
    ...["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "16"],
    ...["-lag-in-frames", "0", "-auto-alt-ref", "0", "-error-resilient", "1"],
    ...["-b:v", `${o.kbps ?? 1000}k`, "-g", String(o.gop ?? 30)],
  ];
}

/** RTP to the agent; 1200-byte packets leave room for SRTP and TURN headers under 1500. */
export function rtpOut(port: number): string[] {
  return ["-f", "rtp", "-payload_type", "96", `rtp://127.0.0.1:${port}?pkt_size=1200`];
}

function run(args: string[]): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const child = spawn("ffmpeg", args, { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    const out: Buffer[] = [];
    child.stdout?.on("data", (d: Buffer) => out.push(d));
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`ffmpeg failed: ${err.trim()}`)),
    );
  });
}

/**
 * ffmpeg's test pattern encoded once to a VP8 file: streaming it then costs no encoding, so that
 * a loaded machine's CPU does not decide the frame rate the agent receives (live VP8 at 640×480
 * took 17–25 ms of CPU a frame on the shared 2-core test machine). Resolves with the file.
 */
export async function encodeTestClip(o: {
  file: string;
  seconds?: number;
  fps?: number;
  size?: string;
  kbps?: number;
  gop?: number;
}): Promise<string> {
  requireFfmpeg();
  const src = `testsrc=size=${o.size ?? "640x480"}:rate=${o.fps ?? 30}`;
  await run([
    ...["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", src],
    ...["-t", String(o.seconds ?? 10), ...vp8Args(o), o.file],
  ]);
  return o.file;
}

/** ffmpeg's arguments for streamClip (to run it elsewhere, e.g. in a lab namespace). */
export function streamClipArgs(o: { file: string; port: number }): string[] {
  const args = ["-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", o.file];
  args.push("-c:v", "copy", ...rtpOut(o.port));
  return args;
}

/** Send a VP8 file as RTP in real time, looping, without re-encoding (the camera's stream). */
export function streamClip(o: { file: string; port: number }): ChildProcess {
  requireFfmpeg();
  return spawn("ffmpeg", streamClipArgs(o), { stdio: ["ignore", "ignore", "pipe"] });
}

/** A live ffmpeg camera: RTP to `port`, the picture's size and rate, VP8's bitrate and GOP. */
export interface LiveSource {
  port: number;
  fps?: number;
  size?: string;
  kbps?: number;
  gop?: number;
}

/** ffmpeg's moving test pattern (default 640×480) at `fps`, encoded live, paced by -re. */
export function startTestSource(o: LiveSource): ChildProcess {
  requireFfmpeg();
  const src = `testsrc=size=${o.size ?? "640x480"}:rate=${o.fps ?? 30}`;
  const args = ["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", src];
  args.push(...vp8Args(o), ...rtpOut(o.port));
  return spawn("ffmpeg", args, { stdio: ["ignore", "ignore", "pipe"] });
}

function sizeOf(size: string): { width: number; height: number } {
  const [w, h] = size.split("x").map(Number);
  if (!w || !h) throw new Error(`size must be WxH, got "${size}"`);
  return { width: w, height: h };
}

/** The stamp's layout for a `WxH` picture (video-stamp.ts). */
export function stampLayoutFor(size: string): StampLayout {
  const { width, height } = sizeOf(size);
  return stampLayout(width, height);
}

/**
 * A live camera for glass-to-glass latency: the moving test pattern with the wall-clock time
 * ffmpeg took each frame drawn along its top (video-stamp.ts), VP8 encoded live, paced by -re.
 */
export function startStampedSource(o: LiveSource): ChildProcess {
  requireFfmpeg();
  const size = o.size ?? "640x480";
  const fps = o.fps ?? 30;
  const args = ["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi"];
  args.push("-i", `testsrc=size=${size}:rate=${fps}`);
  args.push("-filter_complex", stampFilter(stampLayoutFor(size), {}), "-map", "[v]");
  // One frame out per frame in (no duplicates or drops from ffmpeg's frame-rate logic), timed in
  // ms from the capture clock.
  args.push("-fps_mode", "passthrough", "-enc_time_base", "1/1000");
  args.push(...vp8Args(o), ...rtpOut(o.port));
  return spawn("ffmpeg", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/**
 * One frame stamped with a known time (epoch ms), through the same VP8 encoder as the live
 * source and decoded back: written as PNG to `png` (for a browser to read) and returned as its
 * luma plane (for Node to read), to check the stamp's reader on a frame whose answer is known.
 */
export async function stampedFrame(o: {
  at: number;
  size?: string;
  kbps?: number;
  webm: string;
  png: string;
}): Promise<{ luma: Buffer; width: number; height: number }> {
  requireFfmpeg();
  const size = o.size ?? "640x480";
  const { width, height } = sizeOf(size);
  const quiet = ["-hide_banner", "-loglevel", "error", "-y"];
  await run([
    ...[...quiet, "-f", "lavfi", "-i", `testsrc=size=${size}:rate=30`],
    ...["-filter_complex", stampFilter(stampLayoutFor(size), { at: o.at })],
    ...["-map", "[v]", "-frames:v", "1", "-enc_time_base", "1/1000", ...vp8Args(o), o.webm],
  ]);
  await run([...quiet, "-i", o.webm, "-frames:v", "1", o.png]);
  const luma = await run([
    ...[...quiet, "-i", o.webm, "-frames:v", "1"],
    ...["-f", "rawvideo", "-pix_fmt", "gray", "-"],
  ]);
  return { luma, width, height };
}
