/**
 * Link health and handover policy, sans-IO (in the spirit of str0m): the link adapter feeds
 * events with the current time (ms), calls `poll(now)` after any event and at `nextDeadline()`,
 * and carries out the decisions. No timers, no sockets, no clock inside, so every path is
 * unit-tested with a fake clock (test/shared/link/health.test.ts). Diagram and defaults:
 * docs/link-health.md.
 *
 *   connecting ──open──▶ up ⇄ degraded        (degraded: reported only, see `snapshot`)
 *                         │ net change / silence / ICE failed / manual
 *                         ▼
 *                     restarting ──done──▶ up      timeout/failed: retry with backoff
 *                         │ maxRestarts failed (or DTLS failed, or the peer closed)
 *                         ▼
 *                     rebuilding ──open──▶ up      not open in time: rebuild again
 *
 * API (one instance per link; `now` is always the caller's clock in ms):
 *   new LinkHealth(config?: Partial<HealthConfig>, now?)
 *   events:  onOpen(now, path?) · onReceive(now) · onSend(now, answered?) · onProbeSent(id, now) ·
 *            onProbeAnswered(id, now) · onReliableSent(seq, now) · onReliableResent(seqs, now) ·
 *            onReliableAcked(next, now) ·
 *            onKeepalive(outcome, now, rttMs?) · onIceState(state, now) · onDtlsState(state, now) ·
 *            onConnectionState(state, now) · onNetworkChange(now) · onRemoteRestart(now) ·
 *            onRestartBegun(now) · onRestartDone(now, path?) · onRestartFailed(now) ·
 *            onPath(path) · requestRestart(now) · onOfferSent(now) · onOfferFailed(now) ·
 *            onSessionClosed(now, reoffer) · onPeerClosed(now) · onClosed(now)
 *   backups: onUplinks(now, {active, preferred, present}) · onBackup(now, id, uplink, ok) ·
 *            onPeerPaths(now, others) ·
 *            onPeerMoved(now, id) · onSwitched(now, id, path?)
 *   outputs: poll(now): Decision[] · nextDeadline(): number | undefined ·
 *            snapshot(now): HealthSnapshot · state (the phase: never "degraded") ·
 *            inputs(): how often each event was fed (tests check production feeds them all)
 *
 * Liveness is traffic-driven (liveness.ts): the link waits for the peer only while something is
 * outstanding (a `control` message not acknowledged, a probe not answered). Waiting past a PTO
 * starts suspicion probing at once; waiting past `deadPtos` PTOs (within [deadMinMs, silenceMs])
 * restarts ("silence"). An idle link sends no probes (`probeIdleMs` 0): the ICE keepalive, one end
 * for both every `keepaliveMs`, keeps NAT mappings open, and a missed one starts suspicion.
 *
 * Backup paths (make-before-break without signaling): the link keeps a validated candidate pair
 * on every other uplink and tells the policy (`onBackup`). Where the policy would restart a link
 * that is up (the active uplink gone, silence, no delivery, ICE failed) and a validated backup on
 * another path exists, it decides `switch` instead: both ends move to that pair (renomination; no
 * edge). A switch is verified like a handover; one that delivers nothing falls back to a restart.
 * With a validated backup, silence is called sooner (`backupSilenceMs`): switching is cheap and
 * reversible. A planned move (the preferred uplink is not the active one) switches once the
 * preferred uplink's backup has been valid for `preferHoldMs` (no switching back and forth on a
 * flapping uplink).
 *
 * The offering side of a link that is not up (connecting, or down after its session closed)
 * offers again on `offer` decisions: after a failed offer with backoff, after an offer nobody
 * answered in `rebuildTimeoutMs`, and shortly after the session was closed under it.
 */

import { Outstanding, RttEstimator } from "./liveness.ts";

export interface HealthConfig {
  /**
   * Background probe interval while the last probes were answered (ms); 0: none, liveness is
   * traffic-driven (the `cellular` profile). The `lan` profile probes every second.
   */
  probeIdleMs: number;
  /** Probe interval while a probe is unanswered or a restart is under way (ms). */
  probeSuspectMs: number;
  /** An unanswered probe counts as lost after this long (ms). */
  probeTimeoutMs: number;
  /**
   * Waiting in vain for the peer this long at most while up (something outstanding, nothing
   * received): the path is dead, restart ("silence") (ms). The upper bound of the dead window.
   */
  silenceMs: number;
  /** Dead window: this many PTOs of waiting in vain... */
  deadPtos: number;
  /** ...and at least this long (ms). */
  deadMinMs: number;
  /** PTO floor (ms) (liveness.ts: RFC 9002 §6.2.1 from the smoothed RTT and its variation). */
  ptoMinMs: number;
  /** PTO while the path has no RTT sample yet (ms). */
  ptoInitialMs: number;
  /**
   * The ICE keepalive cadence (ms): one STUN consent check, sent by the ICE-controlling end (the
   * offerer) for both, which also keeps NAT mappings open. Carried out by werift (patch 18); here
   * so that one profile holds every cadence.
   */
  keepaliveMs: number;
  /**
   * After a handover the link probes at once and must hear from the peer within 4 × the smoothed
   * RTT, at least this long (and at most silenceMs). A link that says up but delivers nothing is
   * restarted again ("no-delivery") without waiting for the silence timer. (The link already
   * has SCTP resend what is outstanding when a restart completes; the lab showed pairs whose
   * checks succeeded yet carried no data, which only a new restart mended.) (ms)
   */
  verifyMinMs: number;
  /** A burst of local network changes restarts once no change came for this long (ms)... */
  netChangeQuietMs: number;
  /** ...or this long after the burst's first change, whichever is first (ms). */
  netChangeMaxDelayMs: number;
  /**
   * A network change within this long of a restart's start is covered by that attempt (an
   * interface going away shows as an address event, then a route event ~100-250 ms later; the
   * attempt gathered after the first): ignored. A later change supersedes the attempt (ms).
   */
  netChangeSupersedeMs: number;
  /** ICE `disconnected` lasting this long counts as failed (ms). */
  disconnectedGraceMs: number;
  /** A restart that has not brought the link back by then has failed (ms). */
  restartTimeoutMs: number;
  /** Delay before restart attempt n of a series (index n-1; the last value repeats) (ms). */
  restartBackoffMs: number[];
  /** Failed restarts in a row before the PeerConnection is rebuilt. */
  maxRestarts: number;
  /** A rebuild that has not opened by then is tried again (ms). */
  rebuildTimeoutMs: number;
  /**
   * With a validated backup: the link has sent for this long and heard nothing: switch to the
   * backup (the restart rule's silenceMs still applies when there is none) (ms).
   */
  backupSilenceMs: number;
  /**
   * Without a validated backup of our own, a silence restart waits at least `backupSilenceMs`
   * plus this: a peer that has one (a multi-homed rover) switches without signaling by then, and
   * our restart would only tear down the path it moved to (ms).
   */
  peerSwitchGraceMs: number;
  /**
   * The peer's move to another pair is not followed within this long of our last switch: two
   * ends that each follow the other would otherwise chase each other (ms).
   */
  peerFollowHoldMs: number;
  /** A backup on the preferred uplink must have been valid this long before a planned switch (ms). */
  preferHoldMs: number;
  /** Probes considered for the loss figure. */
  lossWindow: number;
  /** Delay before offer attempt n+1 after n failed in a row (the last value repeats) (ms). */
  offerBackoffMs: number[];
  /** The offerer offers again this long after the session was closed under a link (ms). */
  sessionReofferMs: number;
  /**
   * Sending only what gets no answer (telemetry one way) and hearing nothing this long: one probe
   * checks the path (ms; 0: never). Unanswered, it starts suspicion as any probe does: a
   * blackhole under a telemetry stream is found without waiting for the keepalive.
   */
  oneWayProbeMs: number;
  /** Reported as degraded while up with at least this probe loss (%)... */
  degradedLossPct: number;
  /** ...or while a probe has been unanswered for this long (ms). */
  probeLateMs: number;
}

