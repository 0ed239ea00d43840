/**
 * `roverlink identity` and the rover's --identity/--trust checks, as a user runs them: the same
 * fingerprint on every run, a ready trust-file line, one-line errors before anything joins.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../../rover/local-edge.ts";

const CLI = join(REPO_ROOT, "rover", "cli.ts");
const dir = mkdtempSync(join(tmpdir(), "rl-cli-identity-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function roverlink(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    encoding: "utf8",
    timeout: 30_000,
    env: { ...process.env, XDG_STATE_HOME: join(dir, "state"), ROVERLINK_SECRET: "" },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("roverlink identity", () => {
  it("creates the certificate once (0600) and prints the same trust-file line every time", () => {
    const first = roverlink(["identity", "--id", "rover-7"]);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^rover-7 sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}\n$/);
    const file = join(dir, "state", "roverlink", "identity", "rover-7.pem");
    expect(first.stderr).toBe(`roverlink: created ${file}\n`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const again = roverlink(["identity", "--id", "rover-7", "--identity", file]);
    expect(again).toEqual({ code: 0, stdout: first.stdout, stderr: `roverlink: read ${file}\n` });
  });

  it("refuses an identity file others can read, in one line", () => {
    const file = join(dir, "open.pem");
    expect(roverlink(["identity", "--id", "r", "--identity", file]).code).toBe(0);
    chmodSync(file, 0o644);
    const r = roverlink(["identity", "--id", "r", "--identity", file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `roverlink: identity file ${file} is accessible by others (mode 644): chmod 600 it\n`,
    );
  });
});

describe("roverlink rover --trust", () => {
  const rover = (trust: string) =>
    roverlink([
      "rover",
      "--edge",
      "http://127.0.0.1:9",
      "--room",
      "yard",
      "--id",
      "r1",
      "--token",
      "x",
      "--identity",
      join(dir, "r1.pem"),
      "--trust",
      trust,
      "--log-level",
      "silent",
    ]);

  it("stops before joining on a malformed trust file, naming the line", () => {
    const trust = join(dir, "trust");
    writeFileSync(trust, "# fleet\nrover-2 sha-256 AB:CD\n", { mode: 0o644 });
    expect(rover(trust)).toEqual({
      code: 1,
      stdout: "",
      stderr: `roverlink: ${trust} line 2: not a sha-256 fingerprint: "AB:CD"\n`,
    });
  });

  it("stops before joining on a missing trust file", () => {
    const r = rover(join(dir, "absent"));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^roverlink: cannot read trust file .*absent: ENOENT.*\n$/);
  });
});
