/**
 * Bearer-token auth. Tokens are HS256 JWTs signed with ROVERLINK_SECRET (shared/token.ts).
 * 401 for a missing, malformed, badly signed or expired token (with `error="invalid_token"`,
 * RFC 6750, when a token was sent); 403 for a valid token used in another room or to act as
 * another peer. Tokens never reach a log.
 */
import { createMiddleware } from "hono/factory";
import type { TokenClaims } from "../shared/protocol.ts";
import { TokenError } from "../shared/token.ts";
import type { EdgeEnv } from "./env.ts";
import { EdgeProblem, problem } from "./problem.ts";
import { verifyCached } from "./verified-tokens.ts";

export type AuthVars = { claims: TokenClaims };

/** HS256 wants a key at least as long as its output (RFC 7518 §3.2). */
export const MIN_SECRET_BYTES = 32;

const INVALID_TOKEN = { "WWW-Authenticate": 'Bearer realm="roverlink", error="invalid_token"' };

export const requireToken = createMiddleware<{ Bindings: EdgeEnv; Variables: AuthVars }>(
  async (c, next) => {
    // OPTIONS needs no token (contract): CORS preflights and WHIP-style capability queries.
    if (c.req.method === "OPTIONS") return next();
    const secret = c.env.ROVERLINK_SECRET;
    if (!secret) {
      throw problem(503, "Not configured", "the edge has no ROVERLINK_SECRET configured", {
        retryAfter: 60,
      });
    }
    if (new TextEncoder().encode(secret).length < MIN_SECRET_BYTES) {
      throw problem(
        503,
        "Not configured",
        `ROVERLINK_SECRET is shorter than ${MIN_SECRET_BYTES} bytes: configure a random secret of at least ${MIN_SECRET_BYTES} bytes (e.g. openssl rand -base64 32)`,
        { retryAfter: 60 },
      );
    }
    const header = c.req.header("Authorization");
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m?.[1]) throw problem(401, "Unauthorized", "send Authorization: Bearer <token>");
    try {
      c.set("claims", await verifyCached(m[1], secret));
    } catch (e) {
      const detail = e instanceof TokenError ? e.message : "token rejected";
      throw new EdgeProblem({ status: 401, title: "Unauthorized", detail }, INVALID_TOKEN);
    }
    await next();
  },
);

/** The token must be for this room (or `*`). */
export function checkRoom(claims: TokenClaims, room: string): void {
  if (claims.room !== "*" && claims.room !== room) {
    throw problem(403, "Forbidden", `this token is for room "${claims.room}", not "${room}"`);
  }
}

/** A peer acts as itself only; admins act as anyone. */
export function checkSelf(claims: TokenClaims, id: string): void {
  if (claims.role !== "admin" && claims.sub !== id) {
    throw problem(403, "Forbidden", `this token acts as "${claims.sub}", not "${id}"`);
  }
}
