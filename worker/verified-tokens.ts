/**
 * Tokens this isolate has verified, so that a peer's every request does not pay for an HMAC and
 * a schema parse again. Only successes are kept, until `exp` plus the leeway: the other checks
 * (signature, claims, not-before, lifetime) cannot turn from pass to fail as time goes on.
 */
import type { TokenClaims } from "../shared/protocol.ts";
import { TOKEN_LEEWAY_S, verifyToken } from "../shared/token.ts";

const MAX = 2048;
const cache = new Map<string, { claims: TokenClaims; untilS: number }>();

export async function verifyCached(token: string, secret: string): Promise<TokenClaims> {
  // The secret is part of the key: a rotated secret never meets an old entry.
  const key = `${secret.length}:${secret}\n${token}`;
  const nowS = Math.floor(Date.now() / 1000);
  const hit = cache.get(key);
  if (hit && nowS < hit.untilS) return hit.claims;
  if (hit) cache.delete(key);
  const claims = await verifyToken(token, secret, { nowS });
  if (cache.size >= MAX) {
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  cache.set(key, { claims, untilS: claims.exp + TOKEN_LEEWAY_S });
  return claims;
}
