/**
 * The camera's figures from getStats() (the inbound video RTP stream) and the freeze indicator.
 * Pure: samples in, figures out, so it is tested without a browser.
 */
export interface VideoSample {
  atMs: number;
  framesDecoded: number;
  framesDropped: number;
  freezeCount: number;
  /** Seconds frozen in total (Chromium's totalFreezesDuration). */
  freezeS: number;
  bytesReceived: number;
  packetsLost: number;
  keyFramesDecoded: number;
  width: number | null;
  height: number | null;
  /** Keyframe requests the browser sent (PLI + FIR). */
  keyframeRequests: number;
}

export interface VideoFigures {
  fps: number | null;
  kbps: number | null;
  dropped: number;
  freezes: number;
  freezeS: number;
  size: string;
}

type Stat = Record<string, unknown> & { type: string };

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

/** The inbound video stream's counters, or null when the report has none (no camera). */
export function sampleVideo(
  report: Iterable<[string, unknown]> | RTCStatsReport,
  atMs: number,
): VideoSample | null {
  const entries: Iterable<[string, unknown]> =
    typeof (report as RTCStatsReport).entries === "function"
      ? (report as RTCStatsReport).entries()
      : (report as Iterable<[string, unknown]>);
  for (const [, v] of entries) {
    const s = v as Stat;
    if (s.type !== "inbound-rtp" || s.kind !== "video") continue;
    return {
      atMs,
      framesDecoded: num(s.framesDecoded),
      framesDropped: num(s.framesDropped),
      freezeCount: num(s.freezeCount),
      freezeS: num(s.totalFreezesDuration),
      bytesReceived: num(s.bytesReceived),
      packetsLost: num(s.packetsLost),
      keyFramesDecoded: num(s.keyFramesDecoded),
      width: typeof s.frameWidth === "number" ? s.frameWidth : null,
      height: typeof s.frameHeight === "number" ? s.frameHeight : null,
      keyframeRequests: num(s.pliCount) + num(s.firCount),
    };
  }
  return null;
}

/** Rates between two samples (null for the first). */
export function videoFigures(prev: VideoSample | null, cur: VideoSample): VideoFigures {
  const dt = prev ? (cur.atMs - prev.atMs) / 1000 : 0;
  const ok = prev !== null && dt > 0;
  return {
    fps: ok ? Math.round(((cur.framesDecoded - prev.framesDecoded) / dt) * 10) / 10 : null,
    kbps: ok ? Math.round(((cur.bytesReceived - prev.bytesReceived) * 8) / dt / 1000) : null,
    dropped: cur.framesDropped,
    freezes: cur.freezeCount,
    freezeS: Math.round(cur.freezeS * 10) / 10,
    size: cur.width && cur.height ? `${cur.width}×${cur.height}` : "–",
  };
}

/** No new frame for this long is a freeze (a 30 fps stream shows one every 33 ms). */
export const FREEZE_AFTER_MS = 500;

export type VideoState = "none" | "waiting" | "playing" | "frozen";

/** The indicator: waiting for the first frame, playing, or frozen since the last one. */
export function videoState(hasTrack: boolean, lastFrameAt: number | null, now: number): VideoState {
  if (!hasTrack) return "none";
  if (lastFrameAt === null) return "waiting";
  return now - lastFrameAt > FREEZE_AFTER_MS ? "frozen" : "playing";
}
