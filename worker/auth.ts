/**
 * Bearer-token auth. Tokens are HS256 JWTs signed with ROVERLINK_SECRET (shared/token.ts).
 * 401 for a missing, malformed, badly signed or expired token (with `error="invalid_token"`,
 * RFC 6750, when a token was sent); 403 for a valid token used in another room or to act as
 * another peer. Tokens never reach a log.
 */
import { createMiddleware } from "hono/factory";
import type { TokenClaims } from "../shared/protocol.ts";
import { SIGNATURE_MISMATCH, TokenError } from "../shared/token.ts";
import { secretProblem } from "./config-check.ts";
import type { EdgeEnv } from "./env.ts";
import { EdgeProblem, problem } from "./problem.ts";
import { verifyCached } from "./verified-tokens.ts";

export type AuthVars = { claims: TokenClaims };

const INVALID_TOKEN = { "WWW-Authenticate": 'Bearer realm="roverlink", error="invalid_token"' };

/**
 * Claims of a token signed with ROVERLINK_SECRET or, while a rotation is under way, with
 * ROVERLINK_SECRET_PREVIOUS: rovers keep working until each has its new token.
 */
async function verifyEither(token: string, env: EdgeEnv, secret: string): Promise<TokenClaims> {
  try {
    return await verifyCached(token, secret);
  } catch (e) {
    const previous = env.ROVERLINK_SECRET_PREVIOUS;
    if (!previous || !(e instanceof TokenError) || e.message !== SIGNATURE_MISMATCH) throw e;
    return await verifyCached(token, previous);
  }
}

export const requireToken = createMiddleware<{ Bindings: EdgeEnv; Variables: AuthVars }>(
  async (c, next) => {
    // OPTIONS needs no token (contract): CORS preflights and WHIP-style capability queries.
    if (c.req.method === "OPTIONS") return next();
    const why = secretProblem(c.env, c.req.url);
    if (why) throw problem(503, "Not configured", why, { retryAfter: 60 });
    const secret = c.env.ROVERLINK_SECRET as string;
    const header = c.req.header("Authorization");
    const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m?.[1]) throw problem(401, "Unauthorized", "send Authorization: Bearer <token>");
    try {
      c.set("claims", await verifyEither(m[1], c.env, secret));
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
