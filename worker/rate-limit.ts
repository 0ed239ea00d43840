/**
 * Rate limits (Workers Rate Limiting API), two layers:
 * - per room and token subject (RATE_LIMITER, 600/min): a token for the same subject in another
 *   room has a bucket of its own, so one room's traffic cannot starve another's;
 * - per client address (RATE_LIMITER_ADDR, CF-Connecting-IP, 3000/min): a looser second guard
 *   against one client spraying many rooms or subjects.
 * Presence (the events long-poll/SSE and join/resume) has buckets of its own in both layers, so
 * a peer's other traffic cannot make it miss its polls and expire. No request waits for its own
 * check unless its key has several unanswered (rate-verdicts.ts).
 */
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "./context.ts";
import { problem } from "./problem.ts";
import { RateVerdicts } from "./rate-verdicts.ts";

export type TrafficClass = "presence" | "other";

/** Presence: GET …/peers/{id}/events and POST …/peers (join or resume). */
export function trafficClass(method: string, path: string): TrafficClass {
  if (method === "GET" && /^\/v1\/rooms\/[^/]+\/peers\/[^/]+\/events\/?$/.test(path)) {
    return "presence";
  }
  if (method === "POST" && /^\/v1\/rooms\/[^/]+\/peers\/?$/.test(path)) return "presence";
  return "other";
}

/** The room a request is about: its path, else `?room=`, else the token's room (maybe `*`). */
export function roomOfRequest(path: string, query: string | undefined, tokenRoom: string): string {
  const m = /^\/v1\/rooms\/([^/]+)/.exec(path);
  // Ids are at most 64 characters; a longer segment is a 400 later, but must not make keys grow.
  return (m?.[1] ?? query ?? tokenRoom).slice(0, 80);
}

/** Bucket keys for one request; `address` is null when the client address is unknown. */
export function limitKeys(init: {
  cls: TrafficClass;
  room: string;
  sub: string;
  address: string | null;
}): { subject: string; address: string | null } {
  // "|" cannot occur in an id, so keys of different rooms and subjects never collide.
  return {
    subject: `${init.cls}|${init.room}|${init.sub}`,
    address: init.address === null ? null : `${init.cls}|${init.address}`,
  };
}

const tooMany = (detail: string) => problem(429, "Too many requests", detail, { retryAfter: 10 });

/**
 * This isolate's memory of the limiters' verdicts (rate-verdicts.ts): requests are counted on
 * arrival, asked about once answered, and refused from the one after a refusal on for the 429's
 * Retry-After, so that no request waits on a limiter round trip; four unanswered checks of one key
 * make the next one wait.
 */
const verdicts = new RateVerdicts({ refuseMs: 10_000, maxUnverified: 4 });

export const rateLimit = createMiddleware<AppEnv>(async (c, next) => {
  if (c.req.method === "OPTIONS") return next();
  const claims = c.get("claims");
  const cls = trafficClass(c.req.method, c.req.path);
  const keys = limitKeys({
    cls,
    room: roomOfRequest(c.req.path, c.req.query("room"), claims.room),
    sub: claims.sub,
    // Set by Cloudflare's front (and wrangler dev); absent only when called without one.
    address: c.req.header("CF-Connecting-IP") ?? null,
  });
  const what = cls === "presence" ? "presence requests" : "requests";
  const subjectRefused = () => tooMany(`rate limit for ${what} of this peer in this room exceeded`);
  const addressRefused = () => tooMany(`rate limit for ${what} from this client address exceeded`);
  if (verdicts.refusedUntil(keys.subject) !== null) throw subjectRefused();
  if (keys.address && verdicts.refusedUntil(keys.address) !== null) throw addressRefused();
  // Each request counts in both buckets.
  const subject = verdicts.begin(keys.subject);
  const address = keys.address ? verdicts.begin(keys.address) : null;
  const ask = () =>
    Promise.all([
      subject.settle(() => c.env.RATE_LIMITER.limit({ key: keys.subject }).then((r) => r.success)),
      address?.settle(() =>
        c.env.RATE_LIMITER_ADDR.limit({ key: keys.address as string }).then((r) => r.success),
      ) ?? true,
    ]);
  if (subject.mustWait || address?.mustWait) {
    const [subjectOk, addressOk] = await ask();
    if (!subjectOk) throw subjectRefused();
    if (!addressOk) throw addressRefused();
    return next();
  }
  try {
    await next();
  } finally {
    // Asked once the response is made: the limiter's round trip (locally a Durable Object call
    // in the same thread) neither delays this request nor competes with it. A refusal applies
    // from this key's next request.
    waitUntil(c, ask());
  }
});

/** Keep `p` running past the response (no execution context: it runs on by itself). */
function waitUntil(c: Context<AppEnv>, p: Promise<unknown>): void {
  try {
    c.executionCtx.waitUntil(p);
  } catch {
    // Hono throws when the app was called without a context (a direct app.fetch).
  }
}
