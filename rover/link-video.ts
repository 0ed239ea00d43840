/**
 * The camera track on one link: a sendonly video transceiver on each PeerConnection the link
 * makes (offered by us, or answering the console's recvonly section), fed with the encoder's RTP
 * as it comes (werift rewrites SSRC, payload type and sequence/timestamp offsets). An ICE
 * restart keeps the PeerConnection, hence the track; a rebuild attaches to the new one. RTCP
 * from the browser: PLI/FIR become keyframe requests to the source, receiver reports and REMB
 * feed the link's target bitrate (video-rate.ts).
 */
import {
  MediaStreamTrack,
  ReceiverEstimatedMaxBitrate,
  type RTCPeerConnection,
  type RTCRtpCodecParameters,
  type RTCRtpTransceiver,
  RtcpPayloadSpecificFeedback,
  RtcpRrPacket,
  RtcpSrPacket,
  useAbsSendTime,
  useH264,
  useOPUS,
  usePCMU,
  useVP8,
} from "werift";
import { TargetBitrate } from "./video-rate.ts";
import type { VideoSource } from "./video-source.ts";

/** RFC 5104 FIR: payload-specific feedback, FMT 4. */
const FIR_FMT = 4;

export interface LinkVideoStats {
  /** The link's own target (bit/s): what its browser's reports allow. */
  targetBps: number;
  rembBps: number | null;
  lossFraction: number | null;
  keyframeRequests: number;
  /** RTP packets handed to the track. */
  packetsSent: number;
  /** RTP packets werift's sender put on the wire (after SRTP), its own counter. */
  packetsOnWire: number;
}

export class LinkVideo {
  #source: VideoSource;
  #rate: TargetBitrate;
  #detach: (() => void) | null = null;
  #sender: RTCRtpTransceiver["sender"] | null = null;
  #keyframeRequests = 0;
  #packetsSent = 0;

  constructor(source: VideoSource) {
    this.#source = source;
    this.#rate = new TargetBitrate({
      minBps: source.config.minBps,
      maxBps: source.config.maxBps,
    });
  }

  /** PeerConnection codec settings: the encoder's codec only (we never transcode). */
  pcConfig(): {
    codecs: { audio: RTCRtpCodecParameters[]; video: RTCRtpCodecParameters[] };
    headerExtensions: { video: ReturnType<typeof useAbsSendTime>[] };
    bundlePolicy: "max-bundle";
  } {
    const c = this.#source.config;
    const video = c.codec === "H264" ? useH264(c.fmtp ? { parameters: c.fmtp } : {}) : useVP8();
    // abs-send-time lets Chrome's receive-side estimator send REMB.
    return {
      codecs: { audio: [useOPUS(), usePCMU()], video: [video] },
      headerExtensions: { video: [useAbsSendTime()] },
      // One ICE/DTLS transport for video and data from the start. Under werift's default
      // (max-compat) each section gets its own before BUNDLE folds them, and close() never stops
      // the folded one: its UDP sockets stay open (and keep the process alive) after every link.
      bundlePolicy: "max-bundle",
    };
  }

  /**
   * A new PeerConnection: the previous one's track stops. As offerer the section is added now
   * (`offer`); as answerer, the console's recvonly video section is answered sendonly.
   */
  attach(pc: RTCPeerConnection, offer: boolean): void {
    this.detach();
    const track = new MediaStreamTrack({ kind: "video" });
    const unsubscribe = this.#source.subscribe((rtp) => {
      this.#packetsSent++;
      track.writeRtp(rtp);
    });
    const subs: { unSubscribe(): void }[] = [];
    const use = (t: RTCRtpTransceiver) => {
      this.#sender = t.sender;
      subs.push(
        t.sender.onPictureLossIndication.subscribe(() => this.#keyframe("pli")),
        t.sender.onRtcp.subscribe((p) => this.#rtcp(p, t.sender.ssrc)),
      );
    };
    if (offer) {
      use(pc.addTransceiver(track, { direction: "sendonly" }));
    } else {
      subs.push(
        pc.onRemoteTransceiverAdded.subscribe((t) => {
          if (t.kind !== "video" || this.#sender) return;
          t.setDirection("sendonly");
          void t.sender.replaceTrack(track);
          use(t);
        }),
      );
    }
    subs.push(
      pc.connectionStateChange.subscribe((s) => {
        // A decoder starts at a keyframe: ask for one as soon as media can flow.
        if (s === "connected") this.#keyframe("new-receiver");
      }),
    );
    this.#detach = () => {
      unsubscribe();
      for (const s of subs) s.unSubscribe();
      track.stop();
      this.#sender = null;
    };
  }

  #keyframe(reason: string): void {
    this.#keyframeRequests++;
    this.#source.requestKeyframe(reason);
  }

  #rtcp(p: unknown, ssrc: number): void {
    const now = Date.now();
    if (p instanceof RtcpRrPacket || p instanceof RtcpSrPacket) {
      for (const r of p.reports) if (r.ssrc === ssrc) this.#rate.onLoss(r.fractionLost / 256, now);
    } else if (p instanceof RtcpPayloadSpecificFeedback) {
      if (p.feedback instanceof ReceiverEstimatedMaxBitrate)
        this.#rate.onRemb(Number(p.feedback.bitrate), now);
      else if (p.feedback.count === FIR_FMT) this.#keyframe("fir");
    } else return;
    this.#source.reportTarget(this, this.#rate.target(now), now);
  }

  stats(): LinkVideoStats {
    const now = Date.now();
    return {
      targetBps: this.#rate.target(now),
      rembBps: this.#rate.remb(now),
      lossFraction: this.#rate.lastLoss,
      keyframeRequests: this.#keyframeRequests,
      packetsSent: this.#packetsSent,
      packetsOnWire: (this.#sender as unknown as { packetCount?: number } | null)?.packetCount ?? 0,
    };
  }

  detach(): void {
    this.#detach?.();
    this.#detach = null;
    this.#source.reportTarget(this, null);
  }
}
