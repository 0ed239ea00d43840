/**
 * A rover without a token mints its own with ROVERLINK_SECRET (the CLI contract allows it). The
 * token is the least it needs: role `peer`, this one room, this one peer id, one hour, renewed
 * at half-life. The secret itself could mint anything, so docs/rover.md steers fleets to
 * pre-minted tokens, and the CLI warns when such a rover talks to an edge beyond loopback.
 */
import { mintToken, TokenError } from "../shared/token.ts";
import { isLoopbackHost } from "./loopback.ts";

export const SELF_TOKEN_TTL_S = 3600;

export interface SelfTokenOptions {
  ttlS?: number;
  /** Clock in ms (tests). */
  now?: () => number;
}

export function selfMintedToken(
  secret: string,
  sub: string,
  room: string,
  opts: SelfTokenOptions = {},
): () => Promise<string> {
  if (room === "*") throw new TokenError('a rover mints tokens for its own room, never "*"');
  const ttlS = opts.ttlS ?? SELF_TOKEN_TTL_S;
  const now = opts.now ?? Date.now;
  let current: { token: string; renewAt: number } | null = null;
  return async () => {
    const t = now();
    if (!current || t >= current.renewAt) {
      const nowS = Math.floor(t / 1000);
      const token = await mintToken({ secret, sub, room, role: "peer", ttlSeconds: ttlS, nowS });
      current = { token, renewAt: t + (ttlS / 2) * 1000 };
    }
    return current.token;
  };
}

/**
 * The start-up warning for a rover that mints its own tokens against an edge beyond loopback
 * (a local edge on one machine is the development setup this is for), or null.
 */
export function masterSecretWarning(edgeUrl: string): string | null {
  if (isLoopbackHost(new URL(edgeUrl).hostname)) return null;
  return "ROVERLINK_SECRET is on this rover: anyone holding it can mint admin tokens for every room; give each rover its own peer token in ROVERLINK_TOKEN instead (docs/rover.md, fleet tokens)";
}
