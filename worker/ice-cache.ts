/**
 * ICE servers for a peer: TURN credentials live no longer than the peer's token and are cached
 * per joined peer in the room object, so Cloudflare's TURN API is not called on every join,
 * offer and restart (worker/ice-servers.ts mints them). A peer that has not joined yet (a WHIP
 * client asking before it offers) gets fresh ones, not kept; the rate limits bound how often.
 */
import type { IceServer, IceServersResponse } from "../shared/protocol.ts";
import { type Ctx, type RoomRpc, unwrap } from "./context.ts";
import { iceConfigTag, iceServersFor, turnTtlS } from "./ice-servers.ts";

export interface CachedIce {
  iceServers: IceServer[];
  /** ms since the epoch */
  expiresAt: number;
  /** `iceConfigTag` of the settings it was minted under ("" for entries from before the tag). */
  config: string;
}

/**
 * A cached credential is reused while it expires no later than the token and has at least half
 * of its useful lifetime left (a client refreshing at half-life then gets a fresh one).
 */
export function reusable(
  cached: CachedIce,
  nowMs: number,
  tokenExpMs: number,
  ttlS: number,
  config: string,
) {
  const useful = Math.min(ttlS * 1000, tokenExpMs - nowMs);
  return (
    cached.config === config &&
    cached.expiresAt <= tokenExpMs &&
    cached.expiresAt - nowMs >= useful / 2
  );
}

/** ICE servers for `sub` in the room behind `stub`, cached if it is a member. */
export async function iceServersForPeer(
  c: Ctx,
  stub: RoomRpc,
  sub: string,
  tokenExpS: number,
): Promise<IceServersResponse> {
  const { cached, member } = unwrap(await stub.cachedIce(sub));
  return iceServersFromCache(c, member ? stub : null, sub, tokenExpS, cached);
}

/**
 * ICE servers from what the room had cached for `sub` (an offer's or restart's own room call
 * returns it): no room call when it is reusable or nothing needs caching; otherwise fresh
 * credentials, stored for next time (`stub` null: `sub` is not a member, nothing is stored).
 */
export async function iceServersFromCache(
  c: Ctx,
  stub: RoomRpc | null,
  sub: string,
  tokenExpS: number,
  cached: CachedIce | null,
): Promise<IceServersResponse> {
  const now = Date.now();
  const tokenExpMs = tokenExpS * 1000;
  const ttlS = turnTtlS(c.env);
  const config = await iceConfigTag(c.env);
  if (cached && reusable(cached, now, tokenExpMs, ttlS, config)) {
    return { iceServers: cached.iceServers, ttl: Math.floor((cached.expiresAt - now) / 1000) };
  }
  const ttl = Math.max(1, Math.min(ttlS, Math.floor((tokenExpMs - now) / 1000)));
  const fresh = await iceServersFor(c.env, sub, ttl);
  if (stub && fresh.iceServers.some((s) => s.credential !== undefined)) {
    await stub.storeIce(sub, { iceServers: fresh.iceServers, expiresAt: now + ttl * 1000, config });
  }
  return fresh;
}
