import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_HEALTH, type Decision, LinkHealth } from "../../rover/health.ts";

/** Drive poll at every deadline up to `until`, collecting decisions. */
function run(
  h: LinkHealth,
  from: number,
  until: number,
  onProbe?: (now: number) => void,
): { at: number; d: Decision }[] {
  const out: { at: number; d: Decision }[] = [];
  let now = from;
  for (let guard = 0; guard < 10_000; guard++) {
    for (const d of h.poll(now)) {
      out.push({ at: now, d });
      if (d.type === "probe") onProbe?.(now);
    }
    const next = h.nextDeadline();
    if (next === undefined || next > until) break;
    now = Math.max(now + 1, next);
  }
  return out;
}

const restarts = <T extends { d: Decision }>(ds: T[]) => ds.filter((x) => x.d.type === "restart");
const only = (ds: Decision[]) => ds.filter((d) => d.type !== "probe");

describe("LinkHealth", () => {
  it("does nothing before the link opens", () => {
    const h = new LinkHealth({}, 0);
    expect(h.poll(10_000)).toEqual([]);
    expect(h.nextDeadline()).toBeUndefined();
  });

  it("probes once a second while answered and computes RTT, jitter and loss", () => {
    const h = new LinkHealth({}, 0);
    h.onOpen(0);
    let id = 0;
    const ds = run(h, 0, 5_000, (now) => {
      h.onProbeSent(++id, now);
      h.onProbeAnswered(id, now + 20);
    });
    const probes = ds.filter((x) => x.d.type === "probe").map((x) => x.at);
    expect(probes.length).toBeGreaterThanOrEqual(4);
    expect(probes[1]! - probes[0]!).toBe(DEFAULT_HEALTH.probeIdleMs);
    const s = h.snapshot(5_000);
    expect(s.rttMs).toBeCloseTo(20, 5);
    expect(s.jitterMs).toBeLessThan(10);
    expect(s.lossPct).toBe(0);
    expect(restarts(ds)).toEqual([]);
  });

  it("restarts on silence (no traffic for silenceMs) and counts unanswered probes as loss", () => {
    const h = new LinkHealth({}, 0);
    h.onOpen(0);
    let id = 0;
    const ds = run(h, 0, 3_000, (now) => h.onProbeSent(++id, now));
    const r = restarts(ds)[0];
    expect(r?.d).toMatchObject({ type: "restart", reason: "silence", attempt: 1 });
    expect(r?.at).toBe(DEFAULT_HEALTH.silenceMs);
    expect(h.state).toBe("restarting");
  });

  it("restarts on a local network change after a short debounce, one restart for a burst", () => {
    const h = new LinkHealth({}, 0);
    h.onOpen(0);
    h.onReceive(100);
    h.onNetworkChange(100);
    h.onNetworkChange(110);
    h.onNetworkChange(120);
    expect(h.poll(110).filter((d) => d.type === "restart")).toEqual([]);
    expect(h.nextDeadline()).toBe(100 + DEFAULT_HEALTH.netChangeDebounceMs);
    const d = h.poll(130).filter((x) => x.type === "restart");
    expect(d).toEqual([{ type: "restart", reason: "network-change", attempt: 1 }]);
    expect(h.poll(131).filter((x) => x.type === "restart")).toEqual([]);
  });

  it("restarts on ICE failure", () => {
    const h = new LinkHealth({}, 0);
    h.onOpen(0);
    h.onIceState("failed", 50);
    expect(only(h.poll(50))).toEqual([{ type: "restart", reason: "ice-failed", attempt: 1 }]);
  });

  it("retries failed restarts with backoff, then rebuilds, and a rebuild that never opens is retried", () => {
    const h = new LinkHealth({}, 0);
    h.onOpen(0);
    h.requestRestart(0);
    const ds = run(h, 0, 30_000);
    const kinds = ds.filter((x) => x.d.type !== "probe").map((x) => `${x.d.type}@${x.at}`);
    // attempt 1 at 0; then each attempt times out after 2 s and waits its backoff.
    expect(kinds.slice(0, 5)).toEqual([
      "restart@0",
      "restart@2250",
      "restart@4750",
      "restart@7750",
      "rebuild@9750",
    ]);
    expect(kinds[5]).toBe("rebuild@19750");
  });

  it("a completed restart resets the counters and returns to up", () => {
    const h = new LinkHealth({}, 0);
    h.onOpen(0);
    h.requestRestart(0);
    h.poll(0);
    h.onRestartDone(300);
    expect(h.state).toBe("up");
    h.requestRestart(400);
    expect(only(h.poll(400))).toEqual([{ type: "restart", reason: "manual", attempt: 1 }]);
    expect(h.snapshot(400).restarts).toBe(1);
  });

  it("does not start its own restart while answering the peer's, until that one times out", () => {
    const h = new LinkHealth({}, 0);
    h.onOpen(0);
    h.onRemoteRestart(100);
    expect(h.state).toBe("restarting");
    expect(h.poll(1_000).filter((d) => d.type === "restart")).toEqual([]);
    expect(h.poll(2_100).filter((d) => d.type === "restart")).toEqual([
      { type: "restart", reason: "restart-timeout", attempt: 1 },
    ]);
  });

  it("property: never two restarts without a completion or a timeout between them; deadlines move forward", () => {
    const ev = fc.oneof(
      fc.constant("rx" as const),
      fc.constant("net" as const),
      fc.constant("done" as const),
      fc.constant("fail" as const),
      fc.constant("tick" as const),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(ev, fc.integer({ min: 1, max: 700 })), { maxLength: 80 }),
        (steps) => {
          const h = new LinkHealth({}, 0);
          h.onOpen(0);
          let now = 0;
          let probe = 0;
          let lastRestart = Number.NEGATIVE_INFINITY;
          let doneSince = false;
          for (const [e, dt] of steps) {
            now += dt;
            if (e === "rx") h.onReceive(now);
            if (e === "net") h.onNetworkChange(now);
            if (e === "fail") h.onIceState("failed", now);
            if (e === "done") {
              h.onRestartDone(now);
              doneSince = true;
            }
            for (const d of h.poll(now)) {
              if (d.type === "probe") h.onProbeSent(++probe, now);
              if (d.type !== "restart") continue;
              const timedOut = now - lastRestart >= DEFAULT_HEALTH.netChangeDebounceMs;
              if (!(doneSince || timedOut)) return false;
              lastRestart = now;
              doneSince = false;
            }
            const next = h.nextDeadline();
            // The adapter carried out every decision: nothing is due in the past.
            if (next !== undefined && next < now) return false;
          }
          return true;
        },
      ),
    );
  });
});
