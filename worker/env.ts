/**
 * The Worker's bindings: what wrangler.toml declares (generated in worker-configuration.d.ts)
 * plus the secrets and optional vars an operator may set. Every var arrives as a string.
 */
export interface EdgeEnv extends Cloudflare.Env {
  /** HS256 secret for peer tokens (wrangler secret; `.dev.vars` locally). */
  ROVERLINK_SECRET?: string;
  /** The secret before a rotation: tokens signed with it are still taken (docs/operating.md). */
  ROVERLINK_SECRET_PREVIOUS?: string;
  /** coturn TURN REST shared secret (`static-auth-secret`) and the TURN URLs, comma-separated. */
  TURN_SECRET?: string;
  TURN_URLS?: string;
  /** Lifetime of minted TURN credentials, seconds (default 3600). */
  TURN_TTL_S?: string;
  /** Cloudflare Realtime TURN key: id (var) and API token (secret). */
  CF_TURN_KEY_ID?: string;
  CF_TURN_API_TOKEN?: string;
  /** STUN URLs handed out (comma-separated); nothing is handed out unless configured. */
  STUN_URLS?: string;
  /** Nearby radius in map units; unset or empty = proximity off. */
  NEARBY_RADIUS?: string;
  /** This edge's public origin (https://edge.example.net) for absolute URLs (Location). */
  PUBLIC_ORIGIN?: string;
  /** Allowed CORS origins, comma-separated; unset or `*` = any origin. */
  CORS_ORIGINS?: string;
  /** Events kept per peer before the oldest are dropped (default 1000). */
  MAX_EVENTS_PER_PEER?: string;
  /** Undelivered events one sender may hold in another peer's log (default a 1/8 of the log). */
  MAX_EVENTS_PER_SENDER?: string;
  /** Sessions one peer may have open to another; a new offer closes the oldest (default 1). */
  MAX_SESSIONS_PER_PAIR?: string;
  /** Concurrent SSE streams per peer; a new one closes the oldest (default 2). */
  MAX_STREAMS_PER_PEER?: string;
  /** An offer nobody answers is closed after this long, seconds (default 120). */
  SESSION_OFFER_TTL_S?: string;
  /**
   * Events written to a still-open SSE stream are acknowledged (leave the peer's log) this long
   * after they were written, seconds (default 60: longer than a client takes to notice a dead
   * stream, 2 keep-alives + 5 s, and come back with Last-Event-ID).
   */
  SSE_ACK_DELAY_S?: string;
}

/** A positive number from a string var, or the default. */
export function numVar(value: string | undefined, fallback: number): number {
  if (value === undefined || value.trim() === "") return fallback;
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

/** A comma-separated list var; blanks dropped. */
export function listVar(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