/** The `cellular` profile: quiet when idle, traffic-driven liveness (docs/link-health.md). */
/**
 * The most of an ack's delay taken off an RTT sample (ms): agents and the console hold an ack
 * 50 ms at most (timers may fire late); a larger claim is not believed beyond this.
 */
export const ACK_HELD_BOUND_MS = 100;

export const DEFAULT_HEALTH: Readonly<HealthConfig> = Object.freeze({
  probeIdleMs: 0,
  probeSuspectMs: 250,
  probeTimeoutMs: 1_500,
  silenceMs: 1_500,
  deadPtos: 2,
  deadMinMs: 400,
  ptoMinMs: 200,
  ptoInitialMs: 500,
  keepaliveMs: 20_000,
  verifyMinMs: 400,
  netChangeQuietMs: 20,
  netChangeMaxDelayMs: 50,
  netChangeSupersedeMs: 300,
  disconnectedGraceMs: 1_000,
  backupSilenceMs: 600,
  oneWayProbeMs: 2_500,
  peerSwitchGraceMs: 250,
  peerFollowHoldMs: 1_000,
  preferHoldMs: 2_000,
  restartTimeoutMs: 2_000,
  restartBackoffMs: [0, 250, 500, 1_000, 2_000],
  maxRestarts: 4,
  rebuildTimeoutMs: 10_000,
  offerBackoffMs: [500, 1_000, 2_000, 4_000, 8_000],
  sessionReofferMs: 200,
  lossWindow: 20,
  degradedLossPct: 20,
  probeLateMs: 500,
});

/** The phase of the state machine: what the link is doing. */
export type LinkState = "connecting" | "up" | "restarting" | "rebuilding" | "down";
/** What is reported (status line, Prometheus): the phase, with "up" split off as "degraded". */
export type HealthState = LinkState | "degraded";

export type RestartReason =
  | "network-change"
  | "silence"
  | "no-delivery"
  | "ice-failed"
  | "restart-timeout"
  | "restart-failed"
  | "manual"
  | "turn-credentials";

/** Why a restart was asked for from outside the policy (`requestRestart`). */
export type RequestedRestart = "manual" | "turn-credentials";

export type RebuildReason = "restarts-failed" | "rebuild-timeout" | "dtls-failed" | "peer-closed";

export type SwitchReason =
  | "uplink-gone"
  | "network-change"
  | "silence"
  | "no-delivery"
  | "ice-failed"
  | "preferred"
  | "peer-moved";

export type OfferReason = "offer-failed" | "offer-unanswered" | "session-closed";

/** How an ICE keepalive (STUN consent check) went: ours answered or not, or the peer's arrived. */
export type KeepaliveOutcome = "answered" | "missed" | "received";

export type Decision =
  | { type: "probe" }
  | { type: "restart"; reason: RestartReason; attempt: number }
  | { type: "rebuild"; reason: RebuildReason; attempt: number }
  | { type: "offer"; reason: OfferReason; attempt: number }
  /** Move both ends to the validated backup pair `to` (no signaling). */
  | { type: "switch"; to: string; reason: SwitchReason }
  | { type: "state"; state: HealthState; prev: HealthState };

export interface HealthSnapshot {
  state: HealthState;
  /**
   * Smoothed RTT (RFC 6298 SRTT) of the current path, from probe answers, keepalives and acks with
   * the peer's ack delay taken off (RFC 9002 §5.3); null before the first sample.
   */
  rttMs: number | null;
  /**
   * When the last sample came (null: none on this path). Samples come from probes, acks and the
   * ICE keepalive, which only the offering end sends: an idle link's answering end keeps the RTT
   * of its last traffic.
   */
  rttAt: number | null;
  /** Its variation (RFC 6298 RTTVAR). */
  rttVarMs: number | null;
  /** The probe timeout now (RFC 9002 §6.2.1, floored): waiting longer starts suspicion. */
  ptoMs: number;
  /** Mean change between consecutive RTT samples (RFC 3550 §6.4.1 estimator). */
  jitterMs: number | null;
  /** Unanswered share of the last `lossWindow` resolved probes (%); null before any. */
  lossPct: number | null;
  lastRxAt: number | null;
  lastTxAt: number | null;
  /** ICE restarts that completed. */
  restarts: number;
  /** Switches to a backup pair (no restart, no edge). */
  switches: number;
  /** Backup pairs validated now. */
  backups: number;
  /** Rebuilds that opened. */
  rebuilds: number;
  /** Restarts and rebuilds that failed since the link last came (back) up. */
  consecutiveFailures: number;
  /** Same as consecutiveFailures (kept for existing readers). */
  failedRestarts: number;
  probesSent: number;
  probesLost: number;
  /** Selected path as the caller described it (e.g. "host", "srflx", "relay"). */
  path?: string;
}

export class LinkHealth {
  readonly config: HealthConfig;
  #phase: LinkState = "connecting";
  #phaseSince: number;
  #reported: HealthState = "connecting";
  #lastPoll = Number.NEGATIVE_INFINITY;
  #clock = Number.NEGATIVE_INFINITY;
  #path: string | undefined;

