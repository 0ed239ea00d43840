/**
 * roverlink bearer tokens: HS256 JWTs signed with ROVERLINK_SECRET (protocol v1, "Auth").
 * WebCrypto via hono/jwt, so this runs in workerd, Node and the browser.
 */
import { decode, sign, verify } from "hono/jwt";
import { fingerprintToX5t } from "./fingerprint.ts";
import { ID_PATTERN, type Role, type TokenClaims } from "./protocol.ts";
import { roleSchema, tokenClaimsSchema } from "./schemas.ts";

export class TokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TokenError";
  }
}

export interface MintTokenOptions {
  secret: string;
  /** Peer id the token acts as. */
  sub: string;
  /** Room id, or "*" for every room. */
  room: string;
  ttlSeconds: number;
  role?: Role;
  /** Issue time in seconds since the epoch (default: now). */
  nowS?: number;
  /** Bind the token to this DTLS certificate fingerprint (RFC 7800 `cnf`, `x5t#S256`). */
  cnf?: string;
}

/** Mint an HS256 JWT with claims {sub, room, role, iat, exp}. Throws TokenError on bad input. */
export async function mintToken(opts: MintTokenOptions): Promise<string> {
  if (typeof opts.secret !== "string" || opts.secret.length === 0) {
    throw new TokenError("token secret is empty (set ROVERLINK_SECRET or pass --secret)");
  }
  if (!ID_PATTERN.test(opts.sub)) {
    throw new TokenError(`peer id "${opts.sub}" must match [A-Za-z0-9._-]{1,64}`);
  }
  if (opts.room !== "*" && !ID_PATTERN.test(opts.room)) {
    throw new TokenError(`room "${opts.room}" must be "*" or match [A-Za-z0-9._-]{1,64}`);
  }
  if (!Number.isSafeInteger(opts.ttlSeconds) || opts.ttlSeconds <= 0) {
    throw new TokenError(
      `token TTL must be a positive whole number of seconds, got ${opts.ttlSeconds}`,
    );
  }
  if (opts.ttlSeconds > MAX_TOKEN_LIFETIME_S) {
    throw new TokenError(`token TTL is longer than ${MAX_TOKEN_LIFETIME_S / 86400} days`);
  }
  if (opts.sub === "." || opts.sub === "..") {
    throw new TokenError(`peer id "${opts.sub}" is reserved`);
  }
  const role = opts.role ?? "peer";
  if (!roleSchema.safeParse(role).success) {
    throw new TokenError(`role "${role}" must be "peer" or "admin"`);
  }
  const iat = opts.nowS ?? Math.floor(Date.now() / 1000);
  let cnf: { cnf: { "x5t#S256": string } } | Record<string, never> = {};
  if (opts.cnf !== undefined) {
    try {
      cnf = { cnf: { "x5t#S256": fingerprintToX5t(opts.cnf) } };
    } catch (e) {
      throw new TokenError(`cnf: ${(e as Error).message}`);
    }
  }
  return sign(
    { sub: opts.sub, room: opts.room, role, iat, exp: iat + opts.ttlSeconds, ...cnf },
    opts.secret,
    "HS256",
  );
}

/** Clock skew tolerated on `exp`, `nbf` and `iat` when verifying, seconds. */
export const TOKEN_LEEWAY_S = 30;
/** Longest token lifetime a verifier accepts (`exp` from now, or from `iat`), seconds. */
export const MAX_TOKEN_LIFETIME_S = 400 * 86400;

/**
 * The secret `roverlink edge` and `npm start` use when none is configured. It is published (the
 * docs print it), so an edge serves it on loopback only, and a deployed Worker refuses it.
 */
export const DEV_SECRET = "roverlink-development-secret-not-for-production";

/** HS256 wants a key at least as long as its output (RFC 7518 §3.2): edges refuse shorter. */
export const MIN_SECRET_BYTES = 32;

/** TokenError's reason for a token signed with another secret. */
export const SIGNATURE_MISMATCH = "token signature does not match";

export interface VerifyOptions {
  /** Now, seconds since the epoch (default: the clock). */
  nowS?: number;
  leewayS?: number;
  maxLifetimeS?: number;
}

