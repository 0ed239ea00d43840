/** Shared per-request helpers for the route modules. */
import type { Context } from "hono";
import { ID_PATTERN, type TokenClaims } from "../shared/protocol.ts";
import { TOKEN_LEEWAY_S } from "../shared/token.ts";
import type { AuthVars } from "./auth.ts";
import type { EdgeEnv } from "./env.ts";
import { type IfMatch, parseIfMatch } from "./if-match.ts";
import { EdgeProblem, problem, type RoomProblem } from "./problem.ts";
import type { Room } from "./room/room.ts";

export type AppEnv = { Bindings: EdgeEnv; Variables: AuthVars };
export type Ctx = Context<AppEnv>;

/** A path parameter that must be a room/peer/session id. */
export function idParam(c: Ctx, name: string): string {
  const v = c.req.param(name);
  if (v === undefined || !ID_PATTERN.test(v) || v === "." || v === "..") {
    throw problem(400, "Bad request", `${name} must match [A-Za-z0-9._-]{1,64}`);
  }
  return v;
}

/**
 * The room object as the Worker calls it. Its RPC results are structured clones of exactly
 * these types; the cast skips workers-types' deep RPC type mapping, which gives up on them.
 */
export type RoomRpc = {
  [K in keyof Room as Room[K] extends (...a: never[]) => Promise<unknown> ? K : never]: Room[K];
} & { fetch: DurableObjectStub["fetch"] };

export function roomStub(c: Ctx, room: string): RoomRpc {
  return c.env.ROOMS.get(c.env.ROOMS.idFromName(room)) as unknown as RoomRpc;
}

export function claims(c: Ctx): TokenClaims {
  return c.get("claims");
}

/** Unwrap a room RPC result, turning its problem into the HTTP error. */
export function unwrap<R extends object>(r: R): Exclude<R, { problem: unknown }> {
  if ("problem" in r) throw new EdgeProblem((r as { problem: RoomProblem }).problem);
  return r as Exclude<R, { problem: unknown }>;
}

/** The media type without parameters, lower-cased ("" when absent). */
export function mediaType(c: Ctx): string {
  return (c.req.header("Content-Type") ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

export function requireMediaType(c: Ctx, ...types: string[]): string {
  const t = mediaType(c);
  if (!types.includes(t)) {
    throw problem(415, "Unsupported media type", `Content-Type must be ${types.join(" or ")}`);
  }
  return t;
}

/** If-Match, parsed (worker/if-match.ts); null when absent. */
export function ifMatch(c: Ctx): IfMatch | null {
  return parseIfMatch(c.req.header("If-Match"));
}

export function requireIfMatch(c: Ctx): IfMatch {
  const v = ifMatch(c);
  if (v === null)
    throw problem(428, "Precondition required", "send If-Match with the session's ETag");
  return v;
}

/**
 * Absolute URL of a path on this edge (the contract wants absolute session URLs). With
 * PUBLIC_ORIGIN set, that origin, never the request's Host header; without it, the request's
 * origin: on Cloudflare a request only reaches this Worker through a hostname routed to it.
 */
export function absolute(c: Ctx, path: string): string {
  const origin = c.env.PUBLIC_ORIGIN?.trim();
  return new URL(path, origin ? origin : c.req.url).href;
}

/** Until when (s) the edge accepts this token: its `exp` plus the verifier's clock-skew leeway. */
export function authorizedUntilS(cl: TokenClaims): number {
  return cl.exp + TOKEN_LEEWAY_S;
}

/** The token's subject as the peer id it joins as: `.` and `..` are not usable ids. */
export function selfId(c: Ctx): string {
  const id = claims(c).sub;
  if (id === "." || id === "..") {
    throw problem(400, "Bad request", `peer id "${id}" is reserved: use another token subject`);
  }
  return id;
}

/** The body as UTF-8 text, whatever its media type (workerd warns on .text() for application/sdp). */
export async function bodyText(c: Ctx): Promise<string> {
  return new TextDecoder().decode(await c.req.arrayBuffer());
}
