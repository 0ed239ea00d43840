import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  checkSdpFingerprints,
  FingerprintError,
  fingerprintFromBytes,
  fingerprintFromX5t,
  fingerprintToX5t,
  parseFingerprint,
  sdpFingerprintLines,
} from "../../shared/fingerprint.ts";

const A = fingerprintFromBytes(createHash("sha256").update("cert A").digest());
const B = fingerprintFromBytes(createHash("sha256").update("cert B").digest());

const sdp = (...fps: string[]) =>
  [
    "v=0",
    "o=- 1 1 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "a=ice-ufrag:abcd",
    ...fps.map((f) => `a=fingerprint:${f}`),
    "a=setup:actpass",
    "",
  ].join("\r\n");

describe("parseFingerprint", () => {
  it("reads the SDP form, the bare colon form and 64 hex digits to one canonical value", () => {
    const hex = A.replace(/:/g, "").toLowerCase();
    expect(parseFingerprint(`sha-256 ${A}`)).toBe(A);
    expect(parseFingerprint(`SHA256 ${A.toLowerCase()}`)).toBe(A);
    expect(parseFingerprint(A.toLowerCase())).toBe(A);
    expect(parseFingerprint(`  ${hex}\n`)).toBe(A);
    expect(A).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it("refuses other algorithms, wrong lengths and junk", () => {
    for (const bad of [
      `sha-1 ${A}`,
      A.slice(3),
      `${A}:00`,
      "AB:CD",
      "zz".repeat(32),
      "",
      `sha-256 ${A} extra`,
      A.replace(/:/g, ":0").slice(0, 95),
    ])
      expect(() => parseFingerprint(bad), bad).toThrow(FingerprintError);
  });

  it("round-trips any 32 bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (b) => {
        const f = fingerprintFromBytes(b);
        expect(parseFingerprint(f)).toBe(f);
        expect(fingerprintFromX5t(fingerprintToX5t(f))).toBe(f);
      }),
    );
  });
});

describe("x5t#S256 (RFC 7800)", () => {
  it("is the base64url SHA-256 of the DER certificate", () => {
    const digest = createHash("sha256").update("cert A").digest();
    expect(fingerprintToX5t(A)).toBe(digest.toString("base64url"));
    expect(() => fingerprintFromX5t("not-a-thumbprint")).toThrow(FingerprintError);
  });
});

describe("checkSdpFingerprints", () => {
  it("accepts a description whose every fingerprint is pinned", () => {
    expect(checkSdpFingerprints(sdp(`sha-256 ${A}`), [A])).toBeNull();
    expect(checkSdpFingerprints(sdp(`sha-256 ${A.toLowerCase()}`), [B, A])).toBeNull();
    expect(checkSdpFingerprints(sdp(`sha-256 ${A}`, `sha-256 ${B}`), [A, B])).toBeNull();
  });

  it("refuses another fingerprint, naming it", () => {
    expect(checkSdpFingerprints(sdp(`sha-256 ${B}`), [A])).toBe(
      `fingerprint sha-256 ${B} is not the pinned one`,
    );
  });

  it("refuses a pinned fingerprint beside an unpinned one (werift accepts any match)", () => {
    expect(checkSdpFingerprints(sdp(`sha-256 ${A}`, `sha-256 ${B}`), [A])).toMatch(
      /not the pinned/,
    );
    expect(checkSdpFingerprints(sdp(`sha-256 ${A}`, `sha-512 ${"AB:".repeat(63)}AB`), [A])).toMatch(
      /sha-512 fingerprint/,
    );
  });

  it("refuses a description without fingerprints or with a malformed one", () => {
    expect(checkSdpFingerprints(sdp(), [A])).toMatch(/no a=fingerprint/);
    expect(checkSdpFingerprints(sdp("sha-256 AB:CD"), [A])).toMatch(/malformed/);
    expect(checkSdpFingerprints(sdp("garbage"), [A])).toMatch(/malformed/);
  });

  it("reads session- and media-level lines with any line ending", () => {
    const text = `v=0\na=fingerprint:sha-256 ${A}\rm=application 9 x\r\na=fingerprint:SHA-256 ${B}\n`;
    expect(sdpFingerprintLines(text)).toEqual([
      { algorithm: "sha-256", value: A },
      { algorithm: "sha-256", value: B },
    ]);
  });
});
