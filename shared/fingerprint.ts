/**
 * DTLS certificate fingerprints (RFC 8122 `a=fingerprint`): parse them from SDP and from what an
 * operator writes, and decide whether an SDP carries exactly the fingerprints pinned for a peer.
 * Runtime-agnostic (no Node or Workers API): the edge, rovers and the console can share it.
 *
 * Only sha-256 is accepted: it is what werift, Chrome and Firefox put in SDP, and one algorithm
 * keeps the comparison exact.
 */

export class FingerprintError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FingerprintError";
  }
}

/** A sha-256 certificate fingerprint as RFC 8122 writes it: 32 upper-case hex bytes, `:`-joined. */
export type Fingerprint = string;

const HEX64 = /^[0-9a-f]{64}$/i;

/** `AB:CD:…` from 32 raw bytes (e.g. a SHA-256 digest of a DER certificate). */
export function fingerprintFromBytes(bytes: Uint8Array): Fingerprint {
  if (bytes.length !== 32)
    throw new FingerprintError(`a sha-256 digest has 32 bytes, not ${bytes.length}`);
  return [...bytes].map((b) => b.toString(16).padStart(2, "0").toUpperCase()).join(":");
}

/**
 * Read a fingerprint as an operator writes it: `sha-256 AB:CD:…` (the SDP form), `AB:CD:…`, or 64
 * hex digits; case-insensitive. Anything else (another algorithm, a wrong length) throws.
 */
export function parseFingerprint(text: string): Fingerprint {
  const parts = text.trim().split(/\s+/);
  let value = parts[0] ?? "";
  if (parts.length === 2) {
    const alg = (parts[0] ?? "").toLowerCase();
    if (alg !== "sha-256" && alg !== "sha256")
      throw new FingerprintError(`only sha-256 fingerprints are supported, not "${parts[0]}"`);
    value = parts[1] ?? "";
  } else if (parts.length !== 1) {
    throw new FingerprintError(`not a fingerprint: "${text.trim()}"`);
  }
  const hex = value.includes(":") ? value.split(":") : null;
  if (hex && !hex.every((h) => /^[0-9a-f]{2}$/i.test(h)))
    throw new FingerprintError(`not a sha-256 fingerprint: "${value}"`);
  const flat = hex ? hex.join("") : value;
  if (!HEX64.test(flat)) throw new FingerprintError(`not a sha-256 fingerprint: "${value}"`);
  return fingerprintFromBytes(
    Uint8Array.from(flat.match(/../g) ?? [], (h) => Number.parseInt(h, 16)),
  );
}

/** Every `a=fingerprint` of an SDP (session and media level), as `{ algorithm, value }`. */
export function sdpFingerprintLines(sdp: string): { algorithm: string; value: string }[] {
  const out: { algorithm: string; value: string }[] = [];
  for (const line of sdp.split(/\r\n|\r|\n/)) {
    const m = /^a=fingerprint:\s*(\S+)\s+(\S+)\s*$/i.exec(line);
    if (m) out.push({ algorithm: (m[1] ?? "").toLowerCase(), value: m[2] ?? "" });
    else if (/^a=fingerprint:/i.test(line))
      out.push({ algorithm: "", value: line.slice(14).trim() });
  }
  return out;
}

/**
 * Why `sdp` does not prove the pinned identity, or null when it does. Every `a=fingerprint` line
 * must be sha-256 and one of `pinned` (several: a rotation in progress), and there must be one:
 * werift accepts the DTLS certificate when it matches ANY fingerprint of the strongest algorithm
 * in the SDP, so a single extra line (an attacker's, or a sha-512 one) would let another
 * certificate through.
 */
export function checkSdpFingerprints(sdp: string, pinned: readonly Fingerprint[]): string | null {
  const lines = sdpFingerprintLines(sdp);
  if (lines.length === 0) return "the description carries no a=fingerprint";
  for (const l of lines) {
    if (l.algorithm !== "sha-256")
      return `the description carries a ${l.algorithm || "malformed"} fingerprint (only sha-256 is accepted)`;
    let f: Fingerprint;
    try {
      f = parseFingerprint(l.value);
    } catch {
      return `the description carries a malformed fingerprint "${l.value}"`;
    }
    if (!pinned.includes(f)) return `fingerprint sha-256 ${f} is not the pinned one`;
  }
  return null;
}

/** RFC 7800 `x5t#S256` (base64url of the SHA-256 of the DER certificate) of a fingerprint. */
export function fingerprintToX5t(f: Fingerprint): string {
  const bytes = Uint8Array.from(parseFingerprint(f).split(":"), (h) => Number.parseInt(h, 16));
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The fingerprint an RFC 7800 `x5t#S256` names; throws FingerprintError on anything else. */
export function fingerprintFromX5t(x5t: string): Fingerprint {
  if (!/^[A-Za-z0-9_-]{43}$/.test(x5t))
    throw new FingerprintError(`not a base64url sha-256 thumbprint: "${x5t}"`);
  const bin = atob(x5t.replace(/-/g, "+").replace(/_/g, "/"));
  return fingerprintFromBytes(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}
