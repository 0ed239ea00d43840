/**
 * Bearer-token auth. Tokens are HS256 JWTs signed with ROVERLINK_SECRET (shared/token.ts).
 * 401 for a missing, malformed, badly signed or expired token; 403 for a valid token used in
 * another room or to act as another peer. Tokens never reach a log.
 */
import { createMiddleware } from "hono/factory";
import type { TokenClaims } from "../shared/protocol.ts";
import { TokenError, verifyToken } from "../shared/token.ts";
import type { EdgeEnv } from "./env.ts";
import { problem } from "./problem.ts";

export type AuthVars = { claims: TokenClaims };

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
    const header = c.req.header("Authorization");
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m?.[1]) throw problem(401, "Unauthorized", "send Authorization: Bearer <token>");
    try {
      c.set("claims", await verifyToken(m[1], secret));
    } catch (e) {
      throw problem(401, "Unauthorized", e instanceof TokenError ? e.message : "token rejected");
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
