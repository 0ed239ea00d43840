// The rate limiter's verdicts kept per isolate (worker/rate-verdicts.ts): no request waits on
// its own check unless its key has several unanswered, and a refusal holds for Retry-After.
import { describe, expect, it } from "vitest";
import { RateVerdicts } from "../../worker/rate-verdicts.ts";

/** A limiter whose answers the test releases: `limit` requests within, then refusals. */
function limiter(limit: number) {
  let counted = 0;
  const waiting: (() => void)[] = [];
  return {
    ask: () => {
      const ok = ++counted <= limit;
      return new Promise<boolean>((resolve) => waiting.push(() => resolve(ok)));
    },
    answer: async () => {
      for (const r of waiting.splice(0)) r();
      await new Promise((r) => setTimeout(r, 0));
    },
    get counted() {
      return counted;
    },
  };
}

describe("rate verdicts", () => {
  it("a refusal applies to the key's next requests for refuseMs, without asking again; then the limiter decides", async () => {
    let now = 1_000;
    const v = new RateVerdicts({ refuseMs: 10_000, maxUnverified: 4, clock: () => now });
    const l = limiter(2);
    for (let i = 0; i < 3; i++) {
      expect(v.refusedUntil("k")).toBeNull();
      const c = v.begin("k");
      expect(c.mustWait).toBe(false);
      const verdict = c.settle(l.ask);
      await l.answer();
      expect(await verdict).toBe(i < 2);
    }
    // The third crossed the limit: refused here from now on, the limiter not asked.
    expect(v.refusedUntil("k")).toBe(11_000);
    expect(v.refusedUntil("other")).toBeNull();
    now = 10_999;
    expect(v.refusedUntil("k")).not.toBeNull();
    expect(l.counted).toBe(3);
    now = 11_000;
    expect(v.refusedUntil("k")).toBeNull();
    const again = v.begin("k").settle(l.ask);
    await l.answer();
    expect(await again).toBe(false);
    expect(v.refusedUntil("k")).toBe(21_000);
  });

  it("past maxUnverified unanswered checks of one key, the next request waits for its own", async () => {
    const v = new RateVerdicts({ refuseMs: 10_000, maxUnverified: 4 });
    const l = limiter(100);
    // Counted on arrival: the round trips start later (after each response).
    const checks = Array.from({ length: 6 }, () => v.begin("burst"));
    expect(checks.map((c) => c.mustWait)).toEqual([false, false, false, false, true, true]);
    // Another key is not held back by this one's burst.
    const calm = v.begin("calm");
    expect(calm.mustWait).toBe(false);
    expect(v.unanswered).toBe(7);
    const verdicts = [...checks, calm].map((c) => c.settle(l.ask));
    // Settling twice asks once.
    expect(checks[0]?.settle(l.ask)).toBe(verdicts[0]);
    await l.answer();
    expect(await Promise.all(verdicts)).toEqual(Array(7).fill(true));
    expect(l.counted).toBe(7);
    expect(v.unanswered).toBe(0);
    expect(v.begin("burst").mustWait).toBe(false);
  });

  it("a failing limiter counts as within (it is a guard), and the refused keys kept are bounded", async () => {
    const v = new RateVerdicts({ refuseMs: 10_000, maxUnverified: 4, maxKeys: 3 });
    expect(await v.begin("x").settle(() => Promise.reject(new Error("limiter down")))).toBe(true);
    expect(v.refusedUntil("x")).toBeNull();
    for (const k of ["a", "b", "c", "d"]) await v.begin(k).settle(async () => false);
    // Full: the oldest refusal went first.
    expect(["a", "b", "c", "d"].map((k) => v.refusedUntil(k) !== null)).toEqual([
      false,
      true,
      true,
      true,
    ]);
  });
});
