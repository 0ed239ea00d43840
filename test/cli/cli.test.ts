/**
 * The real `roverlink` CLI as a user runs it (node rover/cli.ts ...): help, one-line errors,
 * tokens, and two rovers probing each other through a local edge.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, type LocalEdge, REPO_ROOT, startLocalEdge } from "../../rover/local-edge.ts";
import { verifyToken } from "../../shared/token.ts";

const CLI = join(REPO_ROOT, "rover", "cli.ts");
const SECRET = "cli-test-secret-cli-test-secret";

function roverlink(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        ROVERLINK_SECRET: "",
        ROVERLINK_TOKEN: "",
        ROVERLINK_EDGE: "",
        ...env,
      },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** One line, prefixed, no stack trace. */
function expectOneLineError(r: { code: number | null; stderr: string }, pattern: RegExp) {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^roverlink: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe("roverlink CLI", () => {
  it("has --help for every subcommand", async () => {
    for (const sub of [[], ["edge"], ["token"], ["rover"]]) {
      const r = await roverlink([...sub, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^Usage: roverlink/);
    }
    expect((await roverlink(["rover", "--help"])).stdout).toContain("--stats-json <file>");
  });

  it("bad flags and bad values give one line and a non-zero exit", async () => {
    expectOneLineError(
      await roverlink(["token", "--room", "r", "--peer", "a", "--bogus"]),
      /unknown option '--bogus'/,
    );
    expectOneLineError(
      await roverlink(["rover", "--room", "r", "--id", "a", "--probe", "fast"]),
      /--probe must be a positive number/,
    );
    expectOneLineError(
      await roverlink(["rover", "--room", "r", "--id", "a", "--position", "1"]),
      /x,y/,
    );
    expectOneLineError(await roverlink(["rover", "--room", "r b", "--id", "a"]), /room must match/);
    expectOneLineError(await roverlink(["rover", "--room", "r", "--id", "a"]), /no edge/);
    expectOneLineError(await roverlink(["token", "--room", "r", "--peer", "a"]), /no secret/);
    expectOneLineError(
      await roverlink(["token", "--room", "r", "--peer", "a", "--secret", "s", "--ttl", "soon"]),
      /ttl/i,
    );
  });

  it("token mints a JWT that verifies with the secret and carries the claims", async () => {
    const r = await roverlink(
      ["token", "--room", "yard", "--peer", "rover-7", "--ttl", "10m", "--role", "admin"],
      {
        ROVERLINK_SECRET: SECRET,
      },
    );
    expect(r.code).toBe(0);
    const claims = await verifyToken(r.stdout.trim(), SECRET);
    expect(claims).toMatchObject({ sub: "rover-7", room: "yard", role: "admin" });
    expect(claims.exp - Math.floor(Date.now() / 1000)).toBeGreaterThan(590);
    expect(claims.exp - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(600);
    await expect(verifyToken(r.stdout.trim(), "another-secret")).rejects.toThrow();
  });

  it("an unreachable edge is one line", async () => {
    const port = await freePort();
    const r = await roverlink(
      ["rover", "--edge", `http://127.0.0.1:${port}`, "--room", "r", "--id", "a"],
      {
        ROVERLINK_SECRET: SECRET,
      },
    );
    expectOneLineError(r, /edge unreachable/);
  });

  describe("against a local edge", () => {
    let edge: LocalEdge;
    beforeAll(async () => {
      edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET, MAX_PEERS_PER_ROOM: "2" } });
    });
    afterAll(async () => {
      await edge?.stop();
    });

    it("a token signed with another secret is refused in one line", async () => {
      const r = await roverlink(
        ["rover", "--edge", edge.url, "--room", "r", "--id", "a", "--duration", "1"],
        {
          ROVERLINK_SECRET: "not-the-edge-secret",
        },
      );
      expectOneLineError(r, /token refused by the edge: token signature does not match/);
    });

    it("two rovers probe and echo through the edge: nothing lost; a full room is one line", async () => {
      const dir = mkdtempSync(join(tmpdir(), "roverlink-cli-"));
      const stats = join(dir, "stats.json");
      const env = { ROVERLINK_SECRET: SECRET };
      const common = ["--edge", edge.url, "--room", "cli", "--log-level", "warn"];
      const bravo = roverlink(
        ["rover", ...common, "--id", "bravo", "--echo", "--duration", "9"],
        env,
      );
      await new Promise((r) => setTimeout(r, 1500));
      const alpha = roverlink(
        [
          "rover",
          ...common,
          "--id",
          "alpha",
          "--connect",
          "bravo",
          "--probe",
          "20",
          "--duration",
          "5",
          "--stats-json",
          stats,
        ],
        env,
      );
      await new Promise((r) => setTimeout(r, 2500));
      // The room holds two peers (MAX_PEERS_PER_ROOM=2): a third is turned away.
      expectOneLineError(
        await roverlink(["rover", ...common, "--id", "charlie", "--duration", "1"], env),
        /room is full/,
      );
      const a = await alpha;
      expect(a.code).toBe(0);
      const f = JSON.parse(readFileSync(stats, "utf8")) as Record<string, number>;
      expect(f.sent).toBeGreaterThan(20);
      expect(f).toMatchObject({ lost: 0, duplicated: 0, reordered: 0 });
      expect(f.received).toBe(f.sent);
      expect(f.linkUpMs).toBeGreaterThan(0);
      const rtt = f.rttMs as unknown as { p50: number; p99: number };
      // Loopback: a sensible RTT is positive and well under a second.
      expect(rtt.p50).toBeGreaterThan(0);
      expect(rtt.p99).toBeLessThan(1000);
      expect((await bravo).code).toBe(0);
    });
  });
});
