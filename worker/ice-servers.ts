/**
 * ICE servers handed to peers. Only what the operator configured, never a default: coturn TURN
 * REST credentials (TURN_SECRET + TURN_URLS), else Cloudflare Realtime TURN (CF_TURN_KEY_ID +
 * CF_TURN_API_TOKEN), plus STUN_URLS. With nothing configured the list is empty.
 */
import type { IceServersResponse } from "../shared/protocol.ts";
import { type EdgeEnv, listVar, numVar } from "./env.ts";

const DEFAULT_TTL_S = 3600;

/** coturn "TURN REST API" (use-auth-secret): username `<expiry>:<sub>`, HMAC-SHA1 credential. */
export async function turnRestCredential(
  secret: string,
  sub: string,
  ttlS: number,
  nowMs = Date.now(),
): Promise<{ username: string; credential: string }> {
  const username = `${Math.floor(nowMs / 1000) + ttlS}:${sub}`;
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-1" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(username));
  return { username, credential: btoa(String.fromCharCode(...new Uint8Array(mac))) };
}

export class IceServersUnavailable extends Error {}

let lastTag: { of: string; tag: string } | null = null;

/**
 * A digest of everything handed-out ICE servers depend on: a cached credential minted under other
 * settings (a rotated TURN_SECRET, new TURN_URLS) is not reused. Hashed, so that no secret is
 * stored beside the credentials; computed once per isolate and configuration.
 */
export async function iceConfigTag(env: EdgeEnv): Promise<string> {
  const of = JSON.stringify([
    env.STUN_URLS ?? "",
    env.TURN_URLS ?? "",
    env.TURN_SECRET ?? "",
    env.TURN_TTL_S ?? "",
    env.CF_TURN_KEY_ID ?? "",
    env.CF_TURN_API_TOKEN ?? "",
  ]);
  if (lastTag?.of === of) return lastTag.tag;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(of));
  const tag = btoa(String.fromCharCode(...new Uint8Array(digest).slice(0, 12)));
  lastTag = { of, tag };
  return tag;
}

/** The configured credential lifetime, seconds. */
export function turnTtlS(env: EdgeEnv): number {
  return numVar(env.TURN_TTL_S, DEFAULT_TTL_S);
}

export async function iceServersFor(
  env: EdgeEnv,
  sub: string,
  ttl = turnTtlS(env),
): Promise<IceServersResponse> {
  const stun = listVar(env.STUN_URLS);
  const out: IceServersResponse = { iceServers: [], ttl };
  if (stun.length > 0) out.iceServers.push({ urls: stun });
  const turnUrls = listVar(env.TURN_URLS);
  if (env.TURN_SECRET && turnUrls.length > 0) {
    out.iceServers.push({
      urls: turnUrls,
      ...(await turnRestCredential(env.TURN_SECRET, sub, ttl)),
    });
  } else if (env.CF_TURN_KEY_ID && env.CF_TURN_API_TOKEN) {
    out.iceServers.push(...(await cloudflareTurn(env.CF_TURN_KEY_ID, env.CF_TURN_API_TOKEN, ttl)));
  }
  return out;
}

/** Cloudflare Realtime TURN: short-lived credentials from its API. */
async function cloudflareTurn(
  keyId: string,
  token: string,
  ttl: number,
): Promise<IceServersResponse["iceServers"]> {
  const url = `https://rtc.live.cloudflare.com/v1/turn/keys/${encodeURIComponent(keyId)}/credentials/generate-ice-servers`;
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ ttl }),
      signal: AbortSignal.timeout(5_000),
    });
  } catch {
    throw new IceServersUnavailable("Cloudflare TURN did not answer");
  }
  if (!res.ok) throw new IceServersUnavailable(`Cloudflare TURN answered ${res.status}`);
  const body = (await res.json()) as { iceServers?: unknown };
  const list = Array.isArray(body.iceServers)
    ? body.iceServers
    : body.iceServers
      ? [body.iceServers]
      : [];
  return list.filter(
    (s): s is { urls: string | string[]; username?: string; credential?: string } =>
      typeof s === "object" && s !== null && "urls" in s,
  );
}
