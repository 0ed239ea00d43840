/**
 * End-to-end peer identity (docs/rover.md "Identity"): this rover's persistent DTLS certificate,
 * and the operator's trust file that pins each peer id to the sha-256 fingerprint of its own.
 * A remote description whose fingerprints are not the pinned ones is refused before werift sees
 * it; werift then checks that the certificate presented in the DTLS handshake has the fingerprint
 * of the description (and, with our patch, that the peer holds its private key).
 */
import { createPrivateKey, createPublicKey, sign, verify, X509Certificate } from "node:crypto";
import { closeSync, linkSync, openSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import {
  createSelfSignedCertificate,
  HashAlgorithm,
  NamedCurveAlgorithm,
  RTCCertificate,
  SignatureAlgorithm,
} from "werift";
import {
  checkSdpFingerprints,
  type Fingerprint,
  type FingerprintError,
  parseFingerprint,
} from "../shared/fingerprint.ts";
import { makeDirs } from "./make-dirs.ts";

export class IdentityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "IdentityError";
  }
}

/** What a Link needs: the certificate to present, and the check of a remote description. */
export interface PeerIdentity {
  certificate: RTCCertificate;
  /** Why `sdp` from `peer` must be refused, or null to accept it. */
  verifyRemote(peer: string, sdp: string): string | null;
}

/** werift's own choice (ECDSA P-256, SHA-256): what its certificates and handshakes support. */
const SIGNATURE_HASH = { signature: SignatureAlgorithm.ecdsa_3, hash: HashAlgorithm.sha256_4 };

/**
 * `<state>/identity/<id>.pem`, where `<state>` is systemd's `$STATE_DIRECTORY` (StateDirectory=)
 * when set, else `$XDG_STATE_HOME/roverlink` (default `~/.local/state/roverlink`): where the
 * durable outbox lives too, so a unit with `DynamicUser=yes` and `StateDirectory=` keeps both.
 */
export function defaultIdentityPath(id: string, env = process.env): string {
  const systemd = env.STATE_DIRECTORY?.split(":")[0];
  const state =
    systemd || join(env.XDG_STATE_HOME || join(homedir(), ".local", "state"), "roverlink");
  return join(state, "identity", `${id}.pem`);
}

export interface LoadedIdentity {
  certificate: RTCCertificate;
  fingerprint: Fingerprint;
  /** True when the file did not exist and a new certificate was written. */
  created: boolean;
}

/**
 * The certificate (and key) in `file`, created 0600 with a new self-signed ECDSA P-256
 * certificate when the file does not exist. Refuses a file others can read (like ssh does).
 */
export async function loadOrCreateIdentity(file: string): Promise<LoadedIdentity> {
  let text: string;
  let created = false;
  try {
    const st = statSync(file);
    // Before the mode: "chmod 600 it" was the advice for a directory given by mistake.
    if (st.isDirectory())
      throw new IdentityError(`identity file ${file} is a directory: give a file's path`);
    if ((st.mode & 0o077) !== 0)
      throw new IdentityError(
        `identity file ${file} is accessible by others (mode ${(st.mode & 0o777).toString(8)}): chmod 600 it`,
      );
    text = readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
      if (e instanceof IdentityError) throw e;
      throw new IdentityError(`cannot read identity file ${file}: ${(e as Error).message}`);
    }
    text = await newIdentityPem();
    created = writeNew(file, text);
    if (!created) text = readFileSync(file, "utf8");
  }
  return checkedIdentity(file, text, created);
}

/**
 * A new certificate kept in memory only: for a peer id made up for one run (`roverlink send`
 * without an id), whose fingerprint nobody can have trusted, so a file would only pile up.
 */
export async function ephemeralIdentity(): Promise<LoadedIdentity> {
  return checkedIdentity("(in memory)", await newIdentityPem(), true);
}

async function newIdentityPem(): Promise<string> {
  const { certPem, keyPem } = await createSelfSignedCertificate(
    SIGNATURE_HASH,
    NamedCurveAlgorithm.secp256r1_23,
  );
  return `${keyPem.trim()}\n${certPem.trim()}\n`;
}

function checkedIdentity(file: string, text: string, created: boolean): LoadedIdentity {
  const { keyPem, certPem } = splitPem(file, text);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certPem);
    // The key must be the certificate's: a mismatch would only show as failed handshakes.
    const probe = Buffer.from("roverlink identity check");
    const key = createPrivateKey(keyPem);
    if (!verify("sha256", probe, createPublicKey(certPem), sign("sha256", probe, key)))
      throw new Error("the private key is not the certificate's");
    if (x509.publicKey.asymmetricKeyType !== "ec")
      throw new Error("the certificate's key must be ECDSA P-256");
  } catch (e) {
    throw new IdentityError(`identity file ${file}: ${(e as Error).message.split("\n")[0]}`);
  }
  return {
    certificate: new RTCCertificate(keyPem, certPem, SIGNATURE_HASH),
    fingerprint: parseFingerprint(x509.fingerprint256),
    created,
  };
}

/** Write a new identity file, or return false when another process created it first. */
function writeNew(file: string, text: string): boolean {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    makeDirs(dirname(file), 0o700);
    const fd = openSync(tmp, "w", 0o600);
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
    // A hard link appears whole or not at all, and never replaces a file: two rovers starting at
    // once with the same file both end up with the one written first.
    linkSync(tmp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw new IdentityError(`cannot create identity file ${file}: ${(e as Error).message}`);
  } finally {
    rmSync(tmp, { force: true });
  }
}

