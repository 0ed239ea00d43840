/**
 * Reads (does not verify: only the edge can) the claims of a roverlink token so that the sign-in
 * form can prefill the peer id and room. Bad input gives a readable error.
 */
export interface TokenInfo {
  sub: string;
  room: string;
  exp: number;
  role: string;
}

export function readTokenClaims(token: string): TokenInfo {
  const parts = token.trim().split(".");
  if (parts.length !== 3 || !parts[1])
    throw new Error("not a JWT (expected three dot-separated parts)");
  let claims: unknown;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    claims = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new Error("the token's payload is not base64url JSON");
  }
  if (typeof claims !== "object" || claims === null) throw new Error("the token has no claims");
  const c = claims as Record<string, unknown>;
  if (typeof c.sub !== "string") throw new Error("the token has no `sub` (peer id) claim");
  if (typeof c.room !== "string") throw new Error("the token has no `room` claim");
  if (typeof c.exp !== "number") throw new Error("the token has no `exp` claim");
  return {
    sub: c.sub,
    room: c.room,
    exp: c.exp,
    role: typeof c.role === "string" ? c.role : "peer",
  };
}

/** True when the token expires within `skewS` seconds from `nowMs`. */
export function isExpired(info: TokenInfo, nowMs: number, skewS = 0): boolean {
  return info.exp * 1000 <= nowMs + skewS * 1000;
}
