import { describe, expect, it } from "vitest";
import { nextStep, RETRY_FIRST_MS, RETRY_MAX_MS, retryDelay } from "../../rover/retry-delay.ts";
import { ProblemError } from "../../shared/errors.ts";

const problem = (status: number, retryAfterS?: number) =>
  new ProblemError({
    problem: { type: "about:blank", title: "x", status, detail: "" },
    retryAfterS,
    method: "GET",
    url: "http://127.0.0.1/",
  });

describe("retry delay", () => {
  it("doubles from 250 ms to 5 s", () => {
    const steps = [RETRY_FIRST_MS];
    while (steps.length < 7) steps.push(nextStep(steps.at(-1) as number));
    expect(steps).toEqual([250, 500, 1000, 2000, 4000, 5000, 5000]);
    expect(RETRY_MAX_MS).toBe(5000);
  });

  it("is jittered within the step's upper half, so a fleet does not retry in lockstep", () => {
    expect(retryDelay(4000, new Error("x"), () => 0)).toBe(2000);
    expect(retryDelay(4000, new Error("x"), () => 0.999999)).toBe(4000);
    const seen = new Set(Array.from({ length: 50 }, () => retryDelay(4000, null)));
    expect(seen.size).toBeGreaterThan(10);
    for (const d of seen) expect(d >= 2000 && d <= 4000).toBe(true);
  });

  it("waits at least what the edge's Retry-After says, up to a minute", () => {
    expect(retryDelay(250, problem(503, 30), () => 0)).toBe(30_000);
    expect(retryDelay(250, problem(429, 3600), () => 0)).toBe(60_000);
    expect(retryDelay(4000, problem(429, 1), () => 1)).toBe(4000);
    expect(retryDelay(500, problem(500), () => 0)).toBe(250);
  });
});
