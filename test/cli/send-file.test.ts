/**
 * `roverlink send FILE --to PEER` and `roverlink rover --receive-dir DIR` as a user runs them
 * (node rover/cli.ts), through a local edge: delivery verified by sha256 and exit 0, plain
 * progress lines off a terminal, one-line errors for refusals and bad flags.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RTCDataChannel } from "werift";
import { type LocalEdge, REPO_ROOT, startLocalEdge } from "../../rover/local-edge.ts";
import { formatBytes } from "../../rover/progress.ts";
import { holdStreamIdUntilReset } from "../../rover/werift-internals.ts";
import { decodeFileMessage, encodeFileMessage } from "../../shared/file-wire.ts";
import { testAgent } from "../integration/agents.ts";
import { CLI, cliEnv } from "./rover-process.ts";

const SECRET = "cli-send-secret-cli-send-secret-cli";
const STATE_HOME = mkdtempSync(join(tmpdir(), "cli-send-state-"));

/**
 * Root reads and writes whatever the permission bits say (CAP_DAC_OVERRIDE), and CI runs as root:
 * there, a process that must meet EACCES runs without that capability (and CAP_DAC_READ_SEARCH),
 * still as uid 0, so that the owner's bits of a chmod'ed file or directory hold for it too.
 */
function withoutPermissionOverride(argv: string[]): string[] {
  if (process.getuid?.() !== 0) return argv;
  return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", ...argv];
}

