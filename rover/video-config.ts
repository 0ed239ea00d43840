/**
 * What `--video` and its companion flags mean: where the local encoder's RTP arrives, which codec
 * it carries, and where keyframe requests and bitrate targets go. Pure (the SDP file's text is
 * read by the caller): every bad value is one clear line (VideoConfigError).
 */
import sdpTransform from "sdp-transform";

export type VideoCodec = "VP8" | "H264";

export interface VideoConfig {
  /** Local address the encoder sends RTP to (we bind it). */
  listen: { host: string; port: number };
  codec: VideoCodec;
  /** H.264 fmtp (profile-level-id, packetization-mode) as the encoder's SDP states it. */
  fmtp?: string;
  /** Send keyframe requests (RTCP PLI) to the encoder's RTCP port (GStreamer rtpbin). */
  rtcpTo?: { host: string; port: number };
  /** Run this shell command on a keyframe request (rate limited). */
  keyframeCmd?: string;
  /** Run this shell command when the target bitrate changes; ROVERLINK_VIDEO_BITRATE=<bit/s>. */
  bitrateCmd?: string;
  /** Bounds of the target bitrate (bit/s). */
  minBps: number;
  maxBps: number;
}

export class VideoConfigError extends Error {}

const LOCAL = new Set(["127.0.0.1", "::1", "localhost"]);

function hostPort(text: string, what: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(text);
  const port = Number(m?.[2]);
  if (!m?.[1] || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new VideoConfigError(`${what} must be host:port, got "${text}"`);
  return { host: m[1], port };
}

/** `rtp://127.0.0.1:5004` → where to bind. Only local addresses: the encoder runs on the rover. */
export function parseVideoUrl(text: string): { host: string; port: number } {
  const m = /^rtp:\/\/(.+)$/.exec(text);
  if (!m?.[1]) throw new VideoConfigError(`--video must be rtp://host:port, got "${text}"`);
  const hp = hostPort(m[1], "--video");
  if (!LOCAL.has(hp.host) && !/^(0\.0\.0\.0|\d+\.\d+\.\d+\.\d+)$/.test(hp.host))
    throw new VideoConfigError(`--video host must be an IP address, got "${hp.host}"`);
  return hp;
}

export function parseCodec(text: string): VideoCodec {
  const c = text.toUpperCase().replace(".", "");
  if (c === "VP8") return "VP8";
  if (c === "H264") return "H264";
  throw new VideoConfigError(`--video-codec must be vp8 or h264, got "${text}"`);
}

/**
 * The encoder's SDP file (ffmpeg `-sdp_file`, or written by hand for GStreamer): the first video
 * section gives the port (and address, from c=), the codec (rtpmap) and H.264's fmtp.
 */
export function parseEncoderSdp(text: string): {
  listen: { host: string; port: number };
  codec: VideoCodec;
  fmtp?: string;
} {
  const sdp = sdpTransform.parse(text);
  const m = sdp.media.find((x) => x.type === "video");
  if (!m) throw new VideoConfigError("the SDP file has no m=video section");
  const pt = String(m.payloads ?? "").split(" ")[0];
  const rtp = m.rtp.find((r) => String(r.payload) === pt) ?? m.rtp[0];
  if (!rtp) throw new VideoConfigError("the SDP file's video section has no a=rtpmap");
  const codec = parseCodec(rtp.codec);
  const host = m.connection?.ip ?? sdp.connection?.ip ?? "127.0.0.1";
  if (!m.port) throw new VideoConfigError("the SDP file's video section has no port");
  const fmtp = m.fmtp.find((f) => String(f.payload) === String(rtp.payload))?.config;
  return { listen: { host, port: m.port }, codec, ...(codec === "H264" && fmtp ? { fmtp } : {}) };
}

export interface VideoFlags {
  video?: string;
  videoSdp?: string;
  videoCodec?: string;
  videoRtcp?: string;
  videoKeyframeCmd?: string;
  videoBitrateCmd?: string;
  videoMaxKbps?: number;
  videoMinKbps?: number;
}

/** The flags as one config; null without --video / --video-sdp. `sdpText`: the file's content. */
export function videoConfig(f: VideoFlags, sdpText?: string): VideoConfig | null {
  if (!f.video && !f.videoSdp) {
    // A camera option alone does nothing: say so rather than run without the camera.
    const stray = (
      [
        ["videoCodec", "--video-codec"],
        ["videoRtcp", "--video-rtcp"],
        ["videoKeyframeCmd", "--video-keyframe-cmd"],
        ["videoBitrateCmd", "--video-bitrate-cmd"],
        ["videoMinKbps", "--video-min-kbps"],
        ["videoMaxKbps", "--video-max-kbps"],
      ] as const
    ).find(([k]) => f[k] !== undefined);
    if (stray) throw new VideoConfigError(`${stray[1]} needs --video or --video-sdp`);
    return null;
  }
  const fromSdp = sdpText !== undefined ? parseEncoderSdp(sdpText) : null;
  const listen = f.video ? parseVideoUrl(f.video) : fromSdp?.listen;
  if (!listen) throw new VideoConfigError("--video-sdp needs its file's content");
  const codec = f.videoCodec ? parseCodec(f.videoCodec) : (fromSdp?.codec ?? "VP8");
  const minBps = (f.videoMinKbps ?? 150) * 1000;
  const maxBps = (f.videoMaxKbps ?? 2500) * 1000;
  if (!(minBps > 0) || !(maxBps >= minBps))
    throw new VideoConfigError("--video-min-kbps must be > 0 and <= --video-max-kbps");
  return {
    listen,
    codec,
    ...(fromSdp?.fmtp && codec === "H264" ? { fmtp: fromSdp.fmtp } : {}),
    ...(f.videoRtcp ? { rtcpTo: hostPort(f.videoRtcp, "--video-rtcp") } : {}),
    ...(f.videoKeyframeCmd ? { keyframeCmd: f.videoKeyframeCmd } : {}),
    ...(f.videoBitrateCmd ? { bitrateCmd: f.videoBitrateCmd } : {}),
    minBps,
    maxBps,
  };
}
