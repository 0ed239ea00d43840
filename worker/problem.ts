/**
 * RFC 9457 problem details: the one shape every error of the edge takes. Route code throws
 * EdgeProblem (or returns a RoomProblem from the room object); the app's error handler renders it.
 */
import { CONTENT_TYPE, PROBLEM_BASE, type Problem } from "../shared/protocol.ts";

/** A problem as data: crosses the Worker <-> Durable Object RPC boundary intact. */
export interface RoomProblem {
  status: number;
  title: string;
  detail: string;
  /** Seconds, for 409/429/503. */
  retryAfter?: number;
  /** Slug appended to PROBLEM_BASE for `type`. */
  slug?: string;
}

export class EdgeProblem extends Error {
  readonly problem: RoomProblem;
  readonly headers: Record<string, string>;
  constructor(problem: RoomProblem, headers: Record<string, string> = {}) {
    super(problem.detail);
    this.problem = problem;
    this.headers = headers;
  }
}

export function problem(
  status: number,
  title: string,
  detail: string,
  extra: Partial<RoomProblem> = {},
): EdgeProblem {
  return new EdgeProblem({ status, title, detail, ...extra });
}

const SLUGS: Record<number, string> = {
  400: "bad-request",
  401: "unauthorized",
  403: "forbidden",
  404: "not-found",
  405: "method-not-allowed",
  409: "conflict",
  412: "precondition-failed",
  413: "payload-too-large",
  415: "unsupported-media-type",
  428: "precondition-required",
  429: "too-many-requests",
  500: "internal-error",
  503: "unavailable",
  504: "gateway-timeout",
};

export function problemResponse(p: RoomProblem, headers: Record<string, string> = {}): Response {
  const body: Problem = {
    type: `${PROBLEM_BASE}${p.slug ?? SLUGS[p.status] ?? "error"}`,
    title: p.title,
    status: p.status,
    detail: p.detail,
  };
  const h = new Headers(headers);
  h.set("Content-Type", CONTENT_TYPE.problem);
  h.set("Cache-Control", "no-store");
  if (p.retryAfter !== undefined)
    h.set("Retry-After", String(Math.max(1, Math.ceil(p.retryAfter))));
  if (p.status === 401 && !h.has("WWW-Authenticate")) {
    h.set("WWW-Authenticate", 'Bearer realm="roverlink"');
  }
  return new Response(JSON.stringify(body), { status: p.status, headers: h });
}
