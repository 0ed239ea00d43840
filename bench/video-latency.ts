/**
 * Glass-to-glass latency of the rover's camera in the console: a live ffmpeg source draws the
 * wall-clock time it took each frame into the picture (test/browser/video-stamp.ts), VP8 encodes
 * it and sends it as RTP to a `roverlink rover --video` process; Debian's Chromium, signed into
 * the console from the local edge, shows it, and the page reads the time back from every frame it
 * presents (requestVideoFrameCallback → canvas). One machine, one clock:
 *  - shown: the frame's expected display time − its stamp (capture → encode → RTP → agent → SRTP
 *    → Chromium's jitter buffer, decoder and compositor);
 *  - received: the time Chromium received the frame's last packet − its stamp (the part before
 *    the browser's own buffering and decoding).
 * The reader is first checked on a frame stamped with a known time through the same encoder.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { freePort, type LocalEdge, REPO_ROOT } from "../rover/local-edge.ts";
import { mintToken } from "../shared/token.ts";
import { launchChromium } from "../test/browser/chromium.ts";
import {
  requireFfmpeg,
  stampedFrame,
  stampLayoutFor,
  startStampedSource,
} from "../test/browser/video-feed.ts";
import { blockCentres, decodeStamp, latencyMs, stampOf } from "../test/browser/video-stamp.ts";
import { BENCH_SECRET } from "./peers.ts";
import { processCpuSeconds, type Summary, sleep, summarize } from "./stats.ts";

export interface GlassToGlass {
  available: boolean;
  note?: string;
  source?: string;
  /** The reader on a frame stamped with a known time: what it read (null: nothing valid). */
  knownFrame?: { stamp: number; read: number | null };
  /** Frames the page presented in the window, and how many carried a valid stamp. */
  framesSeen?: number;
  framesValid?: number;
  /** Distinct stamps per second among the valid frames (the frame rate the page presented). */
  fps?: number;
  /** Frames per second the agent received from the live encoder over the window. */
  sourceFps?: number;
  shownMs?: Summary;
  receivedMs?: Summary;
  /**
   * Frames whose receive time read before their stamp (impossible: a measure of how far
   * Chromium's receiveTime and the wall clock disagree).
   */
  receivedBeforeStamp?: number;
  /** Every valid frame: [shown − stamp, received − stamp (null: not reported)], ms. */
  samples?: [number, number | null][];
  /** CPU over the window, % of one core: the live encoder, the agent. */
  cpu?: { ffmpeg: number; agent: number };
  /** 1-minute load average at the start and end of the window. */
  load?: [number, number];
}

const ROOM = "bench-glass";
/** Frames sampled in the page (full / quick run). */
const FRAMES = { full: 450, quick: 150 };
/** Latencies beyond ± this are a misread stamp that passed the check, not a latency. */
const SANE_MS = 10_000;

/** Frames the agent received from the encoder so far (its `roverlink_video_frames`). */
async function framesFromEncoder(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const m = /^roverlink_video_frames (\S+)$/m.exec(text);
  if (!m) throw new Error("the agent's metrics have no roverlink_video_frames");
  return Number(m[1]);
}

/**
 * In the page: the mean luma of a 4×4 patch at each block centre of an image source (the
 * console's <video> in a frame callback, or a known frame's <img>), bit 0 first.
 */
const SAMPLER = `
window.__rlSample = (src, width, stripHeight, centres) => {
  const c = window.__rlCanvas ?? (window.__rlCanvas = document.createElement("canvas"));
  if (c.width !== width || c.height !== stripHeight) { c.width = width; c.height = stripHeight; }
  const ctx = c.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(src, 0, 0, width, stripHeight, 0, 0, width, stripHeight);
  const d = ctx.getImageData(0, 0, width, stripHeight).data;
  return centres.map(({ x, y }) => {
    let sum = 0;
    for (let dy = -2; dy < 2; dy++)
      for (let dx = -2; dx < 2; dx++) {
        const i = ((y + dy) * width + (x + dx)) * 4;
        sum += 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
      }
    return sum / 16;
  });
};`;

interface PageFrame {
  /** Wall clock (epoch ms) when the callback ran, the frame's expected display and receipt. */
  now: number;
  shown: number;
  received: number | null;
  width: number;
  luma: number[];
}

