import { describe, expect, it } from "vitest";
import { fingerprintToX5t } from "../../shared/fingerprint.ts";
import { mintToken, TokenError, verifyToken } from "../../shared/token.ts";

const SECRET = "token-cnf-secret-token-cnf-secret";
const FP = `${"A1:".repeat(31)}A1`;

describe("mintToken cnf (RFC 7800)", () => {
  it("binds the token to the fingerprint as x5t#S256, kept by verifyToken", async () => {
    const tok = await mintToken({ secret: SECRET, sub: "r", room: "y", ttlSeconds: 60, cnf: FP });
    const claims = await verifyToken(tok, SECRET);
    expect(claims.cnf).toEqual({ "x5t#S256": fingerprintToX5t(FP) });
    const lower = await mintToken({
      secret: SECRET,
      sub: "r",
      room: "y",
      ttlSeconds: 60,
      cnf: `sha-256 ${FP.toLowerCase()}`,
    });
    expect((await verifyToken(lower, SECRET)).cnf).toEqual(claims.cnf);
  });

  it("leaves tokens without cnf as they were", async () => {
    const tok = await mintToken({ secret: SECRET, sub: "r", room: "y", ttlSeconds: 60 });
    expect("cnf" in (await verifyToken(tok, SECRET))).toBe(false);
  });

  it("refuses a malformed fingerprint with a TokenError", async () => {
    await expect(
      mintToken({ secret: SECRET, sub: "r", room: "y", ttlSeconds: 60, cnf: "AB:CD" }),
    ).rejects.toThrow(TokenError);
  });
});
