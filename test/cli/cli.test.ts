/**
 * The real `roverlink` CLI as a user runs it (node rover/cli.ts ...): help, one-line errors,
 * tokens, and two rovers probing each other through a local edge.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DEV_SECRET,
  freePort,
  type LocalEdge,
  REPO_ROOT,
  startLocalEdge,
} from "../../rover/local-edge.ts";
import { mintToken, verifyToken } from "../../shared/token.ts";
import { commandLines, processesMentioning } from "./proc.ts";
import { CLI, cliEnv } from "./rover-process.ts";

const SECRET = "cli-test-secret-cli-test-secret-cli";
/** Rovers keep durable state under $XDG_STATE_HOME: a fresh one per run, not the user's. */
const STATE_HOME = mkdtempSync(join(tmpdir(), "cli-state-"));

/** Run the CLI as a user would; `child` to signal it, `result` once it exited. */
function spawnRoverlink(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000) {
  const child = spawn(process.execPath, [CLI, ...args], {
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
  return { child, result };
}

function roverlink(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000) {
  return spawnRoverlink(args, env, timeoutMs).result;
}

/** `roverlink edge ARGS` until it says where it listens (60 s at most); stop it with SIGINT. */
async function runEdge(args: string[], env: Record<string, string>, cwd = REPO_ROOT) {
  const child = spawn(process.execPath, [CLI, "edge", ...args], {
    cwd,
    env: { ...process.env, ...env },
  });
  const out = { stdout: "", stderr: "" };
  child.stdout.on("data", (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out.stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  const deadline = Date.now() + 60_000;
  while (!out.stdout.includes("listening on") && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 100));
  return { child, exited, out };
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
    // A map name the edge would refuse is said here, naming the flag (it was a 400 at join).
    expectOneLineError(
      await roverlink(["rover", "--room", "r", "--id", "a", "--position", `1,2,${"m".repeat(65)}`]),
      /'--position <x,y\[,map\]>' argument .* is invalid\. map: Too big: expected string to have <=64 characters/,
    );
    expectOneLineError(
      await roverlink(["rover", "--room", "r", "--id", "a", "--link-profile", "satellite"]),
      /'--link-profile <profile>' argument 'satellite' is invalid\. Allowed choices are cellular, lan/,
    );
    expectOneLineError(await roverlink(["rover", "--room", "r b", "--id", "a"]), /room must match/);
    // A rover's own token is never for every room.
    expectOneLineError(await roverlink(["rover", "--room", "*", "--id", "a"]), /room must match/);
    expectOneLineError(await roverlink(["rover", "--room", "r", "--id", "a"]), /no edge/);
    // Timers past Node's 2^31 - 1 ms fired at once: --duration 2200000 stopped the rover at once.
    expectOneLineError(
      await roverlink(["rover", "--room", "r", "--id", "a", "--duration", "2200000"]),
      /--duration must be at most 2147483 s \(24\.8 days\); to run longer, give none/,
    );
    expectOneLineError(
      await roverlink(["rover", "--room", "r", "--id", "a", "--probe", "0.0000001"]),
      /--probe is at least 1\/2147483/,
    );
    expectOneLineError(
      await roverlink(["rover", "--room", "r", "--id", "a", "--backup-check-ms", "3e9"]),
      /--backup-check-ms must be at most 2147483000/,
    );
    expectOneLineError(
      await roverlink([
        "rover",
        ...["--edge", "http://127.0.0.1:9", "--room", "r", "--id", "a"],
        ...["--forward", "tcp:2222:a:22"],
      ]),
      /--forward to a is this rover's own id/,
    );
    expectOneLineError(
      await roverlink([
        "rover",
        ...["--edge", "http://127.0.0.1:9", "--room", "r", "--id", "a"],
        ...["--max-file-size", "5M"],
      ]),
      /--max-file-size needs --receive-dir/,
    );
    // A bad edge from the environment is named (it exited 1 without a word).
    expectOneLineError(
      await roverlink(["rover", "--room", "r", "--id", "a"], { ROVERLINK_EDGE: "bogus" }),
      /^roverlink: ROVERLINK_EDGE "bogus" must be an http\(s\) URL/,
    );
    expectOneLineError(await roverlink(["token", "--room", "r", "--peer", "a"]), /no secret/);
    expectOneLineError(
      await roverlink(["rover", "--edge", "http://127.0.0.1:9", "--room", "r", "--id", "a"], {
        ROVERLINK_LOG_LEVEL: "verbose",
        ROVERLINK_TOKEN: "t",
      }),
      /ROVERLINK_LOG_LEVEL must be one of debug, info/,
    );
    // The outbox opens before joining: a state dir that cannot be made is one line.
    expectOneLineError(
      await roverlink([
        "rover",
        ...["--edge", "http://127.0.0.1:9", "--room", "r", "--id", "a", "--token", "t"],
        ...["--state-dir", "/etc/hostname/roverlink"],
      ]),
      /outbox \/etc\/hostname\/roverlink\/outbox\/r\/a\.sqlite: .*ENOTDIR/,
    );
    expectOneLineError(
      await roverlink(["rover", "--room", "r", "--id", "a", "--metrics-port", "70000"]),
      /--metrics-port.*1\.\.65535/,
    );
    expectOneLineError(
      await roverlink(["rover", "--room", "r", "--id", "a", "--probe", "100000"]),
      /--probe is at most 1000/,
    );
    expectOneLineError(
      await roverlink(["rover", "--room", "r", "--id", "a", "--forward", "tcp:2222:b"]),
      /--forward .* must be <tcp\|udp>:<local port>:<peer>:<remote port>/,
    );
    expectOneLineError(
      await roverlink(["rover", "--room", "r", "--id", "a", "--forward", "sctp:1:b:2"]),
      /protocol must be tcp or udp/,
    );
    expectOneLineError(
      await roverlink(["rover", "--room", "r", "--id", "a", "--allow-forward", "tcp:22,udp:0"]),
      /--allow-forward .*port must be a port number 1\.\.65535/,
    );
    // Checked before joining (the edge here is never contacted).
    expectOneLineError(
      await roverlink([
        "rover",
        ...["--edge", "http://127.0.0.1:9", "--room", "r", "--id", "a", "--token", "t"],
        ...["--stats-json", "/nonexistent/dir/stats.json"],
      ]),
      /--stats-json: cannot write \/nonexistent\/dir\/stats.json/,
    );
    // Found by writing, not by access(2), which lets root "write" to /proc: the run's figures
    // were lost at its end, after the rover had joined.
    expectOneLineError(
      await roverlink([
        "rover",
        ...["--edge", "http://127.0.0.1:9", "--room", "r", "--id", "a", "--token", "t"],
        ...["--stats-json", "/proc/roverlink-stats.json"],
      ]),
      /--stats-json: cannot write \/proc\/roverlink-stats\.json: /,
    );
    // A directory too (it failed only at exit, the figures lost, the line without its option).
    const nowhere = ["--edge", "http://127.0.0.1:9", "--room", "r", "--token", "t"];
    expectOneLineError(
      await roverlink(["rover", ...nowhere, "--id", "a", "--stats-json", tmpdir()]),
      new RegExp(`--stats-json: ${tmpdir()} is a directory`),
    );
    // --connect is a peer id, and not our own.
    expectOneLineError(
      await roverlink(["rover", ...nowhere, "--id", "a", "--connect", "bad peer"]),
      /--connect must match/,
    );
    expectOneLineError(
      await roverlink(["rover", ...nowhere, "--id", "a", "--connect", "a"]),
      /--connect a is this rover's own id/,
    );
    // send: what needs nothing from the room is refused before joining it (the edge here is
    // never contacted): sending as the receiver took its seat; a bad name opened a link first.
    const file = join(mkdtempSync(join(tmpdir(), "roverlink-send-")), "map.pgm");
    writeFileSync(file, "P5 1 1 255\n\0");
    expectOneLineError(
      await roverlink(["send", file, ...nowhere, "--to", "rover-7", "--id", "rover-7"]),
      /--to rover-7 is this sender's own id/,
    );
    expectOneLineError(
      await roverlink(["send", file, ...nowhere, "--to", "rover-7", "--name", "../evil"]),
      /cannot send "\.\.\/evil": file name has a path separator/,
    );
    // An empty name was the file's own, silently; a newline in one made the error two lines.
    expectOneLineError(
      await roverlink(["send", file, ...nowhere, "--to", "rover-7", "--name", ""]),
      /--name is empty/,
    );
    expectOneLineError(
      await roverlink(["send", file, ...nowhere, "--to", "rover-7", "--name", "a\nb"]),
      /cannot send "a\\nb": /,
    );
    expectOneLineError(
      await roverlink(["send", file, ...nowhere, "--to", "rover-7", "--stats-json", tmpdir()]),
      /--stats-json: .* is a directory/,
    );
    expectOneLineError(
      await roverlink(["token", "--room", "r", "--peer", "a", "--secret", SECRET, "--ttl", "soon"]),
      /ttl/i,
    );
    // The bad flag is named even with no secret set (before: "no secret").
    expectOneLineError(
      await roverlink(["token", "--room", "r", "--peer", "a", "--ttl", "10x"]),
      /invalid TTL "10x"/,
    );
    // A secret no edge runs with signs nothing: its tokens could never be accepted.
    expectOneLineError(
      await roverlink(["token", "--room", "r", "--peer", "a", "--secret", "short"]),
      /--secret is 5 bytes: no edge runs with a secret under 32 bytes/,
    );
    expectOneLineError(
      await roverlink(["rover", "--edge", "http://127.0.0.1:9", "--room", "r", "--id", "a"], {
        ROVERLINK_SECRET: "short-secret",
      }),
      /ROVERLINK_SECRET is 12 bytes: no edge runs with a secret under 32 bytes/,
    );
  }, 120_000); // about 20 CLI processes, each a Node start: slow on a loaded machine

  it("--version prints the package version", async () => {
    const r = await roverlink(["--version"]);
    expect(r.code).toBe(0);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8"));
    expect(r.stdout.trim()).toBe(pkg.version);
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

  it("edge runs the local edge with a development secret until SIGINT, leaving nothing behind", async () => {
    const port = await freePort();
    const persist = mkdtempSync(join(tmpdir(), "roverlink-cli-edge-"));
    const { child, exited, out } = await runEdge(
      ["--port", String(port), "--persist-to", persist],
      { ROVERLINK_SECRET: "" },
    );
    try {
      expect(out.stdout).toContain(`listening on http://127.0.0.1:${port}`);
      expect(out.stderr).toMatch(
        /^roverlink: ROVERLINK_SECRET is not set: using a development secret/,
      );
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect((await health.text()).trim()).toBe("ok");
      // The development secret is the one the edge checks tokens with.
      const token = await mintToken({
        secret: DEV_SECRET,
        sub: "me",
        room: "demo",
        ttlSeconds: 60,
      });
      const peers = await fetch(`http://127.0.0.1:${port}/v1/rooms/demo/peers`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      expect(peers.status).toBe(200);
    } finally {
      child.kill("SIGINT");
    }
    expect(await exited).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    expect(processesMentioning(persist)).toEqual([]);
  });

  it("edge --persist-to with a relative path keeps the state where it was run from; SIGHUP stops it cleanly", async () => {
    const port = await freePort();
    const here = mkdtempSync(join(tmpdir(), "roverlink-cli-cwd-"));
    const name = `rel-state-${port}`;
    const { child, exited, out } = await runEdge(
      ["--port", String(port), "--persist-to", name],
      { ROVERLINK_SECRET: "" },
      here,
    );
    try {
      expect(out.stdout).toContain(`(state in ${join(here, name)};`);
      const token = await mintToken({
        secret: DEV_SECRET,
        sub: "me",
        room: "demo",
        ttlSeconds: 60,
      });
      const joined = await fetch(`http://127.0.0.1:${port}/v1/rooms/demo/peers`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: "{}",
      });
      expect(joined.status).toBe(201);
    } finally {
      // A closed terminal (SIGHUP) stops it as Ctrl-C does: it killed the CLI at once, and
      // wrangler and workerd ran on.
      child.kill("SIGHUP");
    }
    expect(await exited).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    expect(processesMentioning(join(here, name))).toEqual([]);
    // The room's state is under the directory it was run from, not in the checkout.
    expect(existsSync(join(here, name))).toBe(true);
    expect(existsSync(join(REPO_ROOT, name))).toBe(false);
  });

  it("edge with a state directory it cannot make is one line, at once (it hung 90 s)", async () => {
    // No secret set either: the development secret's notice waits until an edge is up.
    const port = String(await freePort());
    const r = await roverlink(
      ["edge", "--port", port, "--persist-to", "/proc/roverlink-nope"],
      {},
      30_000,
    );
    expectOneLineError(r, /--persist-to \/proc\/roverlink-nope: cannot use it: .*ENOENT/);
  });

  it("edge on a taken port is one line, before wrangler starts", async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as { port: number }).port;
    const persist = mkdtempSync(join(tmpdir(), "roverlink-cli-edge-"));
    try {
      const r = await roverlink(
        ["edge", "--port", String(port), "--persist-to", persist],
        { ROVERLINK_SECRET: SECRET },
        60_000,
      );
      expectOneLineError(
        r,
        new RegExp(
          `127\\.0\\.0\\.1:${port} is already in use \\(another edge, or another program\\)`,
        ),
      );
      expect(processesMentioning(persist)).toEqual([]);
    } finally {
      blocker.close();
    }
  });

  it("edge refuses the development secret beyond loopback, and short secrets, starting nothing", async () => {
    const port = await freePort();
    const persist = mkdtempSync(join(tmpdir(), "roverlink-cli-refused-"));
    const edge = ["edge", "--port", String(port), "--persist-to", persist];
    for (const ip of ["0.0.0.0", "::", "192.0.2.7"]) {
      expectOneLineError(
        await roverlink([...edge, "--ip", ip]),
        new RegExp(
          `refusing to serve ${ip} with the public development secret: set ROVERLINK_SECRET`,
        ),
      );
    }
    // Named explicitly, the published development secret is refused there too.
    expectOneLineError(
      await roverlink([...edge, "--ip", "0.0.0.0"], { ROVERLINK_SECRET: DEV_SECRET }),
      /refusing to serve 0\.0\.0\.0/,
    );
    expectOneLineError(
      await roverlink(edge, { ROVERLINK_SECRET: "too-short" }),
      /ROVERLINK_SECRET is 9 bytes; use at least 32 random bytes/,
    );
    expectOneLineError(
      await roverlink([...edge, "--var", "ROVERLINK_SECRET:also-too-short"]),
      /ROVERLINK_SECRET is 14 bytes/,
    );
    // A variable the env file cannot hold: that one line only (no development-secret notice
    // first, as when it was found only while writing the file).
    const badVar = await roverlink([...edge, "--var", "FOO BAR:1"]);
    expect(badVar.code).toBe(1);
    expect(badVar.stderr.trim().split("\n")).toEqual([
      'roverlink: worker variable name "FOO BAR" must match [A-Za-z_][A-Za-z0-9_]*',
    ]);
    // Nothing was started: no wrangler, nothing listening.
    expect(processesMentioning(persist)).toEqual([]);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });

  it("edge takes secrets from the environment; none reaches a wrangler or workerd command line", async () => {
    const port = await freePort();
    const persist = mkdtempSync(join(tmpdir(), "roverlink-cli-secrets-"));
    const turnSecret = "cli-turn-secret-cli-turn-secret-4f1d";
    const onPurpose = "cf-token-given-on-the-command-line-9c2e";
    const { child, exited, out } = await runEdge(
      [
        "--port",
        String(port),
        "--persist-to",
        persist,
        "--var",
        "TURN_URLS:turn:127.0.0.1:3478",
        "--var",
        `CF_TURN_API_TOKEN:${onPurpose}`,
      ],
      { ROVERLINK_SECRET: SECRET, TURN_SECRET: turnSecret },
    );
    try {
      expect(out.stdout).toContain(`listening on http://127.0.0.1:${port}`);
      // No development secret; one warning for the secret given with --var.
      expect(out.stderr.trim().split("\n")).toEqual([
        "roverlink: --var CF_TURN_API_TOKEN puts a secret in the process list; set CF_TURN_API_TOKEN in the environment instead",
      ]);
      const lines = commandLines();
      const edgeProcesses = [...lines].filter(([, cmd]) => cmd.includes(persist));
      expect(edgeProcesses.length).toBeGreaterThan(1); // roverlink and wrangler at least
      for (const [pid, cmd] of lines) {
        for (const secret of [SECRET, turnSecret])
          expect({ pid, leak: cmd.includes(secret) }).toEqual({ pid, leak: false });
        // The one given on roverlink's own command line goes no further.
        if (pid !== child.pid)
          expect({ pid, leak: cmd.includes(onPurpose) }).toEqual({ pid, leak: false });
      }
      // The edge checks tokens with the secret from the environment.
      const peers = `http://127.0.0.1:${port}/v1/rooms/demo/peers`;
      const mint = (secret: string) =>
        mintToken({ secret, sub: "me", room: "demo", ttlSeconds: 60 });
      const ok = await fetch(peers, { headers: { Authorization: `Bearer ${await mint(SECRET)}` } });
      expect(ok.status).toBe(200);
      const dev = await fetch(peers, {
        headers: { Authorization: `Bearer ${await mint(DEV_SECRET)}` },
      });
      expect(dev.status).toBe(401);
    } finally {
      child.kill("SIGINT");
    }
    expect(await exited).toBe(0);
    expect(processesMentioning(persist)).toEqual([]);
  });

  describe("against a local edge", () => {
    let edge: LocalEdge;
    beforeAll(async () => {
      edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET, MAX_PEERS_PER_ROOM: "2" } });
    });
    afterAll(async () => {
      await edge?.stop();
    });

    it("a second rover with the same id: the first stops with one line and exit 1, and the second stays present", async () => {
      const env = { ROVERLINK_SECRET: SECRET };
      const args = ["rover", "--edge", edge.url, "--room", "dup", "--id", "twin", "--in-memory"];
      const listed = async () => {
        const token = await mintToken({ secret: SECRET, sub: "ops", room: "dup", ttlSeconds: 60 });
        const r = await fetch(`${edge.url}/v1/rooms/dup/peers`, {
          headers: { Authorization: `Bearer ${token}` },
        });
        return ((await r.json()) as { peers: { id: string }[] }).peers.map((p) => p.id);
      };
      const first = spawnRoverlink(args, env, 60_000);
      const second = { current: null as ReturnType<typeof spawnRoverlink> | null };
      try {
        const deadline = Date.now() + 20_000;
        while (!(await listed()).includes("twin") && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 200));
        second.current = spawnRoverlink(args, env, 60_000);
        const r = await first.result;
        expect(r.code).toBe(1);
        expect(r.stderr.trim().split("\n").at(-1)).toBe(
          'roverlink: another process joined room "dup" as "twin": two rovers cannot share an id (give each its own --id); this one stops',
        );
        // It did not leave: the presence is the second's.
        await new Promise((r) => setTimeout(r, 500));
        expect(await listed()).toContain("twin");
      } finally {
        first.child.kill("SIGINT");
        second.current?.child.kill("SIGINT");
      }
      expect((await second.current?.result)?.code).toBe(0);
    });

    it("an --edge that is not the edge's base URL is one line that says so", async () => {
      const r = await roverlink(
        ["rover", "--edge", `${edge.url}/healthz`, "--room", "r", "--id", "a", "--duration", "1"],
        { ROVERLINK_SECRET: SECRET },
      );
      expectOneLineError(
        r,
        new RegExp(
          `POST ${edge.url}/healthz/v1/rooms/r/peers: 404, no such route: is --edge the edge's base URL`,
        ),
      );
    });

    it("a token signed with another secret is refused in one line", async () => {
      const r = await roverlink(
        ["rover", "--edge", edge.url, "--room", "r", "--id", "a", "--duration", "1"],
        {
          ROVERLINK_SECRET: "not-the-edge-secret-not-the-edge-secret",
        },
      );
      expectOneLineError(r, /token refused by the edge: token signature does not match/);
      const rover = ["rover", "--edge", edge.url, "--room", "r", "--id", "a", "--token"];
      const expired = await mintToken({
        secret: SECRET,
        sub: "a",
        room: "r",
        ttlSeconds: 60,
        nowS: Math.floor(Date.now() / 1000) - 3600,
      });
      expectOneLineError(await roverlink([...rover, expired]), /token refused.*expired/);
      const otherRoom = await mintToken({ secret: SECRET, sub: "a", room: "x", ttlSeconds: 60 });
      expectOneLineError(await roverlink([...rover, otherRoom]), /token not allowed here/);
    });

    it("a rover minting its own token warns once when the edge is beyond loopback", async () => {
      const warning = /^ROVERLINK_SECRET is on this rover: anyone holding it can mint admin tokens/;
      const logs = (stderr: string) =>
        stderr
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l) as { level: number; msg: string });
      // 0.0.0.0 reaches this machine's loopback, yet it is not a loopback address: a rover
      // cannot tell it from an edge across the network, so it warns.
      const wide = `http://0.0.0.0:${edge.port}`;
      const args = ["--room", "warn", "--duration", "1", "--log-level", "info"];
      const selfMinted = await roverlink(["rover", "--edge", wide, "--id", "w1", ...args], {
        ROVERLINK_SECRET: SECRET,
      });
      expect(selfMinted.code).toBe(0);
      const lines = logs(selfMinted.stderr);
      expect(lines.filter((l) => warning.test(l.msg))).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: 40 });
      expect(lines[0]?.msg).toMatch(warning);
      expect(lines[0]?.msg).toContain("ROVERLINK_TOKEN");
      expect(lines.some((l) => l.msg === "joined")).toBe(true);
      // With its own pre-minted token, or on loopback: no warning.
      const token = await mintToken({ secret: SECRET, sub: "w2", room: "warn", ttlSeconds: 60 });
      const given = await roverlink([
        "rover",
        "--edge",
        wide,
        "--id",
        "w2",
        "--token",
        token,
        ...args,
      ]);
      const local = await roverlink(["rover", "--edge", edge.url, "--id", "w3", ...args], {
        ROVERLINK_SECRET: SECRET,
      });
      for (const r of [given, local]) {
        expect(r.code).toBe(0);
        expect(logs(r.stderr).some((l) => l.msg === "joined")).toBe(true);
        expect(logs(r.stderr).filter((l) => warning.test(l.msg))).toEqual([]);
      }
    });

    it("a rover warns once when its edge is beyond loopback and hands out no STUN or TURN", async () => {
      const warning = /^the edge hands out no STUN or TURN servers: only peers on the same network/;
      const warnings = (stderr: string) =>
        stderr
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l) as { level: number; msg: string })
          .filter((l) => warning.test(l.msg));
      const args = ["--room", "ice", "--duration", "1", "--log-level", "info", "--in-memory"];
      // 0.0.0.0 reaches this machine, yet a rover cannot tell it from an edge across the network.
      const wide = await roverlink(
        ["rover", "--edge", `http://0.0.0.0:${edge.port}`, "--id", "i1", ...args],
        { ROVERLINK_SECRET: SECRET },
      );
      expect(wide.code).toBe(0);
      expect(wide.stderr).toContain('"msg":"joined"');
      const said = warnings(wide.stderr);
      expect(said).toHaveLength(1);
      expect(said[0]?.level).toBe(40);
      expect(said[0]?.msg).toContain("set STUN_URLS and TURN on the edge");
      // On loopback every peer is on the same machine: nothing to warn about.
      const local = await roverlink(["rover", "--edge", edge.url, "--id", "i2", ...args], {
        ROVERLINK_SECRET: SECRET,
      });
      expect(local.code).toBe(0);
      expect(local.stderr).toContain('"msg":"joined"');
      expect(warnings(local.stderr)).toEqual([]);
      // An edge that hands out a STUN server, beyond loopback: no warning either.
      const stun = await startLocalEdge({
        vars: { ROVERLINK_SECRET: SECRET, STUN_URLS: "stun:127.0.0.1:3478" },
      });
      try {
        const given = await roverlink(
          ["rover", "--edge", `http://0.0.0.0:${stun.port}`, "--id", "i3", ...args],
          { ROVERLINK_SECRET: SECRET },
        );
        expect(given.code).toBe(0);
        expect(given.stderr).toContain('"msg":"joined"');
        expect(warnings(given.stderr)).toEqual([]);
      } finally {
        await stun.stop();
      }
    }, 120_000);

    it("on a terminal: readable logs and a live status line rewritten in place", async () => {
      // util-linux `script` gives the CLI a real pseudo-terminal.
      const cmd = [process.execPath, CLI, "rover", "--edge", edge.url, "--room", "tty"]
        .concat(["--id", "solo", "--duration", "2.5"])
        .join(" ");
      const out = await new Promise<{ code: number | null; text: string }>((resolve) => {
        const child = spawn("script", ["-qec", cmd, "/dev/null"], {
          cwd: REPO_ROOT,
          env: {
            ...process.env,
            ROVERLINK_SECRET: SECRET,
            ROVERLINK_TOKEN: "",
            COLUMNS: "200",
            XDG_STATE_HOME: STATE_HOME,
          },
        });
        let text = "";
        child.stdout.on("data", (d: Buffer) => (text += d.toString()));
        child.on("exit", (code) => resolve({ code, text }));
      });
      expect(out.code).toBe(0);
      expect(out.text).toContain("\r\x1b[2Ksolo: no links yet");
      expect(out.text).toMatch(/INFO.*\(roverlink\).*joined/);
      expect(out.text).not.toContain('{"level":');
    });

    it("a forward port in use is one line, before joining", async () => {
      const blocker = createServer();
      await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
      const port = (blocker.address() as { port: number }).port;
      try {
        const r = await roverlink(
          [
            "rover",
            "--edge",
            "http://127.0.0.1:9",
            "--room",
            "m",
            "--id",
            "a",
            "--token",
            "t",
          ].concat(["--forward", `tcp:${port}:b:22`]),
        );
        expectOneLineError(
          r,
          new RegExp(
            `--forward tcp:${port}:b:22: cannot listen on 127.0.0.1:${port}: address already in use \\(EADDRINUSE\\)`,
          ),
        );
      } finally {
        blocker.close();
      }
    });

    it("--socket on a path that is not a socket is one line, before joining", async () => {
      const dir = mkdtempSync(join(tmpdir(), "roverlink-cli-"));
      const path = join(dir, "not-a-socket");
      writeFileSync(path, "");
      const r = await roverlink(
        [
          "rover",
          "--edge",
          "http://127.0.0.1:9",
          "--room",
          "m",
          "--id",
          "a",
          "--token",
          "t",
        ].concat(["--socket", path]),
      );
      expectOneLineError(r, new RegExp(`--socket ${path}: exists and is not a socket`));
    });

    it("--socket without a path: under $XDG_RUNTIME_DIR, 0600 in 0700, a client is greeted, gone at exit", async () => {
      const runtime = mkdtempSync(join(tmpdir(), "roverlink-run-"));
      const path = join(runtime, "roverlink", "sockroom", "solo.sock");
      const rover = spawnRoverlink(
        ["rover", "--edge", edge.url, "--room", "sockroom", "--id", "solo", "--socket"].concat([
          "--duration",
          "4",
        ]),
        { ROVERLINK_SECRET: SECRET, XDG_RUNTIME_DIR: runtime },
      );
      const deadline = Date.now() + 20_000;
      while (!existsSync(path) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(statSync(join(runtime, "roverlink", "sockroom")).mode & 0o777).toBe(0o700);
      const hello = await new Promise<string>((resolve, reject) => {
        const c = connect(path, () => c.write('{"t":"hello","v":1,"name":"cli-test"}\n'));
        let got = "";
        c.on("data", (d: Buffer) => {
          got += d.toString();
          if (got.includes("\n")) {
            c.destroy();
            resolve(got.split("\n")[0] ?? "");
          }
        });
        c.on("error", reject);
      });
      expect(JSON.parse(hello)).toMatchObject({ t: "hello", v: 1, self: "solo", room: "sockroom" });
      const r = await rover.result;
      expect(r.code).toBe(0);
      const l = r.stderr
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as { msg: string; path?: string });
      expect(l.find((x) => x.msg === "message socket listening")).toMatchObject({ path });
      expect(l.some((x) => x.msg === "message socket client attached")).toBe(true);
      expect(existsSync(path)).toBe(false);
    });

    it("a metrics port in use is one line", async () => {
      const blocker = createServer();
      await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
      const port = (blocker.address() as { port: number }).port;
      try {
        const r = await roverlink(
          ["rover", "--edge", edge.url, "--room", "m", "--id", "a", "--metrics-port", String(port)],
          { ROVERLINK_SECRET: SECRET },
        );
        expectOneLineError(r, new RegExp(`metrics port ${port}: .*in use`));
      } finally {
        blocker.close();
      }
    });

    it("--connect to a peer not in the room says it waits for it", async () => {
      const r = await roverlink(
        [
          ...["rover", "--edge", edge.url, "--room", "cli-wait", "--log-level", "info"],
          ...["--id", "alpha", "--connect", "ghost", "--duration", "1"],
        ],
        { ROVERLINK_SECRET: SECRET },
      );
      expect(r.code, r.stderr).toBe(0);
      const logs = r.stderr
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { msg: string; peer?: string });
      expect(logs).toContainEqual(
        expect.objectContaining({ msg: "waiting for the peer to join the room", peer: "ghost" }),
      );
    });

    it("two rovers probe and echo through the edge: nothing lost; a full room is one line", async () => {
      const dir = mkdtempSync(join(tmpdir(), "roverlink-cli-"));
      const stats = join(dir, "stats.json");
      const env = { ROVERLINK_SECRET: SECRET };
      const common = ["--edge", edge.url, "--room", "cli", "--log-level", "info"];
      const metricsPort = await freePort();
      // bravo runs until a signal; alpha for --duration.
      const bravo = spawnRoverlink(
        ["rover", ...common, "--id", "bravo", "--echo", "--metrics-port", String(metricsPort)],
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
      // bravo's Prometheus metrics: its link to alpha is up and it echoes on control.
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      expect(text).toContain('roverlink_link_state{peer="alpha",state="up"} 1');
      // bravo mints its own tokens and has no camera: no expiry to alert on, no video figures
      // (both read 0 before, and the documented expiry alert fired for every such rover).
      expect(text).not.toMatch(/^roverlink_token_expiry_timestamp_seconds /m);
      expect(text).not.toMatch(/^roverlink_video_/m);
      const counter = (name: string) =>
        Number(
          text.match(new RegExp(`^${name}\\{peer="alpha",channel="control"\\} (\\S+)$`, "m"))?.[1],
        );
      expect(counter("roverlink_messages_received_total")).toBeGreaterThan(0);
      expect(counter("roverlink_messages_sent_total")).toBe(
        counter("roverlink_messages_received_total"),
      );
      expect(text).toMatch(/^roverlink_link_rtt_seconds\{peer="alpha"\} [0-9.e-]+$/m);
      // bravo echoes (acks carry samples): a fresh figure, its age under the probes' period.
      const age = Number(
        text.match(/^roverlink_link_rtt_age_seconds\{peer="alpha"\} (\S+)$/m)?.[1],
      );
      expect(age).toBeGreaterThanOrEqual(0);
      expect(age).toBeLessThan(5);
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
      // Logs are JSON lines on stderr (not a terminal); alpha logs its figures on exit.
      const logs = a.stderr
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { level: number; msg: string; sent?: number });
      expect(logs.find((l) => l.msg === "probe figures")).toMatchObject({ sent: f.sent, lost: 0 });

      // SIGINT stops bravo cleanly: exit 0, and it left the room.
      bravo.child.kill("SIGINT");
      const b = await bravo.result;
      expect(b.code).toBe(0);
      for (const line of b.stderr.trim().split("\n")) expect(() => JSON.parse(line)).not.toThrow();
      const admin = await mintToken({
        secret: SECRET,
        sub: "ops",
        room: "cli",
        role: "admin",
        ttlSeconds: 60,
      });
      const left = await fetch(`${edge.url}/v1/rooms/cli/peers`, {
        headers: { Authorization: `Bearer ${admin}` },
      });
      expect(await left.json()).toEqual({ peers: [] });
    });
  });
});
