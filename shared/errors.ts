/**
 * Errors the roverlink client throws. Every message is one line, names what failed, and never
 * contains the bearer token.
 */
import type { Problem } from "./protocol.ts";

/** The edge answered with a non-2xx status (RFC 9457 problem, parsed or synthesized). */
export class ProblemError extends Error {
  readonly status: number;
  readonly problem: Problem;
  /** From Retry-After, in whole seconds. */
  readonly retryAfterS: number | undefined;
  readonly method: string;
  readonly url: string;
  constructor(init: {
    problem: Problem;
    retryAfterS?: number | undefined;
    method: string;
    url: string;
  }) {
    const { problem, retryAfterS } = init;
    const detail = oneLine(problem.detail ?? "");
    const retry = retryAfterS !== undefined ? ` (retry after ${retryAfterS} s)` : "";
    super(`${problem.status} ${oneLine(problem.title)}${detail ? `: ${detail}` : ""}${retry}`);
    this.name = "ProblemError";
    this.status = problem.status;
    this.problem = problem;
    this.retryAfterS = retryAfterS;
    this.method = init.method;
    this.url = init.url;
  }
}

/** The request did not get an HTTP answer: connection refused/reset, DNS, TLS, or timeout. */
export class EdgeUnreachableError extends Error {
  readonly method: string;
  readonly url: string;
  readonly timedOut: boolean;
  constructor(init: {
    method: string;
    url: string;
    reason: string;
    timedOut?: boolean;
    cause?: unknown;
  }) {
    super(`edge unreachable: ${init.method} ${init.url}: ${oneLine(init.reason)}`, {
      cause: init.cause,
    });
    this.name = "EdgeUnreachableError";
    this.method = init.method;
    this.url = init.url;
    this.timedOut = init.timedOut ?? false;
  }
}

/** The edge answered 2xx but not as protocol v1 says (missing ETag, bad JSON, wrong type...). */
export class EdgeProtocolError extends Error {
  readonly method: string;
  readonly url: string;
  readonly status: number;
  constructor(init: { method: string; url: string; status: number; reason: string }) {
    super(
      `unexpected answer from the edge: ${init.method} ${init.url} -> ${init.status}: ${oneLine(init.reason)}`,
    );
    this.name = "EdgeProtocolError";
    this.method = init.method;
    this.url = init.url;
    this.status = init.status;
  }
}

/**
 * The edge ended an event stream with `event: error` and its reason (the peer left or expired,
 * its token ran out, a newer stream of the same peer replaced this one). The edge answered: this
 * is not an outage, and the next poll says what to do (a 404: join again; a 401: a new token).
 */
export class EventStreamEndedError extends Error {
  readonly detail: string;
  constructor(detail: string) {
    super(`the edge ended the event stream: ${oneLine(detail)}`);
    this.name = "EventStreamEndedError";
    this.detail = detail;
  }
}

/** A caller passed something the protocol cannot carry (bad room/peer id, bad sdpfrag...). */
export class ClientInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ClientInputError";
  }
}

export function oneLine(s: string, max = 300): string {
  const t = String(s).replace(/\s+/g, " ").trim();
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

/** The message of anything thrown (an Error's message, else its text), for logs. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
