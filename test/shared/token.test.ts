import { sign } from "hono/jwt";
import { describe, expect, it } from "vitest";
import {
  decodeTokenUnverified,
  MAX_TOKEN_LIFETIME_S,
  MAX_TTL_S,
  mintToken,
  parseTtl,
  TokenError,
  verifyToken,
} from "../../shared/token.ts";

const secret = "test-secret-test-secret-test-secret";

describe("mintToken / verifyToken", () => {
  it("mints an HS256 JWT with sub, room, role, iat, exp", async () => {
    const t = await mintToken({
      secret,
      sub: "rover1",
      room: "lab",
      ttlSeconds: 3600,
      nowS: 1_000,
    });
    const d = decodeTokenUnverified(t, 0);
    expect(d.header).toEqual({ alg: "HS256", typ: "JWT" });
    expect(d.claims).toEqual({ sub: "rover1", room: "lab", role: "peer", iat: 1_000, exp: 4_600 });
    expect(d.expiresAt?.getTime()).toBe(4_600_000);
    expect(d.expired).toBe(false);
    expect(decodeTokenUnverified(t, 4_600_000).expired).toBe(true);
  });

  it("round-trips through verifyToken with the same secret, admin role and room *", async () => {
    const t = await mintToken({ secret, sub: "ops", room: "*", ttlSeconds: 60, role: "admin" });
    const c = await verifyToken(t, secret);
    expect(c.sub).toBe("ops");
    expect(c.room).toBe("*");
    expect(c.role).toBe("admin");
    expect(c.exp - (c.iat ?? 0)).toBe(60);
  });

  it("verifyToken rejects a wrong secret, expiry, tampering and junk with short reasons", async () => {
    const t = await mintToken({ secret, sub: "a", room: "lab", ttlSeconds: 60 });
    await expect(verifyToken(t, "other-secret")).rejects.toThrow(
      /^token signature does not match$/,
    );
    const old = await mintToken({ secret, sub: "a", room: "lab", ttlSeconds: 60, nowS: 1_000 });
    await expect(verifyToken(old, secret)).rejects.toThrow(/^token expired$/);
    const [h, , s] = t.split(".");
    const forged = `${h}.${btoa(JSON.stringify({ sub: "b", room: "lab", exp: 9e9 })).replace(/=+$/, "")}.${s}`;
    await expect(verifyToken(forged, secret)).rejects.toThrow(TokenError);
    await expect(verifyToken("not-a-jwt", secret)).rejects.toThrow(/^token is malformed$/);
    // Signed correctly but the claims break the protocol schema (bad sub).
    const bad = await sign({ sub: "no spaces!", room: "lab", exp: 9e9 }, secret, "HS256");
    await expect(verifyToken(bad, secret)).rejects.toThrow(/^token claims invalid: sub/);
  });

  it("verifyToken: 30 s of clock skew on exp/iat/nbf, a lifetime of at most 400 days", async () => {
    const now = Math.floor(Date.now() / 1000);
    const at = (nowS: number, ttlSeconds = 60) =>
      mintToken({ secret, sub: "a", room: "lab", ttlSeconds, nowS });
    // Expired 10 s ago or issued by a clock 20 s fast: within the leeway.
    expect((await verifyToken(await at(now - 70), secret)).sub).toBe("a");
    expect((await verifyToken(await at(now + 20), secret)).sub).toBe("a");
    // Beyond it: refused.
    await expect(verifyToken(await at(now - 91), secret)).rejects.toThrow(/^token expired$/);
    await expect(verifyToken(await at(now + 45), secret)).rejects.toThrow(/not valid yet/);
    const nbf = await sign({ sub: "a", room: "lab", exp: now + 600, nbf: now + 120 }, secret);
    await expect(verifyToken(nbf, secret)).rejects.toThrow(/not valid yet/);
    // An absurd exp is not a credential.
    const forever = await sign({ sub: "a", room: "lab", exp: 2 ** 53 - 1 }, secret, "HS256");
    await expect(verifyToken(forever, secret)).rejects.toThrow(/longer than 400 days/);
    expect((await verifyToken(await at(now, MAX_TOKEN_LIFETIME_S), secret)).sub).toBe("a");
    await expect(at(now, MAX_TOKEN_LIFETIME_S + 1)).rejects.toThrow(/longer than 400 days/);
  });

  it("verifyToken takes NumericDate times with a fraction (RFC 7519 §2), as other libraries mint", async () => {
    const secret = "s".repeat(32);
    const now = Math.floor(Date.now() / 1000);
    const t = await sign({ sub: "a", room: "lab", exp: now + 600.5, iat: now - 0.25 }, secret);
    expect((await verifyToken(t, secret)).exp).toBe(now + 600.5);
  });

  it("refuses bad inputs with TokenError", async () => {
    await expect(mintToken({ secret, sub: "..", room: "lab", ttlSeconds: 60 })).rejects.toThrow(
      /reserved/,
    );
    const base = { secret, sub: "a", room: "lab", ttlSeconds: 60 };
    await expect(mintToken({ ...base, secret: "" })).rejects.toThrow(/secret is empty/);
    await expect(mintToken({ ...base, sub: "a b" })).rejects.toThrow(/peer id "a b" must match/);
    await expect(mintToken({ ...base, room: "x/y" })).rejects.toThrow(/room "x\/y" must be/);
    await expect(mintToken({ ...base, ttlSeconds: 0 })).rejects.toThrow(/positive whole number/);
    await expect(mintToken({ ...base, ttlSeconds: 1.5 })).rejects.toThrow(TokenError);
    // biome-ignore lint/suspicious/noExplicitAny: deliberately wrong role from untyped callers
    await expect(mintToken({ ...base, role: "root" as any })).rejects.toThrow(/role "root"/);
  });

  it("decodeTokenUnverified refuses junk without echoing it", () => {
    expect(() => decodeTokenUnverified("abc.def")).toThrow(/^not a JWT/);
  });
});

describe("parseTtl", () => {
  it.each([
    ["3600", 3600],
    ["45s", 45],
    ["30m", 1800],
    ["1h", 3600],
    ["2d", 172800],
    ["1h30m", 5400],
    [" 10m ", 600],
  ])("%s -> %i s", (text, seconds) => {
    expect(parseTtl(text)).toBe(seconds);
  });

  it.each(["", "0", "0s", "h", "1x", "1.5h", "-5", "1 h", "abc", "1h 30m", "99999999999999999999"])(
    "rejects %j",
    (text) => {
      expect(() => parseTtl(text)).toThrow(TokenError);
      expect(() => parseTtl(text)).toThrow(/invalid TTL .*e\.g\. 3600, 45s, 30m, 1h, 2d/);
    },
  );

  it("caps at MAX_TTL_S", () => {
    expect(parseTtl(`${MAX_TTL_S}`)).toBe(MAX_TTL_S);
    expect(() => parseTtl("400d")).toThrow(/longer than 366 days/);
  });
});