  #lastRx: number | null = null;
  #lastTx: number | null = null;
  /** Last probe sent or asked for (a `probe` decision the caller could not carry out counts). */
  #lastProbe: number | null = null;
  #probes = new Map<number, number>();
  /** Outcomes of the last resolved probes: true = answered. */
  #outcomes: boolean[] = [];
  /**
   * Smoothed RTT and variation on the current path (probes, acks, keepalives) as the timers wait
   * for answers: an ack's batching delay included, since that is how long one takes to come.
   */
  #rtt = new RttEstimator();
  /** The path's own round trip: acks' samples less the delay the peer says it held them. */
  #pathRtt = new RttEstimator();
  /** Lowest RTT sample on this path, ack delays and all. */
  #minRtt: number | null = null;
  /** The smallest RTT sample with no ack delay in it (probes, keepalives), or null. */
  #minPromptRtt: number | null = null;
  /** When the last RTT sample came: an idle answering end gets none (the offerer's keepalive). */
  #rttAt: number | null = null;
  /** `control` messages not acknowledged yet. */
  #outstanding = new Outstanding();
  /** A keepalive went unanswered: probe at once. */
  #keepaliveMissed = false;
  #jitter: number | null = null;
  #lastRtt: number | null = null;
  #probesSent = 0;
  #probesLost = 0;

  #iceFailed = false;
  #disconnectedSince: number | null = null;
  /**
   * The PeerConnection cannot carry the link any more and no ICE restart mends that: DTLS failed,
   * or the peer closed the association. The next poll rebuilds.
   */
  #broken: "dtls-failed" | "peer-closed" | null = null;
  #netFirst: number | null = null;
  #netLast: number | null = null;
  /** A restart asked for from outside, and why (null: none). */
  #manual: RequestedRestart | null = null;

  /** Restart attempts in the current series (reset by success and by a rebuild). */
  #attempt = 0;
  #seriesFailures = 0;
  #failures = 0;
  #restartAt = 0;
  /** The restart under way was started by the peer: we answer it and do not start our own. */
  #remote = false;
  #attemptFailed = false;
  /** The failed attempt never reached the edge (transport error): retry at once. */
  #retryNow = false;
  /** After a handover: when the peer must have been heard from (null: not verifying). */
  #verifyBy: number | null = null;
  /**
   * The handover under way began with a silently dead path: routes may still be moving under it
   * (a blackhole's default route is demoted as it starts), so it is not held to the verify window.
   */
  #silentCause = false;
  #upAt = 0;
  #retryAt: number | null = null;
  #retryReason: RestartReason = "restart-timeout";
  #rebuildAttempt = 0;
  #restartsDone = 0;
  #rebuilds = 0;
  /** When the offering side offers again while not up (null: not scheduled). */
  #offerAt: number | null = null;
  #offerReason: OfferReason = "offer-unanswered";
  #offerFailures = 0;
  #offerAttempt = 0;
  #inputs = new Map<string, number>();

  /** Validated backup pairs by id: their uplink and since when they are valid. */
  #backups = new Map<string, { uplink: string; since: number; absent: boolean }>();
  /** The active pair's local uplink (null: unknown, e.g. an unbound socket following routes). */
  #activeUplink: string | null = null;
  #preferredUplink: string | null = null;
  #presentUplinks: string[] | null = null;
  /** The active uplink disappeared: switch away at once. */
  #uplinkGone = false;
  /** The peer has other paths to us (onPeerPaths). */
  #peerPaths = false;
  /** The peer sends on this validated pair (the controlling side follows it). */
  #peerMoved: string | null = null;
  /** First send since the last receive (null: nothing sent since): backup silence. */
  #txSinceRx: number | null = null;
  /** First send since the peer was last heard of what gets no answer (onSend answered false). */
  #oneWaySince: number | null = null;
  /** Silence is counted from here at least (a switch starts the clock again). */
  #rxFloor = Number.NEGATIVE_INFINITY;
  /** The switch under verification (its pair is dropped as a backup if it delivers nothing). */
  #switchedTo: string | null = null;
  #switches = 0;
  #lastSwitchAt = Number.NEGATIVE_INFINITY;

  constructor(config: Partial<HealthConfig> = {}, now = 0) {
    this.config = { ...DEFAULT_HEALTH, ...config };
    this.#phaseSince = now;
  }

  /** The phase (never "degraded"; see `snapshot(now).state` for the reported state). */
  get state(): LinkState {
    return this.#phase;
  }

  // --- events --------------------------------------------------------------------------------

