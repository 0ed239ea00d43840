/**
 * The token a rover mints for itself when it has ROVERLINK_SECRET but no token: the least it
 * needs (role peer, its one room and id, one hour), renewed at half-life; and the warning such a
 * rover gives when its edge is beyond loopback.
 */
import { describe, expect, it } from "vitest";
import { masterSecretWarning, SELF_TOKEN_TTL_S, selfMintedToken } from "../../rover/self-token.ts";
import { decodeTokenUnverified, verifyToken } from "../../shared/token.ts";

const SECRET = "self-token-test-secret-self-token-test";

describe("self-minted rover token", () => {
  it("is a one-hour peer token for this room and id only", async () => {
    const token = await selfMintedToken(SECRET, "rover-7", "yard")();
    const claims = await verifyToken(token, SECRET);
    expect(claims).toMatchObject({ sub: "rover-7", room: "yard", role: "peer" });
    expect(claims.exp - (claims.iat as number)).toBe(SELF_TOKEN_TTL_S);
    expect(SELF_TOKEN_TTL_S).toBeLessThanOrEqual(3600);
    await expect(verifyToken(token, `${SECRET}-other`)).rejects.toThrow();
  });

  it("is renewed at half-life, before it expires", async () => {
    let now = Date.UTC(2026, 11, 5, 12, 0, 0);
    const token = selfMintedToken(SECRET, "rover-7", "yard", { now: () => now });
    const first = await token();
    now += (SELF_TOKEN_TTL_S / 2) * 1000 - 1000;
    expect(await token()).toBe(first);
    now += 1000;
    const second = await token();
    expect(second).not.toBe(first);
    const a = decodeTokenUnverified(first, now).claims;
    const b = decodeTokenUnverified(second, now).claims;
    expect(a.exp).toBe(Date.UTC(2026, 11, 5, 13, 0, 0) / 1000);
    expect((b.exp as number) - (a.exp as number)).toBe(SELF_TOKEN_TTL_S / 2);
    expect(b).toMatchObject({ sub: "rover-7", room: "yard", role: "peer" });
  });

  it("a bad room or id is refused at once (never a wildcard room)", async () => {
    expect(() => selfMintedToken(SECRET, "rover-7", "*")).toThrow(/never "\*"/);
    await expect(selfMintedToken(SECRET, "a b", "yard")()).rejects.toThrow(/peer id/);
  });
});

describe("master-secret warning", () => {
  it("is given for an edge beyond loopback, in one line, and not for loopback", () => {
    for (const edge of [
      "https://edge.example.net",
      "http://10.0.0.5:8787",
      "http://0.0.0.0:8787",
    ]) {
      const w = masterSecretWarning(edge);
      expect(w).toMatch(/ROVERLINK_SECRET is on this rover: anyone holding it can mint admin/);
      expect(w).toContain("ROVERLINK_TOKEN");
      expect(w).not.toContain("\n");
    }
    for (const edge of ["http://127.0.0.1:8787", "http://localhost:8787", "http://[::1]:8787"])
      expect(masterSecretWarning(edge)).toBeNull();
  });
});
