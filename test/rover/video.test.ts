import { createSocket } from "node:dgram";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { RtcpPacketConverter, RtcpPayloadSpecificFeedback } from "werift";
import { freePort } from "../../rover/local-edge.ts";
import { parseEncoderSdp, VideoConfigError, videoConfig } from "../../rover/video-config.ts";
import { shouldAnnounce, TargetBitrate } from "../../rover/video-rate.ts";
import { VideoSource } from "../../rover/video-source.ts";

const quiet = { debug() {}, info() {}, warn() {} };

// What `ffmpeg ... -f rtp rtp://127.0.0.1:5004 -sdp_file cam.sdp` writes for H.264.
const FFMPEG_SDP = `v=0
o=- 0 0 IN IP4 127.0.0.1
s=No Name
c=IN IP4 127.0.0.1
t=0 0
a=tool:libavformat 59.27.100
m=video 5004 RTP/AVP 96
a=rtpmap:96 H264/90000
a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z0LAHtkBQD2wEQAAAwABAAADADwPFi5I,aMuMsg==; profile-level-id=42C01E
`;

describe("video flags", () => {
  it("reads --video, the codec and the hooks; refuses what it cannot use in one line", () => {
    expect(videoConfig({})).toBeNull();
    const c = videoConfig({ video: "rtp://127.0.0.1:5004", videoRtcp: "127.0.0.1:5005" });
    expect(c).toMatchObject({
      listen: { host: "127.0.0.1", port: 5004 },
      codec: "VP8",
      rtcpTo: { host: "127.0.0.1", port: 5005 },
      minBps: 150_000,
      maxBps: 2_500_000,
    });
    expect(videoConfig({ video: "rtp://127.0.0.1:5004", videoCodec: "h264" })?.codec).toBe("H264");
    for (const bad of [
      { video: "udp://127.0.0.1:5004" },
      { video: "rtp://127.0.0.1:99999" },
      { video: "rtp://camera.local:5004" },
      { video: "rtp://127.0.0.1:5004", videoCodec: "av1" },
      { video: "rtp://127.0.0.1:5004", videoMinKbps: 3000, videoMaxKbps: 1000 },
    ])
      expect(() => videoConfig(bad)).toThrow(VideoConfigError);
    // A camera option without the camera: said, not ignored.
    expect(() => videoConfig({ videoCodec: "av1" })).toThrow(
      "--video-codec needs --video or --video-sdp",
    );
    expect(() => videoConfig({ videoMinKbps: 3000, videoMaxKbps: 100 })).toThrow(
      "--video-min-kbps needs --video or --video-sdp",
    );
  });

  it("takes port, codec and H.264 fmtp from ffmpeg's SDP file", () => {
    expect(parseEncoderSdp(FFMPEG_SDP)).toMatchObject({
      listen: { host: "127.0.0.1", port: 5004 },
      codec: "H264",
    });
    expect(parseEncoderSdp(FFMPEG_SDP).fmtp).toContain("packetization-mode=1");
    expect(() => parseEncoderSdp("v=0\r\nm=audio 5004 RTP/AVP 0\r\n")).toThrow(/no m=video/);
  });
});

describe("target bitrate", () => {
  it("grows without loss, holds at moderate loss, cuts on heavy loss, and obeys REMB", () => {
    const r = new TargetBitrate({ minBps: 100_000, maxBps: 2_000_000, startBps: 1_000_000 });
    r.onLoss(0, 0);
    r.onLoss(0, 500); // at most one step a second
    expect(r.target(500)).toBe(1_080_000);
    r.onLoss(0.05, 1500);
    expect(r.target(1500)).toBe(1_080_000);
    r.onLoss(0.3, 2000);
    expect(r.target(2000)).toBe(Math.round(1_080_000 * 0.85));
    r.onRemb(400_000, 2000);
    expect(r.target(2000)).toBe(400_000);
    // A REMB not repeated for 5 s no longer caps it.
    expect(r.target(7001)).toBe(Math.round(1_080_000 * 0.85));
    for (let t = 8000; t < 60_000; t += 1000) r.onLoss(0.5, t);
    expect(r.target(60_000)).toBe(100_000);
  });

  it("announces a change of 10 % or more, at most every 2 s", () => {
    expect(shouldAnnounce(null, 1, 0)).toBe(true);
    expect(shouldAnnounce({ bps: 1000, at: 0 }, 500, 1000)).toBe(false);
    expect(shouldAnnounce({ bps: 1000, at: 0 }, 950, 3000)).toBe(false);
    expect(shouldAnnounce({ bps: 1000, at: 0 }, 850, 3000)).toBe(true);
  });
});