async function signIn(page: Page, edgeUrl: string, peer: string): Promise<void> {
  const token = await mintToken({ secret: BENCH_SECRET, sub: peer, room: ROOM, ttlSeconds: 900 });
  await page.goto(`${edgeUrl}/`);
  await page.getByLabel("Token").fill(token);
  // The token names the room: the form fills it in; signing in before that would use another.
  const until = Date.now() + 10_000;
  while ((await page.getByLabel("Room").inputValue()) !== ROOM && Date.now() < until)
    await sleep(50);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: `Room ${ROOM}` }).waitFor({ timeout: 30_000 });
}

/** The known frame through the page's reader: the stamp it reads (null: none valid). */
async function readKnownFrame(
  page: Page,
  png: string,
  width: number,
  stripHeight: number,
  centres: { x: number; y: number }[],
): Promise<number | null> {
  const url = `data:image/png;base64,${readFileSync(png).toString("base64")}`;
  const luma = await page.evaluate(
    async ({ url, width, stripHeight, centres }) => {
      const img = new Image();
      img.src = url;
      await img.decode();
      const w = window as unknown as {
        __rlSample: (s: CanvasImageSource, w: number, h: number, c: unknown) => number[];
      };
      return w.__rlSample(img, width, stripHeight, centres);
    },
    { url, width, stripHeight, centres },
  );
  return decodeStamp(luma);
}

/** Sample `n` presented frames of the camera's <video> (or what came within `timeoutMs`). */
function sampleFrames(
  page: Page,
  n: number,
  width: number,
  stripHeight: number,
  centres: { x: number; y: number }[],
  timeoutMs: number,
): Promise<PageFrame[]> {
  return page.evaluate(
    ({ n, width, stripHeight, centres, timeoutMs }) =>
      new Promise<PageFrame[]>((resolve) => {
        const video = document.querySelector<HTMLVideoElement>(".camera video");
        const out: PageFrame[] = [];
        if (!video) return resolve(out);
        const w = window as unknown as {
          __rlSample: (s: CanvasImageSource, w: number, h: number, c: unknown) => number[];
        };
        const timer = setTimeout(() => resolve(out), timeoutMs);
        const onFrame = (_now: number, meta: VideoFrameCallbackMetadata) => {
          // The frame's times are on the page's monotonic clock; the stamp is wall-clock (ffmpeg's
          // gettimeofday). Mapped through the wall clock now, not timeOrigin: the two clocks drift.
          const wall = Date.now() - performance.now();
          out.push({
            now: Date.now(),
            shown: wall + meta.expectedDisplayTime,
            received: meta.receiveTime === undefined ? null : wall + meta.receiveTime,
            width: meta.width,
            luma: w.__rlSample(video, width, stripHeight, centres),
          });
          if (out.length >= n) {
            clearTimeout(timer);
            resolve(out);
          } else video.requestVideoFrameCallback(onFrame);
        };
        video.requestVideoFrameCallback(onFrame);
      }),
    { n, width, stripHeight, centres, timeoutMs },
  );
}

