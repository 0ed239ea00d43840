/**
 * Link health and handover policy, sans-IO (in the spirit of str0m): the link adapter feeds
 * events with the current time, calls `poll(now)` at `nextDeadline()` or after any event, and
 * carries out the decisions. No timers, no sockets, no clock inside, so every path is unit-tested
 * with a fake clock (test/rover/health.test.ts).
 *
 *   connecting ──open──▶ up ──net change / silence / ICE failed──▶ restarting ──done──▶ up
 *                         ▲                                          │ timeout: retry w/ backoff
 *                         └──────────────open──────── rebuilding ◀───┘ after maxRestarts
 *
 * API: new LinkHealth(config?, now) · onOpen/onReceive/onSend/onProbeSent/onProbeAnswered/
 * onIceState/onNetworkChange/onRemoteRestart/onRestartDone · poll(now) -> Decision[] ·
 * nextDeadline() · snapshot(now).
 */

export interface HealthConfig {
  /** Probe interval while probes are answered (ms). */
  probeIdleMs: number;
  /** Probe interval while a probe is unanswered (ms). */
  probeSuspectMs: number;
  /** Nothing received for this long while up: the path is dead, restart (ms). */
  silenceMs: number;
  /** Coalesce a burst of local network changes into one restart (ms). */
  netChangeDebounceMs: number;
  /** A restart that has not brought the link back by then has failed (ms). */
  restartTimeoutMs: number;
  /** Delay before restart attempt n (index n-1; the last value repeats) (ms). */
  restartBackoffMs: number[];
  /** Failed restarts in a row before the PeerConnection is rebuilt. */
  maxRestarts: number;
  /** A rebuild that has not opened by then is tried again (ms). */
  rebuildTimeoutMs: number;
  /** Probes considered for the loss figure. */
  lossWindow: number;
}

export const DEFAULT_HEALTH: HealthConfig = {
  probeIdleMs: 1_000,
  probeSuspectMs: 250,
  silenceMs: 1_500,
  netChangeDebounceMs: 30,
  restartTimeoutMs: 2_000,
  restartBackoffMs: [0, 250, 500, 1_000, 2_000],
  maxRestarts: 4,
  rebuildTimeoutMs: 10_000,
  lossWindow: 20,
};

export type LinkState = "connecting" | "up" | "restarting" | "rebuilding" | "down";
export type RestartReason =
  | "network-change"
  | "silence"
  | "ice-failed"
  | "restart-timeout"
  | "manual";

export type Decision =
  | { type: "probe" }
  | { type: "restart"; reason: RestartReason; attempt: number }
  | { type: "rebuild"; reason: string; attempt: number };

export interface HealthSnapshot {
  state: LinkState;
  rttMs: number | null;
  jitterMs: number | null;
  lossPct: number | null;
  lastRxAt: number | null;
  lastTxAt: number | null;
  restarts: number;
  rebuilds: number;
  failedRestarts: number;
}

export class LinkHealth {
  readonly config: HealthConfig;
  #state: LinkState = "connecting";
  #since: number;
  #lastRx: number | null = null;
  #lastTx: number | null = null;
  #lastProbe: number | null = null;
  #probes = new Map<number, number>();
  /** Outcomes of the last probes: true = answered. */
  #outcomes: boolean[] = [];
  #srtt: number | null = null;
  #rttvar: number | null = null;
  #iceFailed = false;
  #netChangeAt: number | null = null;
  #restartAt = 0;
  #attempt = 0;
  #nextRestartAt: number | null = null;
  #pendingReason: RestartReason | null = null;
  #restartsDone = 0;
  #rebuilds = 0;
  #rebuildAttempt = 0;

  constructor(config: Partial<HealthConfig> = {}, now = 0) {
    this.config = { ...DEFAULT_HEALTH, ...config };
    this.#since = now;
  }

  get state(): LinkState {
    return this.#state;
  }

