/**
 * Link figures from an RTCStatsReport: RTT and the path (direct or relay) of the selected
 * candidate pair, STUN-check loss, and audio inbound/outbound byte counters. Pure: it takes the
 * report and the previous sample, so it is easy to test and cheap to call once a second.
 */
import { sampleVideo, type VideoSample } from "./video-figures.ts";

export type PathKind = "direct" | "relay" | "unknown";

export interface LinkSample {
  atMs: number;
  /** ICE round-trip time of the selected pair, ms (null before the first consent check). */
  rttMs: number | null;
  path: PathKind;
  /** e.g. "host udp 127.0.0.1 ⇄ host udp 127.0.0.1" */
  pair: string;
  /**
   * The ICE ufrag of the selected pair's local candidate (the transport's, when the candidate
   * does not say): after an ICE restart it shows whether the new generation carries the data.
   */
  localUfrag: string | null;
  /** Connectivity-check requests sent/answered so far on the selected pair (for loss). */
  requestsSent: number;
  responsesReceived: number;
  audioBytesReceived: number;
  audioBytesSent: number;
  audioPacketsLost: number;
  audioPacketsReceived: number;
  /** The camera's inbound stream (null: no video on this link). */
  video: VideoSample | null;
}

type Stat = Record<string, unknown> & { id: string; type: string };

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? v : 0;
}

function describe(c: Stat | undefined): string {
  if (!c) return "?";
  // Browsers leave a peer-reflexive remote candidate's address out of getStats (privacy).
  const a = c.address ?? c.ip;
  const addr = typeof a === "string" && a !== "" ? a : "(address hidden)";
  return `${String(c.candidateType ?? "?")} ${String(c.protocol ?? "")} ${addr}:${String(c.port ?? "")}`;
}

export function sampleStats(
  report: Iterable<[string, unknown]> | RTCStatsReport,
  atMs: number,
): LinkSample {
  const byId = new Map<string, Stat>();
  const entries: Iterable<[string, unknown]> =
    typeof (report as RTCStatsReport).entries === "function"
      ? (report as RTCStatsReport).entries()
      : (report as Iterable<[string, unknown]>);
  for (const [id, s] of entries) byId.set(id, s as Stat);

  let pair: Stat | undefined;
  let transport: Stat | undefined;
  for (const s of byId.values()) {
    if (s.type === "transport" && typeof s.selectedCandidatePairId === "string") {
      pair = byId.get(s.selectedCandidatePairId);
      transport = s;
      if (pair) break;
    }
  }
  if (!pair) {
    for (const s of byId.values()) {
      if (s.type === "candidate-pair" && s.nominated === true && s.state === "succeeded") {
        pair = s;
        break;
      }
    }
  }
  const local = pair ? byId.get(String(pair.localCandidateId)) : undefined;
  const remote = pair ? byId.get(String(pair.remoteCandidateId)) : undefined;
  let path: PathKind = "unknown";
  if (local && remote) {
    path = local.candidateType === "relay" || remote.candidateType === "relay" ? "relay" : "direct";
  }
  let audioBytesReceived = 0;
  let audioBytesSent = 0;
  let audioPacketsLost = 0;
  let audioPacketsReceived = 0;
  for (const s of byId.values()) {
    if (s.kind !== "audio") continue;
    if (s.type === "inbound-rtp") {
      audioBytesReceived += num(s.bytesReceived);
      audioPacketsLost += num(s.packetsLost);
      audioPacketsReceived += num(s.packetsReceived);
    } else if (s.type === "outbound-rtp") {
      audioBytesSent += num(s.bytesSent);
    }
  }
  const rtt = pair?.currentRoundTripTime;
  const ufrag = local?.usernameFragment ?? (pair ? transport?.iceLocalUsernameFragment : undefined);
  return {
    atMs,
    rttMs: typeof rtt === "number" ? Math.round(rtt * 10000) / 10 : null,
    path,
    pair: pair ? `${describe(local)} ⇄ ${describe(remote)}` : "none",
    localUfrag: typeof ufrag === "string" ? ufrag : null,
    requestsSent: num(pair?.requestsSent),
    responsesReceived: num(pair?.responsesReceived),
    audioBytesReceived,
    audioBytesSent,
    audioPacketsLost,
    audioPacketsReceived,
    video: sampleVideo(byId, atMs),
  };
}

/**
 * Loss between two samples, 0..1: unanswered connectivity checks, or lost audio packets when
 * audio flows (the better signal). Null when nothing was sent in between.
 */
export function lossBetween(prev: LinkSample | undefined, cur: LinkSample): number | null {
  if (!prev) return null;
  const lost = cur.audioPacketsLost - prev.audioPacketsLost;
  const got = cur.audioPacketsReceived - prev.audioPacketsReceived;
  if (got + lost > 0) return Math.max(0, lost) / (got + Math.max(0, lost));
  const sent = cur.requestsSent - prev.requestsSent;
  const answered = cur.responsesReceived - prev.responsesReceived;
  if (sent <= 0) return null;
  return Math.min(1, Math.max(0, (sent - answered) / sent));
}