  /** The link carries data: first open, or a rebuilt PeerConnection opened. */
  onOpen(now: number, path?: string): void {
    this.#fed("onOpen");
    this.#tick(now);
    if (this.#phase === "rebuilding") this.#rebuilds++;
    this.#rebuildAttempt = 0;
    this.#toUp(now, path);
  }

  /** A restart brought the link back (new pair selected, data flowing). */
  onRestartDone(now: number, path?: string): void {
    this.#fed("onRestartDone");
    this.#tick(now);
    if (this.#phase !== "restarting") return;
    this.#restartsDone++;
    this.#toUp(now, path);
  }

  onReceive(now: number): void {
    this.#fed("onReceive");
    this.#tick(now);
    this.#lastRx = now;
    this.#txSinceRx = this.#oneWaySince = null;
  }

  /**
   * Something went to the peer. `answered`: the peer acknowledges it (framed `control`), so a
   * path that stays silent after it is suspect; telemetry and raw channels get no answer, and
   * sending only those must not look like silence (it switched a healthy link every 2.5 s).
   */
  onSend(now: number, answered = true): void {
    this.#fed("onSend");
    this.#tick(now);
    this.#lastTx = now;
    if (answered) this.#txSinceRx ??= now;
    else this.#oneWaySince ??= now;
  }

  onProbeSent(id: number, now: number): void {
    this.#fed("onProbeSent");
    this.#tick(now);
    this.#probes.set(id, now);
    this.#keepaliveMissed = false; // the probe carries the suspicion on
    this.#probesSent++;
    this.#lastProbe = now;
    this.#lastTx = now;
    this.#txSinceRx ??= now;
  }

  onProbeAnswered(id: number, now: number): void {
    this.#fed("onProbeAnswered");
    this.#tick(now);
    this.#lastRx = now;
    this.#txSinceRx = this.#oneWaySince = null;
    const sent = this.#probes.get(id);
    if (sent === undefined) return; // late (already counted lost) or from before a handover
    this.#probes.delete(id);
    this.#record(true);
    this.#sample(now - sent);
  }

  /** A reliable `control` message (or a resend of it) went out: the peer will acknowledge it. */
  onReliableSent(seq: number, now: number): void {
    this.#fed("onReliableSent");
    this.#tick(now);
    this.#outstanding.sent(seq, now);
    this.#lastTx = now;
    this.#txSinceRx ??= now;
  }

  /** The peer said hello and every unacknowledged message went again, under these numbers. */
  onReliableResent(seqs: readonly number[], now: number): void {
    this.#fed("onReliableResent");
    this.#tick(now);
    this.#outstanding.resent(seqs, now);
    if (seqs.length > 0) this.#lastTx = now;
  }

  /**
   * The peer acknowledged every `control` message below `next` (an RTT sample when it can),
   * `ackDelayMs` after the newest of them reached it, when it says.
   */
  onReliableAcked(next: number, now: number, ackDelayMs?: number): void {
    this.#fed("onReliableAcked");
    this.#tick(now);
    this.#lastRx = now;
    this.#txSinceRx = this.#oneWaySince = null;
    const r = this.#outstanding.acked(next, now);
    if (r !== null) this.#sample(r, ackDelayMs);
  }

  /**
   * An ICE keepalive: ours answered (an RTT sample), ours unanswered (suspect the path: probe at
   * once), or the peer's check arrived (the path works inbound).
   */
  onKeepalive(outcome: KeepaliveOutcome, now: number, rttMs?: number): void {
    this.#fed("onKeepalive");
    this.#tick(now);
    if (outcome === "missed") {
      this.#keepaliveMissed = true;
      return;
    }
    this.#lastRx = now;
    this.#txSinceRx = this.#oneWaySince = null;
    if (outcome === "answered" && rttMs !== undefined) this.#sample(rttMs);
  }

  /** The probe timeout (ms): RFC 9002 §6.2.1 on the current path's RTT, floored. */
  pto(): number {
    const c = this.config;
    return this.#rtt.pto({ minMs: c.ptoMinMs, initialMs: c.ptoInitialMs, granularityMs: 1 });
  }

  /** Waiting this long in vain means the path is dead (ms). */
  #deadAfter(): number {
    const c = this.config;
    return Math.min(Math.max(c.deadPtos * this.pto(), c.deadMinMs), c.silenceMs);
  }

  /**
   * How long silence lasts before a restart: when we have no backup but the peer has other paths
   * (`onPeerPaths`), long enough for the peer to switch first (`peerSwitchGraceMs`).
   */
  #restartAfter(): number {
    const dead = this.#deadAfter();
    if (!this.#peerPaths) return dead;
    for (const b of this.#backups.values()) if (!b.absent) return dead;
    const c = this.config;
    return Math.max(dead, c.backupSilenceMs + c.peerSwitchGraceMs);
  }

  /**
   * Since when the link has waited in vain for the peer: the oldest thing outstanding (a message
   * not acknowledged, a probe not answered), or the last thing received if later. Null: nothing
   * is outstanding, nothing is expected (an idle link).
   */
  #waitingSince(): number | null {
    const a = this.#outstanding.oldest();
    const b = this.#oldestProbe();
    if (a === null && b === null) return null;
    const oldest = Math.min(a ?? Number.POSITIVE_INFINITY, b ?? Number.POSITIVE_INFINITY);
    return Math.max(oldest, this.#lastRx ?? Number.NEGATIVE_INFINITY);
  }

  /** Waiting past a PTO: suspect the path and probe (at once, then every probeSuspectMs). */
  #suspect(now: number): boolean {
    if (this.#keepaliveMissed) return true;
    const w = this.#waitingSince();
    return w !== null && now - w >= this.pto();
  }

  /** RTCIceConnectionState: `failed` restarts; `disconnected` does once it lasts. */
  onIceState(state: string, now: number): void {
    this.#fed("onIceState");
    this.#tick(now);
    if (state === "failed") {
      this.#iceFailed = true;
      // The attempt under way failed outright: no need to wait for its timeout.
      this.#attemptDone();
    } else if (state === "disconnected") {
      this.#disconnectedSince ??= now;
    } else if (state !== "closed") {
      this.#iceFailed = false;
      this.#disconnectedSince = null;
    }
  }

  /** DTLS transport state: `failed` cannot be mended by an ICE restart, so it rebuilds. */
  onDtlsState(state: string, now: number): void {
    this.#fed("onDtlsState");
    this.#tick(now);
    if (state === "failed") this.#broken = "dtls-failed";
    // Only the PeerConnection in use is followed, and adapters replace theirs before closing it:
    // a DTLS transport that closes under the link got the peer's close_notify.
    else if (state === "closed") this.#peerClosedNow();
  }

  /**
   * The peer closed the association of the PeerConnection in use (an SCTP ABORT or SHUTDOWN, the
   * link's reliable channel closed by it, a DTLS close_notify): the peer dropped this
   * PeerConnection, so it rebuilds at once. Hanging up closes the session too; this needs no edge
   * to be reachable.
   */
  onPeerClosed(now: number): void {
    this.#fed("onPeerClosed");
    this.#tick(now);
    this.#peerClosedNow();
  }

  #peerClosedNow(): void {
    const p = this.#phase;
    // Connecting or down: no PeerConnection that carried the link to rebuild.
    if (p === "up" || p === "restarting" || p === "rebuilding") this.#broken ??= "peer-closed";
  }

  /** RTCPeerConnectionState: `failed` is handled like ICE failure. */
  onConnectionState(state: string, now: number): void {
    this.#fed("onConnectionState");
    if (state === "failed") this.onIceState("failed", now);
  }

  /** A local interface or address appeared/disappeared, or the default route changed. */
  onNetworkChange(now: number): void {
    this.#fed("onNetworkChange");
    this.#tick(now);
    // The rest of the change that started this attempt: covered by it.
    const young = now - this.#restartAt < this.config.netChangeSupersedeMs;
    if (this.#phase === "restarting" && !this.#remote && young) return;
    this.#netFirst ??= now;
    this.#netLast = now;
  }

  /** The peer started a restart: we answer it and start none of our own until it times out. */
  onRemoteRestart(now: number): void {
    this.#fed("onRemoteRestart");
    this.#tick(now);
    if (this.#phase !== "up" && this.#phase !== "restarting") return;
    this.#enter("restarting", now);
    this.#remote = true;
    this.#restartAt = now;
    this.#retryAt = null;
    this.#attemptFailed = false;
  }

  /** The restart asked for actually went out (its timeout runs from here). */
  onRestartBegun(now: number): void {
    this.#fed("onRestartBegun");
    this.#tick(now);
    if (this.#phase === "restarting") this.#restartAt = now;
  }

  /**
   * The restart under way failed outright: retried per backoff, or at once when it never reached
   * the edge (`transport`: its HTTP connection died with the uplink; the caller uses new ones).
   */
  onRestartFailed(now: number, transport = false): void {
    this.#fed("onRestartFailed");
    this.#tick(now);
    this.#attemptDone();
    if (this.#attemptFailed && transport) this.#retryNow = true;
  }

  /** Our attempt under way (not the peer's, not a retry waiting for its backoff) failed. */
  #attemptDone(): void {
    if (this.#phase === "restarting" && !this.#remote && this.#retryAt === null)
      this.#attemptFailed = true;
  }

  /** The selected path changed (shown in `snapshot`). */
  onPath(path: string): void {
    this.#fed("onPath");
    this.#path = path;
  }

  /**
   * The local uplinks: the active pair's (null when unknown: a socket that follows the routing
   * table), the preferred one (the default route's), and those present. Fed at start and on
   * every network change, before `onNetworkChange`.
   */
  onUplinks(
    now: number,
    u: { active: string | null; preferred: string | null; present: string[] },
  ): void {
    this.#fed("onUplinks");
    this.#tick(now);
    this.#activeUplink = u.active;
    this.#preferredUplink = u.preferred;
    this.#presentUplinks = u.present;
    if (u.active !== null && !u.present.includes(u.active)) this.#uplinkGone = true;
    // A backup whose uplink is missing is not used, but kept: route changes show transient
    // states (a route deleted, then added with a new metric). Back, it waits its hold again.
    for (const b of this.#backups.values()) {
      const absent = !u.present.includes(b.uplink);
      if (b.absent && !absent) b.since = now;
      b.absent = absent;
    }
  }

  /** A backup pair (on local uplink `uplink`) passed its check (`ok`) or failed / went away. */
  onBackup(now: number, id: string, uplink: string, ok: boolean): void {
    this.#fed("onBackup");
    this.#tick(now);
    if (!ok) {
      this.#backups.delete(id);
      return;
    }
    const absent = this.#presentUplinks !== null && !this.#presentUplinks.includes(uplink);
    const known = this.#backups.get(id);
    this.#backups.set(id, { uplink, since: known && !known.absent ? known.since : now, absent });
  }

  /**
   * Whether the peer has other paths to us than the active one (its checks from another uplink
   * reached us): if it does, it may switch to one without signaling when the path dies, and a
   * silence restart of ours waits for that (`peerSwitchGraceMs`).
   */
  onPeerPaths(now: number, others: boolean): void {
    this.#fed("onPeerPaths");
    this.#tick(now);
    this.#peerPaths = others;
  }

  /** The peer sends on the validated pair `id`, not on ours: it moved (we follow). */
  onPeerMoved(now: number, id: string): void {
    this.#fed("onPeerMoved");
    this.#tick(now);
    if (this.#phase !== "up") return;
    if (now - this.#lastSwitchAt < this.config.peerFollowHoldMs) return;
    this.#peerMoved = id;
  }

  /**
   * The selected pair moved to `id` without a restart: our `switch` was carried out, or the
   * peer renominated and werift followed. `uplink` is the new active uplink.
   */
  onSwitched(now: number, id: string, uplink: string | null, path?: string): void {
    this.#fed("onSwitched");
    this.#tick(now);
    if (this.#switchedTo !== id) {
      // Not our switch: werift followed the peer's renomination. The new pair gets the time our
      // own switch gives it (silence counts from now), else a silence timer that ran on the old
      // pair would move us off the path the peer just chose (seen in the lab: 2 ms after).
      this.#rxFloor = now;
      this.#lastSwitchAt = now;
      // The peer left our uplink: suspect the rest of it, as when it moves by onPeerMoved.
      if (uplink !== null && uplink !== this.#activeUplink)
        this.#forgetBackupsOn(this.#activeUplink);
    }
    this.#backups.delete(id);
    this.#activeUplink = uplink;
    this.#uplinkGone = false;
    if (path !== undefined) this.#path = path;
    if (this.#peerMoved === id) this.#peerMoved = null;
  }

  /**
   * Restart now: `manual` (an operator, tests) or `turn-credentials` (a relayed link renewing its
   * allocation); the reason is the handover's.
   */
  requestRestart(now: number, reason: RequestedRestart = "manual"): void {
    this.#fed("requestRestart");
    this.#tick(now);
    if (this.#phase === "up" || this.#phase === "restarting") this.#manual = reason;
  }

  /** An offer went out and the edge took it: not open by `rebuildTimeoutMs`, offer again. */
  onOfferSent(now: number): void {
    this.#fed("onOfferSent");
    this.#tick(now);
    this.#offerFailures = 0;
    if (this.#phase === "connecting" || this.#phase === "down") {
      this.#offerAt = now + this.config.rebuildTimeoutMs;
      this.#offerReason = "offer-unanswered";
    }
  }

  /** An offer could not be made or sent (edge unreachable, peer not there yet): back off. */
  onOfferFailed(now: number): void {
    this.#fed("onOfferFailed");
    this.#tick(now);
    this.#offerFailures++;
    const b = this.config.offerBackoffMs;
    const delay = b[Math.min(this.#offerFailures - 1, b.length - 1)] ?? 0;
    if (this.#phase === "connecting" || this.#phase === "down") {
      this.#offerAt = now + Math.min(delay, this.config.rebuildTimeoutMs);
      this.#offerReason = "offer-failed";
    }
  }

  /**
   * The edge closed the link's session (the peer hung up, left, or the edge expired it). The link
   * is down until a new session opens; the offering side (`reoffer`) offers again shortly.
   */
  onSessionClosed(now: number, reoffer: boolean): void {
    this.#fed("onSessionClosed");
    this.#tick(now);
    this.#enter("connecting", now);
    this.#probes.clear();
    this.#retryAt = null;
    this.#offerAt = reoffer ? now + this.config.sessionReofferMs : null;
    this.#offerReason = "session-closed";
  }

  /** The link is closed for good (peer left): nothing more until `onOpen`. */
  onClosed(now: number): void {
    this.#fed("onClosed");
    this.#tick(now);
    this.#enter("down", now);
    this.#probes.clear();
    this.#retryAt = null;
    this.#offerAt = null;
  }

  /**
   * How long between checks of each backup path (ms), given the busy cadence: `busyMs` while the
   * link sent something within the last keepalive period, else the keepalive period (an idle link
   * checks its backups as often as it keeps its active path alive, and no more: issue budget in
   * docs/link-health.md). Never faster than `busyMs`.
   */
  backupCheckInterval(now: number, busyMs: number): number {
    const idleMs = Math.max(busyMs, this.config.keepaliveMs);
    const busy = this.#lastTx !== null && now - this.#lastTx < this.config.keepaliveMs;
    return busy ? busyMs : idleMs;
  }

  /** How often each event was fed since the link was made. */
  inputs(): Record<string, number> {
    return Object.fromEntries(this.#inputs);
  }

  #fed(name: string): void {
    this.#inputs.set(name, (this.#inputs.get(name) ?? 0) + 1);
  }

  // --- poll ----------------------------------------------------------------------------------

  poll(now: number): Decision[] {
    this.#tick(now);
    this.#lastPoll = now;
    const out: Decision[] = [];
    for (const [id, at] of this.#probes) {
      if (now - at >= this.config.probeTimeoutMs) {
        this.#probes.delete(id);
        this.#probesLost++;
        this.#record(false);
      }
    }
    switch (this.#phase) {
      case "up": {
        const d = this.#upStep(now);
        if (d) out.push(d);
        break;
      }
      case "restarting": {
        const d = this.#restartingStep(now);
        if (d) out.push(d);
        break;
      }
      case "rebuilding":
        if (this.#broken || now - this.#phaseSince >= this.config.rebuildTimeoutMs) {
          this.#failures++;
          out.push(this.#rebuild(now, this.#broken ?? "rebuild-timeout"));
        }
        break;
      case "connecting":
      case "down":
        if (this.#offerAt !== null && now >= this.#offerAt) {
          this.#offerAt = null;
          out.push({ type: "offer", reason: this.#offerReason, attempt: ++this.#offerAttempt });
        }
        break;
    }
    // Probe on busy links too (RTT, loss) and during restarts (an answer shows the link is back).
    if ((this.#phase === "up" || this.#phase === "restarting") && this.#probeDue(now)) {
      this.#lastProbe = now;
      out.push({ type: "probe" });
    }
    const state = this.#status(now);
    if (state !== this.#reported) {
      out.push({ type: "state", state, prev: this.#reported });
      this.#reported = state;
    }
    return out;
  }

  #upStep(now: number): Decision | null {
    if (this.#broken) return this.#rebuild(now, this.#broken);
    if (this.#peerMoved !== null) {
      const to = this.#peerMoved;
      this.#peerMoved = null;
      return this.#switch(now, to, "peer-moved");
    }
    if (this.#uplinkGone) {
      this.#uplinkGone = false;
      const b = this.#backupElsewhere();
      if (b) return this.#switch(now, b, "uplink-gone");
      return this.#restart(now, "network-change");
    }
    const reason = this.#trigger(now);
    if (reason) {
      if (reason === "network-change" && this.#activeUplink !== null) {
        // The active uplink is known and still there (gone is handled above): nothing to mend.
        // A new uplink is gathered on; a planned move waits for its backup (`preferred` below).
        this.#netFirst = this.#netLast = null;
        return null;
      }
      // Asked for a restart (an operator; new TURN credentials, which only a new gathering uses):
      // a restart it is, not a switch to a backup.
      const b =
        reason === "manual" || reason === "turn-credentials" ? null : this.#backupElsewhere();
      if (b) return this.#switch(now, b, reason as SwitchReason);
      return this.#restart(now, reason);
    }
    if (this.#verifyBy !== null && now >= this.#verifyBy) {
      // Up after a handover, yet nothing heard from the peer: the new pair carries no data.
      this.#verifyBy = null;
      if (this.#lastRx === null || this.#lastRx <= this.#upAt) {
        if (this.#switchedTo !== null) this.#backups.delete(this.#switchedTo);
        this.#switchedTo = null;
        const b = this.#backupElsewhere();
        if (b) return this.#switch(now, b, "no-delivery");
        return this.#restart(now, "no-delivery");
      }
      this.#switchedTo = null;
    }
    // Sent for a while, heard nothing, and a validated backup is at hand: move now.
    const quietFrom = this.#txSinceRx === null ? null : Math.max(this.#txSinceRx, this.#rxFloor);
    if (quietFrom !== null && now - quietFrom >= this.config.backupSilenceMs) {
      const b = this.#backupElsewhere();
      if (b) return this.#switch(now, b, "silence");
    }
    // A planned move: the preferred uplink is not the active one and its backup is settled.
    const p = this.#preferredBackup(now);
    if (p) return this.#switch(now, p, "preferred");
    return null;
  }

  /** The best validated backup not on the active uplink (the preferred uplink's first). */
  #backupElsewhere(): string | null {
    let best: string | null = null;
    for (const [id, b] of this.#backups) {
      if (b.absent) continue;
      if (this.#activeUplink !== null && b.uplink === this.#activeUplink) continue;
      if (b.uplink === this.#preferredUplink) return id;
      best ??= id;
    }
    return best;
  }

  #preferredBackup(now: number): string | null {
    const pref = this.#preferredUplink;
    if (pref === null || this.#activeUplink === null || this.#activeUplink === pref) return null;
    for (const [id, b] of this.#backups)
      if (!b.absent && b.uplink === pref && now - b.since >= this.config.preferHoldMs) return id;
    return null;
  }

  #switch(now: number, to: string, reason: SwitchReason): Decision {
    // Left because it went quiet: the other pairs of that uplink are as suspect (a blackhole
    // takes them all), until a check after this proves one again; else `preferred` would move
    // straight back onto the dead uplink.
    // The peer moving off our uplink is the same evidence from its side (its silence): in the lab
    // a rover followed its peer off a blackholed wifi, then moved straight back as `preferred`.
    const b = this.#backups.get(to);
    const suspect =
      reason === "silence" ||
      reason === "no-delivery" ||
      reason === "ice-failed" ||
      (reason === "peer-moved" && b !== undefined && b.uplink !== this.#activeUplink);
    if (suspect) this.#forgetBackupsOn(this.#activeUplink);
    // Taken as done (onSwitched confirms): the pair is the active one now, not a backup.
    if (b) this.#activeUplink = b.uplink;
    this.#backups.delete(to);
    this.#switches++;
    this.#lastSwitchAt = now;
    // A network change still in its debounce is not answered by a switch made for another
    // reason (the peer moved, silence): it is weighed once the switch is taken, against the
    // new pair's uplink: dropped, an uplink gone while the peer moved would stay in use.
    const keep = reason !== "network-change";
    const [netFirst, netLast] = [this.#netFirst, this.#netLast];
    this.#clearCauses();
    if (keep) [this.#netFirst, this.#netLast] = [netFirst, netLast];
    this.#peerMoved = null;
    this.#switchedTo = to;
    this.#rxFloor = now;
    this.#upAt = now;
    // Verify the new pair like a handover: probe now, hear from the peer within a few RTTs.
    const c = this.config;
    const rtt = this.#rtt.srtt ?? 0;
    this.#verifyBy = now + Math.min(Math.max(4 * rtt, c.verifyMinMs), c.silenceMs);
    this.#lastProbe = null;
    this.#probes.clear();
    return { type: "switch", to, reason };
  }

  /** Drops the backups on `uplink`: a later check must prove one again before it is used. */
  #forgetBackupsOn(uplink: string | null): void {
    if (uplink === null) return;
    for (const [id, x] of this.#backups) if (x.uplink === uplink) this.#backups.delete(id);
  }

  /** Reasons to restart a link that is up (or to supersede a restart: manual, network change). */
  #trigger(now: number): RestartReason | null {
    if (this.#manual) return this.#manual;
    if (this.#netDue() <= now) return "network-change";
    if (this.#iceFailed) return "ice-failed";
    if (this.#disconnectedSince !== null) {
      if (now - this.#disconnectedSince >= this.config.disconnectedGraceMs) return "ice-failed";
    }
    const w = this.#waitingSince();
    if (w !== null && now - Math.max(w, this.#rxFloor) >= this.#restartAfter()) return "silence";
    return null;
  }

  #restartingStep(now: number): Decision | null {
    const c = this.config;
    if (this.#broken) return this.#rebuild(now, this.#broken);
    // A network change during a restart: the attempt may run on the path that just went away.
    if (this.#manual) return this.#restart(now, this.#manual);
    if (this.#netDue() <= now) return this.#restart(now, "network-change");
    if (this.#retryAt !== null) {
      return now >= this.#retryAt ? this.#restart(now, this.#retryReason) : null;
    }
    const timedOut = now - this.#restartAt >= c.restartTimeoutMs;
    if (!timedOut && !this.#attemptFailed) return null;
    // The attempt under way failed.
    this.#failures++;
    this.#seriesFailures++;
    const reason: RestartReason = timedOut ? "restart-timeout" : "restart-failed";
    this.#attemptFailed = false;
    this.#remote = false;
    if (this.#seriesFailures >= c.maxRestarts) return this.#rebuild(now, "restarts-failed");
    const delay = this.#retryNow ? 0 : this.#backoff(this.#attempt);
    this.#retryNow = false;
    if (delay <= 0) return this.#restart(now, reason);
    this.#retryAt = now + delay;
    this.#retryReason = reason;
    return null;
  }

  #probeDue(now: number): boolean {
    if (this.#oneWayDue() <= now) return true;
    const every = this.#probeInterval(now);
    if (every === null) return false;
    return this.#lastProbe === null || now - this.#lastProbe >= every;
  }

  /** When sending one way, unheard, calls for a probe (Infinity: not now). */
  #oneWayDue(): number {
    const c = this.config;
    if (c.oneWayProbeMs <= 0 || this.#phase !== "up" || this.#oneWaySince === null)
      return Number.POSITIVE_INFINITY;
    if (this.#probes.size > 0) return Number.POSITIVE_INFINITY; // one is out: it decides
    const from = Math.max(this.#oneWaySince, this.#rxFloor, this.#lastProbe ?? -Infinity);
    return from + c.oneWayProbeMs;
  }

  /**
   * How often to probe now (null: not at all). Suspicion, a restart, and an unanswered probe:
   * every probeSuspectMs. Otherwise every probeIdleMs if background probing is on; else never,
   * but once after the link (re)opens (an RTT sample, and the verification of a new path).
   */
  #probeInterval(now: number): number | null {
    const c = this.config;
    if (this.#phase !== "up" || this.#probes.size > 0 || this.#suspect(now))
      return c.probeSuspectMs;
    if (c.probeIdleMs > 0) return c.probeIdleMs;
    return this.#lastProbe === null ? 0 : null;
  }

  /** When the pending burst of network changes is due (Infinity: none pending). */
  #netDue(): number {
    if (this.#netFirst === null || this.#netLast === null) return Number.POSITIVE_INFINITY;
    const c = this.config;
    return Math.min(this.#netLast + c.netChangeQuietMs, this.#netFirst + c.netChangeMaxDelayMs);
  }

  #backoff(attempt: number): number {
    const b = this.config.restartBackoffMs;
    return b[Math.min(attempt, b.length - 1)] ?? 0;
  }

  #restart(now: number, reason: RestartReason): Decision {
    this.#enter("restarting", now);
    this.#restartAt = now;
    this.#attempt++;
    this.#clearCauses();
    this.#verifyBy = null;
    this.#silentCause = reason === "silence" || reason === "restart-timeout";
    return { type: "restart", reason, attempt: this.#attempt };
  }

  /** What made us act has been acted on: a new attempt, a rebuild, or the link is back. */
  #clearCauses(): void {
    this.#remote = false;
    this.#attemptFailed = false;
    this.#retryNow = false;
    this.#retryAt = null;
    this.#manual = null;
    this.#netFirst = this.#netLast = null;
    this.#iceFailed = false;
    this.#disconnectedSince = null;
    this.#uplinkGone = false;
    this.#peerMoved = null;
  }

  #rebuild(now: number, reason: RebuildReason): Decision {
    this.#enter("rebuilding", now);
    this.#phaseSince = now; // a rebuild after a rebuild: its own timeout
    this.#attempt = 0;
    this.#seriesFailures = 0;
    this.#clearCauses();
    this.#broken = null;
    this.#probes.clear();
    this.#rebuildAttempt++;
    return { type: "rebuild", reason, attempt: this.#rebuildAttempt };
  }

  #toUp(now: number, path: string | undefined): void {
    const handover = this.#phase === "restarting" || this.#phase === "rebuilding";
    this.#enter("up", now);
    if (path !== undefined) this.#path = path;
    this.#offerAt = null;
    this.#offerFailures = 0;
    this.#offerAttempt = 0;
    this.#lastRx = now;
    this.#attempt = 0;
    this.#seriesFailures = 0;
    this.#failures = 0;
    this.#clearCauses();
    this.#broken = null;
    this.#probes.clear();
    this.#keepaliveMissed = false;
    this.#upAt = now;
    this.#verifyBy = null;
    if (handover) {
      // The pairs of the old ICE session are no backups in the new one (the link reports anew).
      this.#backups.clear();
      this.#switchedTo = null;
      // Verify the new path: probe now, and hear from the peer within a few RTTs of the old one.
      const c = this.config;
      const rtt = this.#rtt.srtt ?? 0;
      if (!this.#silentCause)
        this.#verifyBy = now + Math.min(Math.max(4 * rtt, c.verifyMinMs), c.silenceMs);
      this.#lastProbe = null;
      // A new path: its own RTT and loss figures (RFC 6298 §5 restarts the estimate too).
      this.#outcomes = [];
      this.#rtt.reset();
      this.#pathRtt.reset();
      this.#jitter = this.#lastRtt = this.#minRtt = this.#minPromptRtt = this.#rttAt = null;
    }
  }

  #enter(phase: LinkState, now: number): void {
    if (phase !== this.#phase) this.#phaseSince = now;
    this.#phase = phase;
  }

  /** The latest time seen: "at once" deadlines (a failure reported between polls) use it. */
  #tick(now: number): void {
    if (now > this.#clock) this.#clock = now;
  }

  #record(answered: boolean): void {
    this.#outcomes.push(answered);
    if (this.#outcomes.length > this.config.lossWindow) this.#outcomes.shift();
  }

  #sample(r: number, ackDelayMs = 0): void {
    if (!(r >= 0) || !Number.isFinite(r)) return;
    this.#rtt.sample(r);
    this.#minRtt = Math.min(this.#minRtt ?? r, r);
    const held = Math.min(Math.max(0, ackDelayMs), ACK_HELD_BOUND_MS);
    if (held === 0) this.#minPromptRtt = Math.min(this.#minPromptRtt ?? r, r);
    // RFC 9002 §5.3 takes the delay off only down to min_rtt, which QUIC learns from acks sent
    // at once. Ours are always batched (held up to 50 ms), so the raw minimum holds the delay
    // too, and on a busy link (no probes) the delay never came off: 50 ms read on a 3 ms path.
    // The floor is what is known of the path instead: a prompt answer's RTT (a probe, an ICE
    // keepalive), and the raw minimum less the most an ack is held. A peer that claims too much
    // delay can only lower this figure (shown, not used by any timer) down to that floor.
    const floor = Math.max(this.#minPromptRtt ?? 0, this.#minRtt - ACK_HELD_BOUND_MS, 0);
    const path = Math.min(r, Math.max(r - held, floor));
    this.#pathRtt.sample(path);
    if (this.#lastRtt !== null) {
      // RFC 3550 §6.4.1: J += (|D| - J) / 16
      const d = Math.abs(path - this.#lastRtt);
      this.#jitter = (this.#jitter ?? 0) + (d - (this.#jitter ?? 0)) / 16;
    }
    this.#lastRtt = path;
    this.#rttAt = this.#clock;
  }

  #lossPct(): number | null {
    if (this.#outcomes.length === 0) return null;
    const lost = this.#outcomes.filter((a) => !a).length;
    return (100 * lost) / this.#outcomes.length;
  }

  #oldestProbe(): number | null {
    let oldest: number | null = null;
    for (const at of this.#probes.values()) if (oldest === null || at < oldest) oldest = at;
    return oldest;
  }

  #status(now: number): HealthState {
    if (this.#phase !== "up") return this.#phase;
    const oldest = this.#oldestProbe();
    if (oldest !== null && now - oldest >= this.config.probeLateMs) return "degraded";
    const loss = this.#lossPct();
    return loss !== null && loss >= this.config.degradedLossPct ? "degraded" : "up";
  }

  // --- outputs -------------------------------------------------------------------------------

  /** When `poll` should run next, absent events; undefined while nothing is scheduled. */
  nextDeadline(): number | undefined {
    const c = this.config;
    const phase = this.#phase;
    if (phase === "connecting" || phase === "down") return this.#offerAt ?? undefined;
    if (phase === "rebuilding") {
      return this.#broken ? this.#clock : this.#phaseSince + c.rebuildTimeoutMs;
    }
    // Reported since the last poll and acted on at once.
    if (this.#manual || this.#broken || this.#attemptFailed) return this.#clock;
    if (phase === "up" && this.#iceFailed) return this.#clock;
    const ds: number[] = [this.#netDue()];
    if (phase === "up") {
      if (this.#peerMoved !== null || this.#uplinkGone) return this.#clock;
      const w = this.#waitingSince();
      if (w !== null) {
        // Suspicion begins (once: later probes follow the probe schedule), then the dead window.
        if (w + this.pto() > this.#lastPoll) ds.push(w + this.pto());
        ds.push(Math.max(w, this.#rxFloor) + this.#restartAfter());
      }
      if (this.#keepaliveMissed) ds.push(this.#clock);
      if (this.#txSinceRx !== null && this.#backups.size > 0)
        ds.push(Math.max(this.#txSinceRx, this.#rxFloor) + c.backupSilenceMs);
      ds.push(this.#oneWayDue());
      const pref = this.#preferredUplink;
      if (pref !== null && this.#activeUplink !== null && this.#activeUplink !== pref)
        for (const b of this.#backups.values())
          if (b.uplink === pref && !b.absent) ds.push(b.since + c.preferHoldMs);
      if (this.#verifyBy !== null) ds.push(this.#verifyBy);
      if (this.#disconnectedSince !== null)
        ds.push(this.#disconnectedSince + c.disconnectedGraceMs);
      // The moment an unanswered probe turns the reported state to degraded.
      const oldest = this.#oldestProbe();
      if (oldest !== null && oldest + c.probeLateMs > this.#lastPoll)
        ds.push(oldest + c.probeLateMs);
    } else {
      ds.push(this.#retryAt ?? this.#restartAt + c.restartTimeoutMs);
    }
    const every = this.#probeInterval(this.#clock);
    // Overdue (a suspicion that began since the last probe): at once.
    if (every !== null)
      ds.push(Math.max((this.#lastProbe ?? this.#phaseSince) + every, this.#clock));
    for (const at of this.#probes.values()) ds.push(at + c.probeTimeoutMs);
    const next = Math.min(...ds);
    return Number.isFinite(next) ? next : undefined; // an idle link: no timer at all
  }

  snapshot(now: number): HealthSnapshot {
    const failures = this.#failures;
    return {
      state: this.#status(now),
      rttMs: this.#pathRtt.srtt,
      rttAt: this.#rttAt,
      rttVarMs: this.#pathRtt.rttvar,
      ptoMs: this.pto(),
      jitterMs: this.#jitter,
      lossPct: this.#lossPct(),
      lastRxAt: this.#lastRx,
      lastTxAt: this.#lastTx,
      restarts: this.#restartsDone,
      switches: this.#switches,
      backups: [...this.#backups.values()].filter((b) => !b.absent).length,
      rebuilds: this.#rebuilds,
      consecutiveFailures: failures,
      failedRestarts: failures,
      probesSent: this.#probesSent,
      probesLost: this.#probesLost,
      ...(this.#path !== undefined ? { path: this.#path } : {}),
    };
  }
}