  /** The link carries data (first open, or after a rebuild). */
  onOpen(now: number): void {
    if (this.#state === "rebuilding") this.#rebuilds++;
    this.#toUp(now);
    this.#rebuildAttempt = 0;
  }

  /** A restart brought the link back (new pair selected and data flowing). */
  onRestartDone(now: number): void {
    if (this.#state !== "restarting") return;
    this.#restartsDone++;
    this.#toUp(now);
  }

  #toUp(now: number): void {
    this.#state = "up";
    this.#since = now;
    this.#lastRx = now;
    this.#attempt = 0;
    this.#nextRestartAt = null;
    this.#pendingReason = null;
    this.#iceFailed = false;
    this.#netChangeAt = null;
    this.#probes.clear();
  }

  onReceive(now: number): void {
    this.#lastRx = now;
  }

  onSend(now: number): void {
    this.#lastTx = now;
  }

  onProbeSent(id: number, now: number): void {
    this.#probes.set(id, now);
    this.#lastProbe = now;
    this.#lastTx = now;
  }

  onProbeAnswered(id: number, now: number): void {
    const sent = this.#probes.get(id);
    this.#lastRx = now;
    if (sent === undefined) return;
    this.#probes.delete(id);
    this.#record(true);
    const r = now - sent;
    // RFC 6298 smoothing.
    if (this.#srtt === null || this.#rttvar === null) {
      this.#srtt = r;
      this.#rttvar = r / 2;
    } else {
      this.#rttvar = 0.75 * this.#rttvar + 0.25 * Math.abs(this.#srtt - r);
      this.#srtt = 0.875 * this.#srtt + 0.125 * r;
    }
  }

  #record(answered: boolean): void {
    this.#outcomes.push(answered);
    if (this.#outcomes.length > this.config.lossWindow) this.#outcomes.shift();
  }

  onIceState(state: string, now: number): void {
    if (state === "failed" || state === "disconnected") {
      this.#iceFailed = true;
    } else if (state === "connected" || state === "completed") {
      this.#iceFailed = false;
    }
    void now;
  }

  /** A local interface or address appeared/disappeared, or the default route changed. */
  onNetworkChange(now: number): void {
    if (this.#netChangeAt === null) this.#netChangeAt = now;
  }

  /** The other side started a restart; we answer it and do not start our own meanwhile. */
  onRemoteRestart(now: number): void {
    if (this.#state === "up") {
      this.#state = "restarting";
      this.#restartAt = now;
    }
  }

  /** Ask for a restart now (operator, tests, the demo). */
  requestRestart(now: number): void {
    this.#pendingReason = "manual";
    this.#nextRestartAt = now;
  }

  /** The link is closed for good (peer left). */
  onClosed(now: number): void {
    this.#state = "down";
    this.#since = now;
  }

  poll(now: number): Decision[] {
    const out: Decision[] = [];
    // Probes older than the silence window count as lost.
    for (const [id, at] of this.#probes) {
      if (now - at >= this.config.silenceMs) {
        this.#probes.delete(id);
        this.#record(false);
      }
    }
    switch (this.#state) {
      case "connecting":
      case "down":
        return out;
      case "rebuilding":
        if (now - this.#restartAt >= this.config.rebuildTimeoutMs) {
          out.push(this.#rebuild(now, "rebuild-timeout"));
        }
        return out;
      case "up": {
        const reason = this.#upTrigger(now);
        if (reason) out.push(this.#restart(now, reason));
        break;
      }
      case "restarting": {
        const d = this.#restartingStep(now);
        if (d) out.push(d);
        if (this.#state !== "restarting") return out;
        break;
      }
    }
    // Probe on busy links too (RTT, loss) and during restarts (answers tell the link is back).
    if (this.#probeDue(now)) out.push({ type: "probe" });
    return out;
  }

  #restartingStep(now: number): Decision | null {
    // A further network change during a restart: the restart may be running on the path that
    // just went away; start again at once.
    if (this.#netChangeAt !== null && now - this.#netChangeAt >= this.config.netChangeDebounceMs) {
      return this.#restart(now, "network-change");
    }
    if (this.#nextRestartAt !== null && now >= this.#nextRestartAt) {
      return this.#restart(now, this.#pendingReason ?? "restart-timeout");
    }
    if (this.#nextRestartAt === null && now - this.#restartAt >= this.config.restartTimeoutMs) {
      // Failed attempt.
      if (this.#attempt >= this.config.maxRestarts) return this.#rebuild(now, "restarts-failed");
      const backoff = this.#backoff(this.#attempt);
      this.#pendingReason = "restart-timeout";
      this.#nextRestartAt = now + backoff;
      if (backoff === 0) return this.#restart(now, "restart-timeout");
    }
    return null;
  }

  #upTrigger(now: number): RestartReason | null {
    if (this.#nextRestartAt !== null && now >= this.#nextRestartAt)
      return this.#pendingReason ?? "manual";
    if (this.#netChangeAt !== null && now - this.#netChangeAt >= this.config.netChangeDebounceMs) {
      return "network-change";
    }
    if (this.#iceFailed) return "ice-failed";
    if (this.#lastRx !== null && now - this.#lastRx >= this.config.silenceMs) return "silence";
    return null;
  }

  /** Probes run on busy links too (one a second): they are the RTT and loss figures. */
  #probeDue(now: number): boolean {
    const interval =
      this.#probes.size > 0 || this.#state !== "up"
        ? this.config.probeSuspectMs
        : this.config.probeIdleMs;
    return this.#lastProbe === null || now - this.#lastProbe >= interval;
  }

  #backoff(attempt: number): number {
    const b = this.config.restartBackoffMs;
    return b[Math.min(attempt, b.length - 1)] ?? 0;
  }

  #restart(now: number, reason: RestartReason): Decision {
    this.#state = "restarting";
    this.#restartAt = now;
    this.#attempt++;
    this.#nextRestartAt = null;
    this.#pendingReason = null;
    this.#netChangeAt = null;
    this.#iceFailed = false;
    return { type: "restart", reason, attempt: this.#attempt };
  }

  #rebuild(now: number, reason: string): Decision {
    this.#state = "rebuilding";
    this.#restartAt = now;
    this.#attempt = 0;
    this.#nextRestartAt = null;
    this.#netChangeAt = null;
    this.#rebuildAttempt++;
    return { type: "rebuild", reason, attempt: this.#rebuildAttempt };
  }

  /** When `poll` should run next (absent events); undefined while nothing is scheduled. */
  nextDeadline(): number | undefined {
    const c = this.config;
    const ds: number[] = [];
    if (this.#state === "connecting" || this.#state === "down") return undefined;
    if (this.#state === "rebuilding") return this.#restartAt + c.rebuildTimeoutMs;
    if (this.#netChangeAt !== null) ds.push(this.#netChangeAt + c.netChangeDebounceMs);
    if (this.#nextRestartAt !== null) ds.push(this.#nextRestartAt);
    if (this.#state === "up" && this.#lastRx !== null) ds.push(this.#lastRx + c.silenceMs);
    if (this.#state === "restarting" && this.#nextRestartAt === null)
      ds.push(this.#restartAt + c.restartTimeoutMs);
    const interval =
      this.#probes.size > 0 || this.#state !== "up" ? c.probeSuspectMs : c.probeIdleMs;
    ds.push((this.#lastProbe ?? this.#since) + interval);
    for (const at of this.#probes.values()) ds.push(at + c.silenceMs);
    return ds.length > 0 ? Math.min(...ds) : undefined;
  }

  snapshot(now: number): HealthSnapshot {
    const answered = this.#outcomes.filter(Boolean).length;
    void now;
    return {
      state: this.#state,
      rttMs: this.#srtt,
      jitterMs: this.#rttvar,
      lossPct:
        this.#outcomes.length > 0
          ? (100 * (this.#outcomes.length - answered)) / this.#outcomes.length
          : null,
      lastRxAt: this.#lastRx,
      lastTxAt: this.#lastTx,
      restarts: this.#restartsDone,
      rebuilds: this.#rebuilds,
      failedRestarts: this.#attempt,
    };
  }
}
