/**
 * Runs the shared link health policy (shared/link/health.ts, the rover agent's too) for one
 * console link: events go in with the time, `poll` runs after events and at the policy's next
 * deadline, and every decision goes to the link to carry out. The console has no policy of its
 * own: no thresholds or timers here beyond "call poll when the policy says".
 */
import {
  type Decision,
  type HealthConfig,
  type HealthState,
  LinkHealth,
} from "../../shared/link/health.ts";

/** What the link panel shows (and `data-state` holds). */
export type LinkState =
  | "connecting"
  | "connected"
  | "degraded"
  | "reconnecting"
  | "rebuilding"
  | "closed";

/** The reported health state as the console names it. */
export function linkStateOf(s: HealthState): LinkState {
  switch (s) {
    case "connecting":
      return "connecting";
    case "up":
      return "connected";
    case "degraded":
      return "degraded";
    case "restarting":
      return "reconnecting";
    case "rebuilding":
      return "rebuilding";
    case "down":
      return "closed";
  }
}

/** Background probe interval of a console link (ms). */
const CONSOLE_PROBE_MS = 1_000;

export class HealthLoop {
  readonly health: LinkHealth;
  #act: (d: Decision) => void;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #stopped = false;

  constructor(act: (d: Decision) => void, config: Partial<HealthConfig> = {}) {
    this.#act = act;
    // The console speaks raw `control` (no acknowledgements to drive liveness) and runs on a
    // desk, not a metered uplink: it probes every second (the `lan` profile's cadence).
    this.health = new LinkHealth({ probeIdleMs: CONSOLE_PROBE_MS, ...config }, this.now());
  }

  /** The clock the policy runs on (monotonic ms). */
  now(): number {
    return performance.now();
  }

  /** Feed an event that may call for a decision now, then poll. */
  feed(event: (h: LinkHealth, now: number) => void): void {
    if (this.#stopped) return;
    event(this.health, this.now());
    this.poll();
  }

  /** Feed an event that only updates figures (receive, send): the next poll sees it. */
  note(event: (h: LinkHealth, now: number) => void): void {
    if (!this.#stopped) event(this.health, this.now());
  }

  /** Run the policy now, carry out its decisions, and come back at its next deadline. */
  poll(): void {
    if (this.#stopped) return;
    for (const d of this.health.poll(this.now())) {
      this.#act(d);
      if (this.#stopped) return;
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const next = this.health.nextDeadline();
    if (next !== undefined)
      this.#timer = setTimeout(() => this.poll(), Math.max(5, next - this.now()));
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.health.onClosed(this.now());
  }
}
