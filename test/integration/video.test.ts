/**
 * The rover's camera between werift peers through a real local edge: the agent (offering, with
 * --video's source) sends ffmpeg's VP8 RTP to a console-kind peer (a werift watcher counting
 * complete frames) and to no one else; an ICE restart keeps the frames coming.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent } from "../../rover/agent.ts";
import { freePort, type LocalEdge, startLocalEdge } from "../../rover/local-edge.ts";
import { VideoSource } from "../../rover/video-source.ts";
import { mintToken } from "../../shared/token.ts";
import { encodeTestClip, streamClip } from "../browser/video-feed.ts";
import { VideoWatcher } from "./video-watcher.ts";

const SECRET = "video-integration-secret-video-integration";
const ROOM = "video-int";
const quiet = { debug() {}, info() {}, warn() {} };
let edge: LocalEdge;
const stops: (() => Promise<void> | void)[] = [];
let ffmpeg: ChildProcess | null = null;

const token = (id: string) => mintToken({ secret: SECRET, sub: id, room: ROOM, ttlSeconds: 600 });

beforeAll(async () => {
  edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET } });
});

afterAll(async () => {
  ffmpeg?.kill("SIGTERM");
  for (const s of stops.reverse()) await s();
  await edge?.stop();
});

/** The longest time without a complete frame between `from` and `to`. */
function longestGap(frames: number[], from: number, to: number): number {
  let last = from;
  let gap = 0;
  for (const t of frames) {
    if (t < from || t > to) continue;
    gap = Math.max(gap, t - last);
    last = t;
  }
  return Math.max(gap, to - last);
}

describe("rover camera to a console peer", () => {
  it("sends ≥ 25 fps of a 30 fps source to the console only, and keeps it through an ICE restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rl-video-int-"));
    const clip = await encodeTestClip({ file: join(dir, "c.webm"), seconds: 4, size: "320x240" });
    const port = await freePort();
    const source = new VideoSource(
      { listen: { host: "127.0.0.1", port }, codec: "VP8", minBps: 100_000, maxBps: 2_000_000 },
      quiet,
    );
    await source.start();
    stops.push(() => source.close());
    ffmpeg = streamClip({ file: clip, port });

    const watcher = new VideoWatcher({
      edge: edge.url,
      room: ROOM,
      id: "console-w",
      token: await token("console-w"),
    });
    await watcher.start();
    stops.push(() => watcher.stop());
    const other = new Agent({
      edge: edge.url,
      room: ROOM,
      id: "rover-b",
      token: await token("rover-b"),
      watchNetwork: false,
    });
    await other.start();
    stops.push(() => other.stop());
    const cam = new Agent({
      edge: edge.url,
      room: ROOM,
      id: "cam",
      token: await token("cam"),
      connect: ["console-w", "rover-b"],
      watchNetwork: false,
      video: source,
    });
    await cam.start();
    stops.push(() => cam.stop());

    await expect.poll(() => watcher.frames.length, { timeout: 30_000 }).toBeGreaterThan(30);
    // Only the console gets the camera; the other rover's link carries data only.
    await expect.poll(() => cam.links().get("rover-b")?.up, { timeout: 20_000 }).toBe(true);
    expect(cam.links().get("rover-b")?.videoStats()).toBeNull();
    expect(cam.links().get("console-w")?.videoStats()).not.toBeNull();
    expect(other.peers().find((p) => p.id === "cam")?.meta.video).toEqual({ codec: "VP8" });

    // ≥ 25 complete frames a second over 3 s; the premise: the source sent ≥ 28 meanwhile.
    const f0 = source.stats().frames;
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 3000));
    const t1 = Date.now();
    const sent = ((source.stats().frames - f0) * 1000) / (t1 - t0);
    const got = (watcher.frames.filter((t) => t >= t0 && t <= t1).length * 1000) / (t1 - t0);
    console.info(`watcher: ${got.toFixed(1)} complete fps; source ${sent.toFixed(1)} fps`);
    expect(sent, "the source did not send 30 fps").toBeGreaterThanOrEqual(28);
    expect(got).toBeGreaterThanOrEqual(25);

    // An ICE restart that happens (a handover of kind restart) keeps the track: frames go on.
    const handover = new Promise<{ kind: string; gapMs: number }>((resolve) =>
      cam.on("handover", (h: { peer: string; kind: string; gapMs: number }) => {
        if (h.peer === "console-w") resolve(h);
      }),
    );
    const restartAt = Date.now();
    await cam.restart("console-w", "test");
    const h = await handover;
    expect(h.kind).toBe("restart");
    const doneAt = Date.now();
    await expect.poll(() => watcher.frames.filter((t) => t > doneAt).length).toBeGreaterThan(10);
    const gap = longestGap(watcher.frames, restartAt, Date.now());
    console.info(`ICE restart: handover ${h.gapMs} ms, longest frame gap ${gap} ms`);
    expect(gap).toBeLessThanOrEqual(1000);
  });
});