function splitPem(file: string, text: string): { keyPem: string; certPem: string } {
  const block = (label: string) =>
    new RegExp(`-----BEGIN ${label}-----[\\s\\S]+?-----END ${label}-----`).exec(text)?.[0];
  const keyPem = block("PRIVATE KEY") ?? block("EC PRIVATE KEY");
  const certPem = block("CERTIFICATE");
  if (!keyPem || !certPem)
    throw new IdentityError(
      `identity file ${file} must hold a PEM private key and a PEM certificate`,
    );
  return { keyPem, certPem };
}

/** The trust file: peer id → pinned fingerprints; `*` for what unlisted peers get. */
export interface TrustFile {
  pins: Map<string, Fingerprint[]>;
  /** `* any`: peers not listed are accepted unverified (e.g. browser consoles). */
  allowUnlisted: boolean;
}

/**
 * Parse a trust file: one `<peer-id> <fingerprint>` per line (`sha-256 AB:CD:…`, `AB:CD:…` or
 * 64 hex digits), `#` comments, blank lines. An id on several lines accepts any of them (a
 * rotation in progress). `* any` accepts unlisted peers unverified; without it they are refused.
 */
export function parseTrustFile(text: string, name = "trust file"): TrustFile {
  const pins = new Map<string, Fingerprint[]>();
  let allowUnlisted = false;
  text.split(/\r\n|\r|\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (!line) return;
    const [peer, ...rest] = line.split(/\s+/);
    const where = `${name} line ${i + 1}`;
    if (!peer || rest.length === 0)
      throw new IdentityError(`${where}: expected "<peer-id> <fingerprint>"`);
    if (peer === "*") {
      if (rest.join(" ") !== "any")
        throw new IdentityError(`${where}: "*" takes "any" (accept unlisted peers unverified)`);
      allowUnlisted = true;
      return;
    }
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(peer))
      throw new IdentityError(`${where}: "${peer}" is not a peer id`);
    let f: Fingerprint;
    try {
      f = parseFingerprint(rest.join(" "));
    } catch (e) {
      throw new IdentityError(`${where}: ${(e as FingerprintError).message}`);
    }
    pins.set(peer, [...(pins.get(peer) ?? []), f]);
  });
  return { pins, allowUnlisted };
}

/** Why `sdp` from `peer` is refused under `trust`, or null. */
export function checkAgainstTrust(trust: TrustFile, peer: string, sdp: string): string | null {
  const pinned = trust.pins.get(peer);
  if (!pinned) return trust.allowUnlisted ? null : `peer "${peer}" is not in the trust file`;
  return checkSdpFingerprints(sdp, pinned);
}

/**
 * A verifier that follows `file`: read again whenever it changes (rotation without a restart).
 * A file that becomes unreadable or malformed refuses everything until it is fixed.
 */
export function trustFileVerifier(file: string): (peer: string, sdp: string) => string | null {
  let stamp = stampOf(file);
  let current: TrustFile | string = loadTrust(file);
  return (peer, sdp) => {
    const now = stampOf(file);
    if (now !== stamp) {
      stamp = now;
      try {
        current = loadTrust(file);
      } catch (e) {
        current = (e as Error).message;
      }
    }
    return typeof current === "string" ? current : checkAgainstTrust(current, peer, sdp);
  };
}

function loadTrust(file: string): TrustFile {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new IdentityError(`cannot read trust file ${file}: ${(e as Error).message}`);
  }
  // Whoever can write the trust file decides whom the rover trusts (like ssh's StrictModes).
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o022) !== 0)
    throw new IdentityError(
      `trust file ${file} is writable by others (mode ${mode.toString(8)}): chmod go-w it`,
    );
  return parseTrustFile(text, file);
}

function stampOf(file: string): string {
  try {
    const s = statSync(file);
    return `${s.mtimeMs}:${s.size}:${s.ino}`;
  } catch {
    return "missing";
  }
}

/**
 * The rover's identity: its certificate from `identityFile` (default: defaultIdentityPath) and,
 * with a trust file, the check of every remote description against it.
 */
export async function openPeerIdentity(o: {
  id: string;
  identityFile?: string;
  trustFile?: string;
  /** No file: a certificate for this run only (see ephemeralIdentity). */
  ephemeral?: boolean;
}): Promise<{ identity: PeerIdentity; file: string; fingerprint: Fingerprint; created: boolean }> {
  const file = o.ephemeral ? "(in memory)" : (o.identityFile ?? defaultIdentityPath(o.id));
  const verify = o.trustFile ? trustFileVerifier(o.trustFile) : () => null;
  const loaded = o.ephemeral ? await ephemeralIdentity() : await loadOrCreateIdentity(file);
  return {
    identity: { certificate: loaded.certificate, verifyRemote: verify },
    file,
    fingerprint: loaded.fingerprint,
    created: loaded.created,
  };
}

/**
 * `roverlink token --cnf`: a fingerprint as written, or the certificate in a file (an identity
 * file, or any PEM certificate).
 */
export function cnfFingerprint(arg: string): Fingerprint {
  let text: string | null = null;
  try {
    text = readFileSync(arg, "utf8");
  } catch {
    // not a file: a fingerprint
  }
  if (text === null) {
    try {
      return parseFingerprint(arg);
    } catch (e) {
      throw new IdentityError(`--cnf: ${(e as Error).message} (nor a readable file)`);
    }
  }
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text)?.[0];
  if (!pem) throw new IdentityError(`--cnf: ${arg} holds no PEM certificate`);
  return parseFingerprint(new X509Certificate(pem).fingerprint256);
}