describe("video source", () => {
  const sources: VideoSource[] = [];
  afterEach(() => {
    for (const s of sources.splice(0)) s.close();
  });

  it("hands RTP to subscribers, drops what is not RTP, and sends keyframe requests to the encoder as RTCP PLI (merged within 500 ms) and to the hook", async () => {
    const port = await freePort();
    const rtcp = createSocket("udp4");
    await new Promise<void>((r) => rtcp.bind(0, "127.0.0.1", () => r()));
    const plis: Buffer[] = [];
    rtcp.on("message", (m) => plis.push(m));
    const dir = mkdtempSync(join(tmpdir(), "rl-video-"));
    const src = new VideoSource(
      {
        listen: { host: "127.0.0.1", port },
        codec: "VP8",
        rtcpTo: { host: "127.0.0.1", port: rtcp.address().port },
        keyframeCmd: `echo "$ROVERLINK_VIDEO_KEYFRAME_REASON" >> ${join(dir, "kf")}`,
        bitrateCmd: `echo "$ROVERLINK_VIDEO_BITRATE" >> ${join(dir, "br")}`,
        minBps: 100_000,
        maxBps: 2_000_000,
      },
      quiet,
    );
    sources.push(src);
    await src.start();
    const got: Buffer[] = [];
    src.subscribe((p) => got.push(p));
    const tx = createSocket("udp4");
    const rtp = Buffer.alloc(20);
    rtp[0] = 0x80;
    rtp[1] = 0x80 | 96; // marker: the end of a frame
    rtp.writeUInt32BE(0xcafe, 8);
    tx.send(rtp, port, "127.0.0.1");
    tx.send(Buffer.from("not rtp"), port, "127.0.0.1");
    const sr = Buffer.alloc(28);
    sr[0] = 0x80;
    sr[1] = 200; // an RTCP SR on the RTP port (rtcp-mux)
    tx.send(sr, port, "127.0.0.1");
    await expect.poll(() => src.stats().dropped).toBe(2);
    expect(got).toHaveLength(1);
    expect(src.stats()).toMatchObject({ packets: 1, frames: 1, encoderSsrc: 0xcafe });

    src.requestKeyframe("pli", 1000);
    src.requestKeyframe("pli", 1200); // merged
    src.requestKeyframe("fir", 1600);
    await expect.poll(() => plis.length).toBe(2);
    const [pli] = RtcpPacketConverter.deSerialize(plis[0] as Buffer);
    expect(pli).toBeInstanceOf(RtcpPayloadSpecificFeedback);
    expect((pli as RtcpPayloadSpecificFeedback).feedback).toMatchObject({
      count: 1,
      mediaSsrc: 0xcafe,
    });
    expect(src.stats()).toMatchObject({ keyframeRequests: 2, keyframeRequestsMerged: 1 });
    await expect
      .poll(() => readFileSync(join(dir, "kf"), "utf8").trim().split("\n"))
      .toContain("pli");

    // One encoder, several links: the lowest target goes to the hook.
    const a = {};
    const b = {};
    src.reportTarget(a, 900_000, 0);
    src.reportTarget(b, 600_000, 2500);
    await expect
      .poll(() => readFileSync(join(dir, "br"), "utf8").trim().split("\n"))
      .toEqual(["900000", "600000"]);
    expect(src.stats().targetBps).toBe(600_000);
    tx.close();
    rtcp.close();
  });

  it("says in one line when its port is taken", async () => {
    const port = await freePort();
    const cfg = {
      listen: { host: "127.0.0.1", port },
      codec: "VP8" as const,
      minBps: 1,
      maxBps: 2,
    };
    const first = new VideoSource(cfg, quiet);
    sources.push(first);
    await first.start();
    await expect(new VideoSource(cfg, quiet).start()).rejects.toThrow(
      `--video: cannot listen on 127.0.0.1:${port}`,
    );
  });
});
