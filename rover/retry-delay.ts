/**
 * How long the event loop waits before it tries the edge again. Exponential, jittered: after an
 * edge deploy or outage, a fleet that retried on the same schedule would come back in lockstep,
 * every rover at the same instants ("equal jitter": half the step fixed, half random). An edge
 * that says when to come back (`Retry-After` on 429/503) is taken at its word, within a bound.
 */
import { ProblemError } from "../shared/errors.ts";

export const RETRY_FIRST_MS = 250;
export const RETRY_MAX_MS = 5_000;
/** A Retry-After longer than this is not waited out in one go (the edge may be back sooner). */
const RETRY_AFTER_MAX_MS = 60_000;

/** The next step of the schedule after `ms`. */
export function nextStep(ms: number): number {
  return Math.min(ms * 2, RETRY_MAX_MS);
}

/** The wait for this step, given what failed. */
export function retryDelay(
  stepMs: number,
  err: unknown,
  random: () => number = Math.random,
): number {
  const jittered = stepMs / 2 + (random() * stepMs) / 2;
  const after = err instanceof ProblemError ? err.retryAfterS : undefined;
  if (after === undefined) return Math.round(jittered);
  return Math.round(Math.max(jittered, Math.min(after * 1000, RETRY_AFTER_MAX_MS)));
}
