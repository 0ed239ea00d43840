/** Request figures for the load run: latency per route, outcomes by status, request rate. */
import { type Summary, summarize } from "../../bench/stats.ts";
import { ProblemError } from "../../shared/errors.ts";

export class Recorder {
  readonly #latencies = new Map<string, number[]>();
  /** route -> outcome ("ok", an HTTP status, or "network") -> count */
  readonly #outcomes = new Map<string, Map<string, number>>();
  requests = 0;

  /** Time one client call under a route label and count its outcome. */
  async timed<T>(route: string, f: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    this.requests++;
    let outcome = "ok";
    try {
      return await f();
    } catch (e) {
      outcome = e instanceof ProblemError ? String(e.status) : "network";
      throw e;
    } finally {
      // Latency of answered requests only: refused connections while the edge restarts are
      // counted as outcomes, not timed.
      if (outcome !== "network") {
        const l = this.#latencies.get(route) ?? [];
        l.push(performance.now() - t0);
        this.#latencies.set(route, l);
      }
      const m = this.#outcomes.get(route) ?? new Map<string, number>();
      m.set(outcome, (m.get(outcome) ?? 0) + 1);
      this.#outcomes.set(route, m);
    }
  }

  latencyMs(): Record<string, Summary> {
    return Object.fromEntries([...this.#latencies].map(([k, v]) => [k, summarize(v)]));
  }

  outcomesByRoute(): Record<string, Record<string, number>> {
    return Object.fromEntries([...this.#outcomes].map(([k, m]) => [k, Object.fromEntries(m)]));
  }

  /** Every outcome that is not "ok", summed over routes. */
  errorsByStatus(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const m of this.#outcomes.values())
      for (const [k, n] of m) if (k !== "ok") out[k] = (out[k] ?? 0) + n;
    return out;
  }
}
