/**
 * The one place that reaches into werift 0.25.2 internals. werift has no public API for the ICE
 * session's local ufrag or the selected candidate pair (`RTCPeerConnection.getStats` is partial
 * and async), and handover needs both: the ufrag tells a restart's new ICE session from the old
 * one, the selected pair tells the path. What these fields mean, and the patches that make them
 * behave across ICE restarts, is in docs/werift-patches.md. A werift upgrade checks here first.
 */
import type { RTCDataChannel, RTCPeerConnection } from "werift";

/** A candidate pair as werift keeps it (`CandidatePair`). */
export interface IcePair {
  id: string;
  localCandidate?: { type?: string; host?: string };
  remoteCandidate?: { ufrag?: string; type?: string };
  remoteAddr: [string, number];
  /** 0 frozen, 1 waiting, 2 in progress, 3 succeeded, 4 failed. */
  state: number;
  /** The local socket: `uplink` is the address it is bound to (patch 21's addUplink). */
  protocol: { uplink?: string; type?: string };
  packetsSent: number;
  bytesSent: number;
}

/** werift's Event: subscribe returns a handle with unSubscribe. */
interface WeriftEvent<A extends unknown[]> {
  subscribe(f: (...args: A) => void): { unSubscribe(): void };
}

/** werift's ICE `Connection` (one per PeerConnection: we bundle everything). */
export interface IceConnection {
  /** Our ufrag in the current ICE session (a restart changes it). */
  localUsername: string;
  /** The remote ufrag in the current ICE session. */
  remoteUsername: string;
  /** The selected pair; none while a restart has not selected one (patched: see restart()). */
  nominated?: IcePair;
  iceControlling: boolean;
  checkList: IcePair[];
  /** Patch 21: paths bound to one more uplink address; closing them when it goes away. */
  addUplink(address: string): Promise<unknown[]>;
  removeUplink(address: string): Promise<void>;
  /** Patch 21: one check of a backup pair, without nominating it (RTT in s, or null). */
  checkPair(pair: IcePair, o?: { retransmissions?: number }): Promise<number | null>;
  /** Patch 21: move the selection without signaling (the controlling side renominates). */
  selectPair(pair: IcePair, reason?: string): boolean;
  isCurrentSession(pair: IcePair): boolean;
  /** Patch 21: (pair, previous, reason: "local" | "remote-nomination"). */
  onSelectedPairChanged: WeriftEvent<[IcePair, IcePair | undefined, string]>;
  /** Patch 21: the peer sends on another valid pair than the selected one. */
  onPeerPath: WeriftEvent<[IcePair]>;
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
 * retransmission timer (at least 1 s): `pathChanged()` comes from our werift patch 3; patch 23
 * gives the new path a fresh RTO and window and makes a second report of the same change a no-op.
 */
export function resendOutstanding(pc: RTCPeerConnection | null): boolean {
  const sctp = (pc as unknown as { sctpTransport?: { sctp?: { pathChanged?: () => void } } } | null)
    ?.sctpTransport?.sctp;
  if (!sctp?.pathChanged) return false;
  sctp.pathChanged();
  return true;
}

/** How long a closed channel's stream id is held at most, waiting for the second reset (ms). */
const STREAM_HOLD_MS = 30_000;

interface SctpTransportInternals {
  dataChannels?: Record<number, RTCDataChannel>;
  sctp?: { onReconfigStreams?: WeriftEvent<[number[]]> };
}

interface StreamHolds {
  /** Channels to hold once a reset closes them. */
  waiting: Set<RTCDataChannel>;
  /** Stream id → the closed channel put back under it, until the next reset of that id. */
  held: Map<number, RTCDataChannel>;
}

const holds = new WeakMap<object, StreamHolds>();

/**
 * werift frees a closed data channel's SCTP stream id at the first of the two stream resets a
 * close takes (ours acknowledged, or the peer's received), so a channel opened right after takes
 * the id and the second reset closes it (seen with many short forwarded TCP connections). The
 * closed channel is put back under its id until the second reset removes it (or STREAM_HOLD_MS).
 * Both happen in the association's reset event, right after werift's own handler: deciding later
 * (it was a setImmediate) put the channel back after a second reset that came in the same turn
 * of the event loop, and the peer's next channel on the id was taken for a retransmitted open
 * and never announced.
 */
export function holdStreamIdUntilReset(dc: RTCDataChannel): void {
  const t = dc.sctp as unknown as SctpTransportInternals | undefined;
  const sctp = t?.sctp;
  const channels = t?.dataChannels;
  if (!sctp?.onReconfigStreams || !channels) return;
  let h = holds.get(sctp);
  if (!h) {
    const state: StreamHolds = { waiting: new Set(), held: new Map() };
    h = state;
    holds.set(sctp, state);
    // Subscribed after werift's handler (made with the association), so it runs after it.
    sctp.onReconfigStreams.subscribe((ids) => {
      for (const id of ids) {
        // The second reset: werift has just removed the held channel; the id is free.
        if (state.held.delete(id)) continue;
        for (const w of state.waiting) {
          if (w.id !== id || w.readyState !== "closed") continue;
          state.waiting.delete(w);
          if (channels[id]) break;
          channels[id] = w;
          state.held.set(id, w);
          setTimeout(() => {
            if (state.held.get(id) !== w) return;
            state.held.delete(id);
            if (channels[id] === w) delete channels[id];
          }, STREAM_HOLD_MS).unref();
          break;
        }
      }
    });
  }
  const holder = h;
  holder.waiting.add(dc);
  const sub = dc.stateChanged.subscribe((s) => {
    if (s !== "closed") return;
    sub.unSubscribe();
    // A close by a reset was handled in that same event; any other close holds nothing.
    setImmediate(() => holder.waiting.delete(dc));
  });
}

/**
 * The peer's SCTP max-message-size as werift took it from the remote SDP (a=max-message-size;
 * 65536 when absent, RFC 8841; 0: no limit), or null when the channel has no transport.
 * werift's `send` throws past it.
 */
export function remoteMaxMessageSize(dc: RTCDataChannel): number | null {
  const v = (dc as unknown as { sctp?: { remoteMaxMessageSize?: number } }).sctp
    ?.remoteMaxMessageSize;
  return typeof v === "number" ? v : null;
}

export type ConsentOutcome = "answered" | "missed" | "received";

interface ConsentEvents {
  onConsentCheck?: { subscribe(f: (outcome: ConsentOutcome, rttS?: number) => void): unknown };
}

const consentFollowed = new WeakSet<object>();

/**
 * Report each ICE consent check of the PeerConnection's ICE agent (werift patch 18): ours
 * answered (with its RTT), ours missed, or the peer's received. Once per ICE agent; call again
 * whenever the agent may have changed (it lives across ICE restarts).
 */
export function followConsent(
  pc: RTCPeerConnection | null,
  f: (outcome: ConsentOutcome, rttMs?: number) => void,
): void {
  const c = iceConnection(pc) as (IceConnection & ConsentEvents) | undefined;
  if (!c?.onConsentCheck || consentFollowed.has(c)) return;
  consentFollowed.add(c);
  c.onConsentCheck.subscribe((outcome, rttS) =>
    f(outcome, rttS === undefined ? undefined : rttS * 1000),
  );
}

/**
 * Turn SCTP HEARTBEAT off (werift patch 19, RFC 9260 §11.1 Change Heartbeat): ICE consent checks
 * the path already, at the link's keepalive cadence; a heartbeat every ~31 s on top would double
 * an idle link's packets. False when the association is not there yet.
 */
export function disableSctpHeartbeat(pc: RTCPeerConnection | null): boolean {
  const sctp = (
    pc as unknown as {
      sctpTransport?: { sctp?: { changeHeartbeat?: (on: boolean) => void } };
    } | null
  )?.sctpTransport?.sctp;
  if (!sctp?.changeHeartbeat) return false;
  sctp.changeHeartbeat(false);
  return true;
}
