import { X509Certificate } from "node:crypto";
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  checkAgainstTrust,
  defaultIdentityPath,
  IdentityError,
  loadOrCreateIdentity,
  parseTrustFile,
  trustFileVerifier,
} from "../../rover/identity.ts";

const dir = mkdtempSync(join(tmpdir(), "rl-identity-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const A = `${"AA:".repeat(31)}AA`;
const B = `${"BB:".repeat(31)}BB`;
const sdp = (f: string) =>
  `v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=fingerprint:sha-256 ${f}\r\n`;

describe("loadOrCreateIdentity", () => {
  it("creates a 0600 certificate file on first use and reads the same one back", async () => {
    const file = join(dir, "sub", "dir", "r1.pem");
    const first = await loadOrCreateIdentity(file);
    expect(first.created).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "sub", "dir")).mode & 0o077).toBe(0);
    const pem = readFileSync(file, "utf8");
    expect(first.fingerprint).toBe(new X509Certificate(pem).fingerprint256);
    // What werift will put in a=fingerprint is the file's certificate.
    expect(first.certificate.getFingerprints()[0]?.value).toBe(first.fingerprint);
    const again = await loadOrCreateIdentity(file);
    expect(again.created).toBe(false);
    expect(again.fingerprint).toBe(first.fingerprint);
    expect(readFileSync(file, "utf8")).toBe(pem);
  });

  it("gives two processes creating the same file at once one identity", async () => {
    const file = join(dir, "race.pem");
    const [a, b] = await Promise.all([loadOrCreateIdentity(file), loadOrCreateIdentity(file)]);
    expect(a.fingerprint).toBe(b.fingerprint);
    expect([a.created, b.created].sort()).toEqual([false, true]);
  });

  it("refuses a file others can read, a file without a key, and a key of another certificate", async () => {
    const open = join(dir, "open.pem");
    await loadOrCreateIdentity(open);
    chmodSync(open, 0o644);
    await expect(loadOrCreateIdentity(open)).rejects.toThrow(/accessible by others.*chmod 600/);
    // A directory given by mistake is named as one (it was told to chmod 600).
    const folder = join(dir, "folder");
    mkdirSync(folder, { mode: 0o755 });
    chmodSync(folder, 0o755);
    await expect(loadOrCreateIdentity(folder)).rejects.toThrow(
      /is a directory: give a file's path/,
    );

    const noKey = join(dir, "nokey.pem");
    const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(
      readFileSync(open, "utf8"),
    )?.[0];
    writeFileSync(noKey, `${cert}\n`, { mode: 0o600 });
    await expect(loadOrCreateIdentity(noKey)).rejects.toThrow(IdentityError);

    const other = join(dir, "other.pem");
    await loadOrCreateIdentity(other);
    const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/.exec(
      readFileSync(other, "utf8"),
    )?.[0];
    const mixed = join(dir, "mixed.pem");
    writeFileSync(mixed, `${key}\n${cert}\n`, { mode: 0o600 });
    await expect(loadOrCreateIdentity(mixed)).rejects.toThrow(/not the certificate's/);
  });

  it("defaults to $XDG_STATE_HOME/roverlink/identity/<id>.pem", () => {
    expect(defaultIdentityPath("r1", { XDG_STATE_HOME: "/s" })).toBe(
      "/s/roverlink/identity/r1.pem",
    );
    expect(defaultIdentityPath("r1", {})).toMatch(/\.local\/state\/roverlink\/identity\/r1\.pem$/);
    // Under systemd (StateDirectory=, DynamicUser=yes) beside the outbox, whatever HOME is; the
    // same file as XDG_STATE_HOME=/var/lib gave.
    expect(
      defaultIdentityPath("r1", { STATE_DIRECTORY: "/var/lib/roverlink", XDG_STATE_HOME: "/x" }),
    ).toBe("/var/lib/roverlink/identity/r1.pem");
    expect(defaultIdentityPath("r1", { XDG_STATE_HOME: "/var/lib" })).toBe(
      "/var/lib/roverlink/identity/r1.pem",
    );
  });
});

describe("trust file", () => {
  it("pins ids, accepts either fingerprint of a rotation, refuses unlisted peers", () => {
    const t = parseTrustFile(
      [
        "# fleet",
        `rover-1 sha-256 ${A}`,
        `rover-2 ${B.toLowerCase()}  # old key`,
        `rover-2 ${A.replace(/:/g, "")}`,
        "",
      ].join("\n"),
    );
    expect(checkAgainstTrust(t, "rover-1", sdp(A))).toBeNull();
    expect(checkAgainstTrust(t, "rover-1", sdp(B))).toMatch(/not the pinned one/);
    expect(checkAgainstTrust(t, "rover-2", sdp(A))).toBeNull();
    expect(checkAgainstTrust(t, "rover-2", sdp(B))).toBeNull();
    expect(checkAgainstTrust(t, "console", sdp(A))).toBe('peer "console" is not in the trust file');
  });

  it("lets `* any` accept unlisted peers while listed ones stay pinned", () => {
    const t = parseTrustFile(`* any\nrover-1 ${A}\n`);
    expect(checkAgainstTrust(t, "console", sdp(B))).toBeNull();
    expect(checkAgainstTrust(t, "rover-1", sdp(B))).toMatch(/not the pinned one/);
  });

  it("names the line of a mistake", () => {
    expect(() => parseTrustFile(`rover-1 ${A}\nrover-2\n`)).toThrow(/line 2: expected/);
    expect(() => parseTrustFile("rover-1 sha-1 AB:CD\n")).toThrow(/line 1: only sha-256/);
    expect(() => parseTrustFile("* all\n")).toThrow(/line 1: "\*" takes "any"/);
    expect(() => parseTrustFile(`ro/ver ${A}\n`)).toThrow(/not a peer id/);
  });

  it("follows the file: a rotation applies without a restart, a broken file refuses all", () => {
    const file = join(dir, "trust");
    writeFileSync(file, `rover-1 ${A}\n`, { mode: 0o644 });
    const verify = trustFileVerifier(file);
    expect(verify("rover-1", sdp(A))).toBeNull();
    expect(verify("rover-1", sdp(B))).not.toBeNull();
    writeFileSync(file, `rover-1 ${B}\n# rotated\n`);
    expect(verify("rover-1", sdp(B))).toBeNull();
    expect(verify("rover-1", sdp(A))).not.toBeNull();
    writeFileSync(file, "rover-1\n");
    expect(verify("rover-1", sdp(B))).toMatch(/line 1/);
    rmSync(file);
    expect(verify("rover-1", sdp(B))).toMatch(/cannot read trust file/);
  });

  it("refuses a trust file others can write", () => {
    const file = join(dir, "trust-open");
    writeFileSync(file, `rover-1 ${A}\n`, { mode: 0o644 });
    chmodSync(file, 0o666);
    expect(() => trustFileVerifier(file)).toThrow(/writable by others \(mode 666\): chmod go-w/);
    chmodSync(file, 0o644);
    expect(trustFileVerifier(file)("rover-1", sdp(A))).toBeNull();
  });

  it("fails at start for a missing trust file", () => {
    expect(() => trustFileVerifier(join(dir, "absent"))).toThrow(/cannot read trust file/);
  });
});