function spawnRoverlink(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
  o: { permissionsHold?: boolean } = {},
) {
  const argv = [process.execPath, CLI, ...args];
  const [cmd = "", ...rest] = o.permissionsHold ? withoutPermissionOverride(argv) : argv;
  const child = spawn(cmd, rest, {
    cwd: REPO_ROOT,
    env: cliEnv({ XDG_STATE_HOME: STATE_HOME, ...env }),
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const result = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const t = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
  return { child, result, out: () => ({ stdout, stderr }) };
}

const roverlink = (
  args: string[],
  env: Record<string, string> = {},
  ms = 60_000,
  o: { permissionsHold?: boolean } = {},
) => spawnRoverlink(args, env, ms, o).result;

function expectOneLineError(r: { code: number | null; stderr: string }, pattern: RegExp) {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split("\n");
  expect(lines.at(-1)).toMatch(/^roverlink: /);
  expect(lines.at(-1)).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe("send and --receive-dir without an edge", () => {
  it("help and bad values", async () => {
    const help = await roverlink(["send", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("--to <peer>");
    expect((await roverlink(["rover", "--help"])).stdout).toContain("--receive-dir <dir>");
    const noSuch = join(tmpdir(), "no-such-file-for-roverlink");
    expectOneLineError(
      await roverlink(
        ["send", noSuch, "--to", "b", "--room", "r", "--edge", "http://127.0.0.1:9"],
        {
          ROVERLINK_SECRET: SECRET,
        },
      ),
      /cannot read .*: no such file or directory \(ENOENT\)$/,
    );
    expectOneLineError(
      await roverlink(["send", CLI, "--to", "../b", "--room", "r"]),
      /peer id must match/,
    );
    expectOneLineError(await roverlink(["send", CLI, "--to", "b", "--room", "r"]), /no edge/);
    expectOneLineError(
      await roverlink(["send", CLI, "--to", "b", "--room", "r", "--link-timeout", "3000000"]),
      /--link-timeout must be at most 2147483 s/,
    );
    expectOneLineError(
      await roverlink(["send", CLI, "--to", "b", "--room", "r"], { ROVERLINK_EDGE: "ftp://x" }),
      /^roverlink: ROVERLINK_EDGE "ftp:\/\/x" must be an http\(s\) URL/,
    );
    expectOneLineError(
      await roverlink(["rover", "--room", "r", "--id", "a", "--max-file-size", "lots"]),
      /--max-file-size.*must be a size/,
    );
  });
});

describe("through a local edge", () => {
  let edge: LocalEdge;
  let rover: ReturnType<typeof spawnRoverlink> | null = null;
  const dir = mkdtempSync(join(tmpdir(), "rl-cli-receive-"));
  beforeAll(async () => {
    edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET } });
    rover = spawnRoverlink(
      [
        "rover",
        "--edge",
        edge.url,
        "--room",
        "files",
        "--id",
        "b",
        "--in-memory",
        "--receive-dir",
        dir,
        "--max-file-size",
        "20M",
        "--log-level",
        "info",
      ],
      { ROVERLINK_SECRET: SECRET },
      300_000,
    );
    const end = Date.now() + 30_000;
    while (!rover.out().stderr.includes("joined") && Date.now() < end)
      await new Promise((r) => setTimeout(r, 100));
  }, 120_000);
  afterAll(async () => {
    (rover?.child as ChildProcess | undefined)?.kill("SIGINT");
    await rover?.result;
    await edge?.stop();
  });

  it("send delivers a file byte-identical, says so with its sha256 and exits 0; plain progress lines off a terminal", async () => {
    const src = mkdtempSync(join(tmpdir(), "rl-cli-send-"));
    const data = randomBytes(5 * 1024 * 1024 + 123);
    writeFileSync(join(src, "bag.bin"), data);
    const r = await roverlink(
      ["send", join(src, "bag.bin"), "--to", "b", "--room", "files", "--edge", edge.url],
      { ROVERLINK_SECRET: SECRET },
      120_000,
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^sent bag\.bin \(5\.0 MiB\) to b in [\d.]+ s, [\d.]+ MB\/s, sha256 [0-9a-f]{64} verified\n$/,
    );
    expect(r.stderr).toMatch(/bag\.bin: 100% \(5\.0 MiB of 5\.0 MiB/);
    expect(r.stderr).not.toContain("\r");
    expect(readFileSync(join(dir, "bag.bin")).equals(data)).toBe(true);
    // No --id and a self-minted token: an id made up for this run, whose certificate nobody can
    // have trusted, is not written (one file per run used to pile up).
    const ids = join(STATE_HOME, "roverlink", "identity");
    const made = existsSync(ids) ? readdirSync(ids).filter((f) => f.startsWith("send-")) : [];
    expect(made).toEqual([]);
    expect(rover?.out().stderr).toMatch(/file received/);
  }, 180_000);

  it("a refusal (the name exists, a size past --max-file-size) is one line and a non-zero exit", async () => {
    const src = mkdtempSync(join(tmpdir(), "rl-cli-send-"));
    writeFileSync(join(src, "bag.bin"), "again");
    expectOneLineError(
      await roverlink(
        ["send", join(src, "bag.bin"), "--to", "b", "--room", "files", "--edge", edge.url],
        { ROVERLINK_SECRET: SECRET },
        120_000,
      ),
      /b refused the file: "bag\.bin" exists already/,
    );
    writeFileSync(join(src, "huge.bin"), Buffer.alloc(21 * 1024 * 1024));
    expectOneLineError(
      await roverlink(
        ["send", join(src, "huge.bin"), "--to", "b", "--room", "files", "--edge", edge.url],
        { ROVERLINK_SECRET: SECRET },
        120_000,
      ),
      /larger than the limit of 20971520/,
    );
    expect(readdirSync(dir)).toEqual(["bag.bin"]);
  }, 180_000);

  it("a peer that never comes is one line after --link-timeout", async () => {
    expectOneLineError(
      await roverlink(
        [
          "send",
          CLI,
          "--to",
          "nobody",
          "--room",
          "files",
          "--edge",
          edge.url,
          "--link-timeout",
          "2",
        ],
        { ROVERLINK_SECRET: SECRET },
      ),
      /^roverlink: "nobody" did not join room "files" within 2 s$/m,
    );
  }, 60_000);

  it("permission denied is one clear line: a receive directory it cannot write, a file it cannot read", async () => {
    const held = { permissionsHold: true };
    // A receive directory the rover cannot write into, from the start.
    const locked = mkdtempSync(join(tmpdir(), "rl-cli-locked-"));
    chmodSync(locked, 0o500);
    expectOneLineError(
      await roverlink(
        ["rover", "--edge", edge.url, "--room", "files", "--id", "c", "--in-memory"].concat([
          "--receive-dir",
          locked,
        ]),
        { ROVERLINK_SECRET: SECRET },
        60_000,
        held,
      ),
      new RegExp(
        `^roverlink: --receive-dir ${locked}: not writable \\(permission denied \\(EACCES\\)\\)$`,
      ),
    );
    // A file the sender cannot read: said before joining (a missing file is), not after waiting
    // for a receiver that is not even there.
    const src = mkdtempSync(join(tmpdir(), "rl-cli-send-"));
    const secret = join(src, "secret.bin");
    writeFileSync(secret, "not for you");
    chmodSync(secret, 0o000);
    const unread = await roverlink(
      ["send", secret, "--to", "nobody", "--room", "files", "--edge", edge.url],
      { ROVERLINK_SECRET: SECRET },
      60_000,
      held,
    );
    expectOneLineError(
      unread,
      new RegExp(`^roverlink: cannot read ${secret}: permission denied \\(EACCES\\)$`),
    );
    // A receive directory that stops being writable while the rover runs: the offer is refused
    // with the reason, which the sender says in one line.
    const dir2 = mkdtempSync(join(tmpdir(), "rl-cli-receive-"));
    const d = spawnRoverlink(
      ["rover", "--edge", edge.url, "--room", "files", "--id", "d", "--in-memory"].concat([
        "--receive-dir",
        dir2,
        "--log-level",
        "info",
      ]),
      { ROVERLINK_SECRET: SECRET },
      120_000,
      held,
    );
    try {
      const end = Date.now() + 30_000;
      while (!d.out().stderr.includes('"joined"') && Date.now() < end)
        await new Promise((r) => setTimeout(r, 100));
      expect(d.out().stderr).toContain('"joined"');
      chmodSync(dir2, 0o500);
      writeFileSync(join(src, "bag.bin"), "a few bytes");
      expectOneLineError(
        await roverlink(
          ["send", join(src, "bag.bin"), "--to", "d", "--room", "files", "--edge", edge.url],
          { ROVERLINK_SECRET: SECRET },
          120_000,
        ),
        /^roverlink: d refused the file: cannot write: permission denied \(EACCES\)$/,
      );
      expect(readdirSync(dir2)).toEqual([]);
    } finally {
      d.child.kill("SIGINT");
      await d.result;
    }
  }, 180_000);

  it("at a terminal: a link lost mid-transfer is said, and after the rebuild the bar goes on from the receiver's offset", async () => {
    // The receiver in this process: it closes the link's session at the edge mid-transfer (the
    // PeerConnection is rebuilt, the file resumed on a new channel). It speaks the file protocol
    // itself and acknowledges nothing until `done` (acks are the receiver's to pace), so that
    // nothing but the resume's accept can move the sender's bar to the offset.
    const room = "resume";
    const rx = await testAgent(SECRET, { edge: edge.url, room, id: "keeper" });
    await rx.start();
    const src = mkdtempSync(join(tmpdir(), "rl-cli-send-"));
    const data = randomBytes(24 * 1024 * 1024);
    const sha256 = createHash("sha256").update(data).digest("hex");
    writeFileSync(join(src, "scan.bin"), data);
    const got = Buffer.alloc(data.length);
    let written = 0;
    let current: RTCDataChannel | null = null;
    let closed = false;
    const accepted: number[] = [];
    rx.on("file-channel", (_peer, dc) => {
      holdStreamIdUntilReset(dc);
      dc.onMessage.subscribe((m) => {
        if (typeof m === "string") {
          if (decodeFileMessage(m).t !== "offer") return;
          current = dc;
          accepted.push(written);
          dc.send(encodeFileMessage({ t: "accept", offset: written }));
          return;
        }
        if (dc !== current) return; // in flight on the old channel after the new one took over
        m.copy(got, written);
        written += m.length;
        if (written === data.length) dc.send(encodeFileMessage({ t: "done", sha256 }));
        if (closed || written < 6 * 1024 * 1024) return;
        closed = true;
        const session = rx.links().get("courier")?.session;
        if (session) void rx.client.closeSession(room, session).catch(() => {});
      });
    });
    try {
      // util-linux `script` gives `roverlink send` a real pseudo-terminal: the bar, not lines.
      const cmd = [process.execPath, CLI, "send", join(src, "scan.bin"), "--to", "keeper"]
        .concat(["--room", room, "--edge", edge.url, "--id", "courier", "--idle-timeout", "60"])
        .join(" ");
      const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
        const child = spawn("script", ["-qec", cmd, "/dev/null"], {
          cwd: REPO_ROOT,
          env: cliEnv({ ROVERLINK_SECRET: SECRET, XDG_STATE_HOME: STATE_HOME, COLUMNS: "200" }),
        });
        let text = "";
        child.stdout.on("data", (d: Buffer) => (text += d.toString()));
        const t = setTimeout(() => child.kill("SIGKILL"), 150_000);
        child.on("exit", (code) => {
          clearTimeout(t);
          resolve({ code, text });
        });
      });
      expect(out.code, out.text).toBe(0);
      // The premise: the session was closed mid-transfer and the file resumed past 0.
      expect(closed).toBe(true);
      expect(accepted).toHaveLength(2);
      expect(accepted[1]).toBeGreaterThanOrEqual(6 * 1024 * 1024);
      expect(got.equals(data)).toBe(true);
      // What the terminal showed, one piece per line or redraw of the bar.
      const shown = out.text
        .replaceAll("\r\x1b[2K", "\n")
        .split(/\r?\n/)
        .filter((l) => l !== "");
      expect(shown).toContainEqual(
        expect.stringMatching(
          /^scan\.bin: the link to keeper is down \(session-closed\); waiting up to 60 s for it to come back$/,
        ),
      );
      const resumedAt = shown.findIndex((l) => l.startsWith("scan.bin: resumed at "));
      expect(resumedAt, out.text).toBeGreaterThan(0);
      const offset = shown[resumedAt]?.slice("scan.bin: resumed at ".length) ?? "";
      expect(offset).toBe(formatBytes(accepted[1] ?? 0));
      const bars = shown.slice(resumedAt + 1).filter((l) => /^scan\.bin +\d+% \[/.test(l));
      // The first bar drawn after the resume is at the receiver's offset, then onwards to the end.
      expect(bars[0]).toContain(` ${offset} / 24.0 MiB `);
      expect(bars.at(-1)).toContain(" 100% ");
      expect(out.text).toMatch(
        new RegExp(
          `sent scan\\.bin \\(24\\.0 MiB\\) to keeper in .* verified, resumed at ${offset}`,
        ),
      );
    } finally {
      await rx.stop();
    }
  }, 180_000);

  it("--receive-dir that does not exist, or cannot be written, is one line", async () => {
    expectOneLineError(
      await roverlink(
        [
          "rover",
          "--edge",
          edge.url,
          "--room",
          "files",
          "--id",
          "c",
          "--in-memory",
          "--receive-dir",
          join(dir, "nope"),
        ],
        { ROVERLINK_SECRET: SECRET },
      ),
      /--receive-dir .*nope: no such directory/,
    );
    // One nothing can be written to, even by root (access(2) said yes to root).
    expectOneLineError(
      await roverlink(
        ["rover", "--edge", edge.url, "--room", "files", "--id", "c", "--in-memory"].concat([
          "--receive-dir",
          "/proc",
        ]),
        { ROVERLINK_SECRET: SECRET },
      ),
      /^roverlink: --receive-dir \/proc: not writable \(/,
    );
  }, 60_000);
});