export async function glassToGlass(edge: LocalEdge, quick: boolean): Promise<GlassToGlass> {
  try {
    requireFfmpeg();
  } catch (e) {
    return { available: false, note: (e as Error).message };
  }
  const size = "640x480";
  const fps = 30;
  const layout = stampLayoutFor(size);
  const centres = blockCentres(layout);
  const dir = mkdtempSync(join(tmpdir(), "rl-bench-glass-"));
  const known = 1765432109876;
  await stampedFrame({
    at: known,
    size,
    webm: join(dir, "known.webm"),
    png: join(dir, "known.png"),
  });

  let browser: Browser;
  try {
    browser = await launchChromium();
  } catch (e) {
    return { available: false, note: (e as Error).message };
  }
  const children: ChildProcess[] = [];
  try {
    const port = await freePort();
    const metricsPort = await freePort();
    const args = [join(REPO_ROOT, "rover/cli.ts"), "rover", "--edge", edge.url, "--room", ROOM];
    args.push("--id", "cam", "--echo", "--in-memory", "--video", `rtp://127.0.0.1:${port}`);
    args.push("--metrics-port", String(metricsPort));
    const agent = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        ROVERLINK_TOKEN: await mintToken({
          secret: BENCH_SECRET,
          sub: "cam",
          room: ROOM,
          ttlSeconds: 900,
        }),
        ROVERLINK_LOG_LEVEL: "warn",
        XDG_STATE_HOME: join(dir, "state"),
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    children.push(agent);
    let agentErr = "";
    agent.stderr?.on("data", (d: Buffer) => (agentErr = (agentErr + d.toString()).slice(-2000)));
    const ffmpeg = startStampedSource({ port, fps, size });
    children.push(ffmpeg);
    let ffmpegErr = "";
    ffmpeg.stderr?.on("data", (d: Buffer) => (ffmpegErr = (ffmpegErr + d.toString()).slice(-2000)));

    const page = await (
      await browser.newContext({ viewport: { width: 1200, height: 900 } })
    ).newPage();
    await signIn(page, edge.url, "glass");
    await page.evaluate(SAMPLER);
    const read = await readKnownFrame(
      page,
      join(dir, "known.png"),
      layout.width,
      layout.stripHeight,
      centres,
    );
    const knownFrame = { stamp: stampOf(known), read };
    if (read !== knownFrame.stamp)
      throw new Error(`the stamp reader read ${read} on a frame stamped ${knownFrame.stamp}`);

    await page.locator('tr[data-peer="cam"]').waitFor({ timeout: 30_000 });
    await page.getByRole("button", { name: "Connect to cam" }).click();
    const camera = page.locator('section[data-link="cam"] .camera');
    try {
      await camera.locator('[data-camera="playing"]').waitFor({ timeout: 30_000 });
    } catch {
      throw new Error(
        `the camera did not play within 30 s (agent: ${agentErr.trim()}; ffmpeg: ${ffmpegErr.trim()})`,
      );
    }
    await sleep(2_000); // past the first frames' jitter-buffer settling

    const n = quick ? FRAMES.quick : FRAMES.full;
    const load0 = loadavg()[0] as number;
    const c0 = {
      ffmpeg: processCpuSeconds(ffmpeg.pid as number),
      agent: processCpuSeconds(agent.pid as number),
    };
    const sent0 = await framesFromEncoder(metricsPort);
    const t0 = Date.now();
    const frames = await sampleFrames(
      page,
      n,
      layout.width,
      layout.stripHeight,
      centres,
      (n / fps) * 2_000 + 5_000,
    );
    const secs = (Date.now() - t0) / 1000;
    const sourceFps =
      Math.round((((await framesFromEncoder(metricsPort)) - sent0) / secs) * 10) / 10;
    const cpuPct = (pid: number, from: number) =>
      Math.round(((processCpuSeconds(pid) - from) / secs) * 1000) / 10;
    const cpu = {
      ffmpeg: cpuPct(ffmpeg.pid as number, c0.ffmpeg),
      agent: cpuPct(agent.pid as number, c0.agent),
    };
    const load1 = loadavg()[0] as number;

    const samples: [number, number | null][] = [];
    const stamps = new Set<number>();
    for (const f of frames) {
      if (f.width !== layout.width) continue;
      const stamp = decodeStamp(f.luma);
      if (stamp === null) continue;
      const shown = latencyMs(stamp, f.shown);
      if (shown < -SANE_MS || shown > SANE_MS) continue;
      const received = f.received === null ? null : latencyMs(stamp, f.received);
      samples.push([
        Math.round(shown * 10) / 10,
        received === null ? null : Math.round(received * 10) / 10,
      ]);
      stamps.add(stamp);
    }
    if (samples.length === 0)
      throw new Error(`no frame of ${frames.length} presented carried a readable stamp`);
    const validTimes = [...stamps].sort((a, b) => a - b);
    const span = ((validTimes.at(-1) as number) - (validTimes[0] as number)) / 1000;
    return {
      available: true,
      source: `ffmpeg testsrc ${size}, ${fps} fps, live VP8 1 Mbit/s (realtime, keyframe every 30 frames), stamped with the capture time (geq) and timed by the capture clock, RTP to the agent on loopback; Debian Chromium (headless) in the console`,
      knownFrame,
      framesSeen: frames.length,
      framesValid: samples.length,
      fps: span > 0 ? Math.round(((stamps.size - 1) / span) * 10) / 10 : 0,
      sourceFps,
      shownMs: summarize(samples.map((s) => s[0])),
      receivedMs: summarize(samples.flatMap((s) => (s[1] === null ? [] : [s[1]]))),
      receivedBeforeStamp: samples.filter((s) => s[1] !== null && s[1] < 0).length,
      samples,
      cpu,
      load: [load0, load1],
    };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
    await browser.close();
  }
}
