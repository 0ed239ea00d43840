/** The shared HTTP client as the console uses it, and readable error text for the UI. */
import type { RoverlinkClient } from "../../shared/client.ts";
import { EdgeUnreachableError, ProblemError } from "../../shared/errors.ts";

export type SignalingClient = RoverlinkClient;

/** HTTP status of a failed request (ProblemError), undefined when the edge did not answer. */
export function errorStatus(err: unknown): number | undefined {
  if (err instanceof ProblemError) return err.status;
  return undefined;
}

export function isUnreachable(err: unknown): boolean {
  return err instanceof EdgeUnreachableError;
}

export function errorText(err: unknown): string {
  if (err instanceof ProblemError) {
    const p = err.problem;
    return `${err.status} ${p.title}${p.detail ? `: ${p.detail}` : ""}`;
  }
  return err instanceof Error ? err.message : String(err);
}
