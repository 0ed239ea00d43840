/**
 * The one place that reaches into werift 0.25.2 internals. werift has no public API for the ICE
 * session's local ufrag or the selected candidate pair (`RTCPeerConnection.getStats` is partial
 * and async), and handover needs both: the ufrag tells a restart's new ICE session from the old
 * one, the selected pair tells the path. What these fields mean, and the patches that make them
 * behave across ICE restarts, is in docs/werift-patches.md. A werift upgrade checks here first.
 */
import type { RTCPeerConnection } from "werift";

/** A candidate pair as werift keeps it (`CandidatePair`). */
export interface IcePair {
  localCandidate?: { type?: string };
  remoteCandidate?: { ufrag?: string };
  packetsSent: number;
  bytesSent: number;
}

/** werift's ICE `Connection` (one per PeerConnection: we bundle everything). */
export interface IceConnection {
  /** Our ufrag in the current ICE session (a restart changes it). */
  localUsername: string;
  /** The remote ufrag in the current ICE session. */
  remoteUsername: string;
  /** The selected pair; none while a restart has not selected one (patched: see restart()). */
  nominated?: IcePair;
}

export function iceConnection(pc: RTCPeerConnection | null): IceConnection | undefined {
  return (pc as unknown as { iceTransports?: { connection: IceConnection }[] } | null)
    ?.iceTransports?.[0]?.connection;
}

export type Path = "direct" | "relay" | "unknown";

/** The selected pair's kind of path: through TURN or not. */
export function selectedPath(pc: RTCPeerConnection | null): Path {
  const type = iceConnection(pc)?.nominated?.localCandidate?.type;
  if (!type) return "unknown";
  return type === "relay" ? "relay" : "direct";
}

/** The selected pair's send counters (benchmarks measure the link's own cost with them). */
export function selectedPairCounters(
  pc: RTCPeerConnection | null,
): { packetsSent: number; bytesSent: number } | null {
  const n = iceConnection(pc)?.nominated;
  return n ? { packetsSent: n.packetsSent, bytesSent: n.bytesSent } : null;
}

/**
 * Retransmit what SCTP has outstanding now, on the current path, instead of after its
 * retransmission timer (at least 1 s): `pathChanged()` comes from our werift patch 3.
 */
export function resendOutstanding(pc: RTCPeerConnection | null): boolean {
  const sctp = (pc as unknown as { sctpTransport?: { sctp?: { pathChanged?: () => void } } } | null)
    ?.sctpTransport?.sctp;
  if (!sctp?.pathChanged) return false;
  sctp.pathChanged();
  return true;
}