/**
 * Verify signature and algorithm, check the claims against the protocol schema, then the times:
 * expired (`exp`), not yet valid (`nbf`, `iat` in the future), each with TOKEN_LEEWAY_S of clock
 * skew, and a lifetime over MAX_TOKEN_LIFETIME_S (an `exp` of 2^53-1 is not a credential anyone
 * should hold). Throws TokenError with a short reason (never the token or the secret).
 */
export async function verifyToken(
  token: string,
  secret: string,
  opts: VerifyOptions = {},
): Promise<TokenClaims> {
  let payload: Record<string, unknown>;
  try {
    // Times are checked below, with leeway.
    payload = await verify(token, secret, { alg: "HS256", exp: false, nbf: false, iat: false });
  } catch (e) {
    const name = e instanceof Error ? e.name : "";
    const reason =
      name === "JwtTokenSignatureMismatched"
        ? "token signature does not match"
        : name === "JwtAlgorithmMismatch"
          ? "token is not HS256"
          : "token is malformed";
    throw new TokenError(reason);
  }
  const parsed = tokenClaimsSchema.safeParse(payload);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TokenError(
      `token claims invalid: ${issue?.path.join(".") || "claims"} ${issue?.message ?? ""}`.trim(),
    );
  }
  const now = opts.nowS ?? Math.floor(Date.now() / 1000);
  const leeway = opts.leewayS ?? TOKEN_LEEWAY_S;
  const maxLife = opts.maxLifetimeS ?? MAX_TOKEN_LIFETIME_S;
  const { exp, iat } = parsed.data;
  if (exp + leeway <= now) throw new TokenError("token expired");
  const nbf = payload.nbf;
  if (nbf !== undefined && (typeof nbf !== "number" || !Number.isFinite(nbf))) {
    throw new TokenError("token is malformed");
  }
  if ((nbf ?? now) - leeway > now || (iat ?? now) - leeway > now) {
    throw new TokenError("token is not valid yet");
  }
  if (exp - Math.min(now, iat ?? now) > maxLife) {
    throw new TokenError(`token lifetime is longer than ${maxLife / 86400} days`);
  }
  return parsed.data;
}

const TTL_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
/** Longest TTL we accept: tokens are bearer credentials; a year is plenty for a fixed rover. */
export const MAX_TTL_S = 366 * 86400;

/**
 * "3600" | "45s" | "30m" | "1h" | "2d" | "1h30m" -> seconds. Throws TokenError on anything else,
 * on zero and on more than MAX_TTL_S.
 */
export function parseTtl(text: string): number {
  const s = String(text).trim();
  const junk = () =>
    new TokenError(
      `invalid TTL "${s.slice(0, 40)}": use seconds or <n>s/m/h/d, e.g. 3600, 45s, 30m, 1h, 2d`,
    );
  let total: number;
  if (/^[0-9]+$/.test(s)) {
    total = Number(s);
  } else if (/^([0-9]+[smhd])+$/.test(s)) {
    total = 0;
    for (const m of s.matchAll(/([0-9]+)([smhd])/g)) {
      total += Number(m[1]) * (TTL_UNITS[m[2] as string] as number);
    }
  } else {
    throw junk();
  }
  if (!Number.isSafeInteger(total) || total <= 0) throw junk();
  if (total > MAX_TTL_S)
    throw new TokenError(`TTL "${s}" is longer than ${MAX_TTL_S / 86400} days`);
  return total;
}

export interface DecodedToken {
  header: { alg: string; typ?: string };
  /** The payload as-is (not validated beyond being a JSON object). */
  claims: Partial<TokenClaims> & Record<string, unknown>;
  /** From `exp`, when present. */
  expiresAt?: Date;
  expired: boolean;
}

/** Decode without verifying (for display: "token for lab/rover1, expires in 52 min"). */
export function decodeTokenUnverified(token: string, nowMs = Date.now()): DecodedToken {
  let decoded: ReturnType<typeof decode>;
  try {
    decoded = decode(token.trim());
  } catch {
    throw new TokenError("not a JWT (expected three base64url parts separated by dots)");
  }
  const claims = decoded.payload as DecodedToken["claims"];
  const out: DecodedToken = {
    header: { alg: String(decoded.header.alg) },
    claims,
    expired: false,
  };
  if (decoded.header.typ !== undefined) out.header.typ = decoded.header.typ;
  if (typeof claims.exp === "number") {
    out.expiresAt = new Date(claims.exp * 1000);
    out.expired = claims.exp * 1000 <= nowMs;
  }
  return out;
}
