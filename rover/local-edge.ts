/**
 * Run the edge locally: the same Worker on workerd through `wrangler dev`, Durable Object state
 * on local disk. Used by `roverlink edge`, `npm start` and the tests. Loopback by default; no
 * Request.cf download and no metrics (nothing leaves the machine). Worker variables reach wrangler
 * in a private env file, never on a command line; the development secret serves loopback only.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve as resolvePath } from "node:path";
import { stripVTControlCharacters } from "node:util";
import { DEV_SECRET } from "../shared/token.ts";
import {
  EdgeVarsError,
  envFileLine,
  MIN_SECRET_BYTES,
  SECRET_VARS,
  writeVarsFile,
} from "./edge-vars.ts";
import { errnoText } from "./errno.ts";
import { isLoopbackHost } from "./loopback.ts";
import { makeDirs } from "./make-dirs.ts";
import { REPO_ROOT } from "./version.ts";
import { checkDirWritable } from "./write-check.ts";

export { DEV_SECRET, REPO_ROOT };

export interface LocalEdgeOptions {
  ip?: string;
  /** 0 or undefined: a free port. */
  port?: number;
  /**
   * Worker vars. ROVERLINK_SECRET defaults to $ROVERLINK_SECRET, else (loopback only) a
   * development secret; a configured one must be at least MIN_SECRET_BYTES long.
   */
  vars?: Record<string, string>;
  /** Directory for Durable Object state; default a fresh temporary directory, removed on stop. */
  persistTo?: string;
  /** Receives wrangler's output lines. */
  log?: (line: string) => void;
  /** Give up waiting for /healthz after this long (default 90 s: the first build is slow). */
  startTimeoutMs?: number;
  /** Aborting while the edge starts stops it and rejects with LocalEdgeError. */
  signal?: AbortSignal;
}

export interface LocalEdge {
  url: string;
  port: number;
  /** wrangler's pid, also the id of the process group it and its workerd run in. */
  pid: number;
  persistTo: string;
  /** True when the development secret is in use. */
  devSecret: boolean;
  /** SIGTERM to wrangler's group; SIGKILL to what is left after `graceMs` (default 5 s). */
  stop(graceMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

export class LocalEdgeError extends Error {}

/**
 * A shell that takes the edge's process group down and removes its files when this process ends
 * without running its exit handlers (SIGKILL, a V8 abort, the OOM killer): it waits on a pipe
 * only we write to, which the kernel closes when we die. Without it, a crashed `npm start` or
 * benchmark left wrangler and workerd running, holding the port, with the secrets file and the
 * rooms' state in /tmp. Null where there is no /bin/sh (the exit handler still covers the rest).
 */
function startReaper(pgid: number, paths: string[]): ChildProcess | null {
  if (!existsSync("/bin/sh")) return null;
  const script =
    // Signal numbers: dash's kill takes neither `--` nor `-s NAME` before a negative group id.
    'read _; kill -15 "-$1" 2>/dev/null; sleep 5; kill -9 "-$1" 2>/dev/null; shift; rm -rf -- "$@"';
  // Detached (a session of its own): a signal to our process group (a closed terminal's SIGHUP,
  // `kill -9 -- -pgid`) killed it with us, and wrangler, in its own group, ran on.
  const r = spawn("/bin/sh", ["-c", script, "roverlink-edge-reaper", String(pgid), ...paths], {
    stdio: ["pipe", "ignore", "ignore"],
    detached: true,
  });
  r.on("error", () => {}); // could not start: the exit handler is what is left
  // Neither the shell nor its pipe may keep this process alive.
  r.unref();
  (r.stdin as unknown as { unref?(): void } | null)?.unref?.();
  return r;
}

/** wrangler's most telling line ("Address already in use ..."), for a one-line error. */
function reason(tail: readonly string[]): string {
  if (tail.some(bundlerCrashed)) return "wrangler's bundler (esbuild) crashed";
  const errors = tail.filter((l) => /\[ERROR\]|Error:/.test(l));
  const line = errors[0] ?? tail.filter((l) => !/Logs were written/.test(l)).at(-1) ?? "";
  return line.replace(/^\W*\[ERROR\]\s*/, "").trim();
}

export async function freePort(ip = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, ip, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Fails when something already listens on ip:port. wrangler would report it only after a while,
 * and until then that other server's /healthz could pass for this edge's.
 */
async function checkPortFree(ip: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const srv = createServer();
    srv.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        e.code === "EADDRINUSE"
          ? new LocalEdgeError(
              `${ip}:${port} is already in use (another edge, or another program): pick another --port`,
            )
          : new LocalEdgeError(`cannot listen on ${ip}:${port}: ${errnoText(e)}`),
      ),
    );
    srv.listen(port, ip, () => srv.close(() => resolve()));
  });
}

function wranglerBin(): string {
  // The installed package carries the agent and the CLI, not the Worker (deployed from a checkout).
  if (!existsSync(join(REPO_ROOT, "worker")))
    throw new LocalEdgeError(
      "the local edge runs from a clone of the repository (it needs worker/ and wrangler): git clone the roverlink repository, npm install, then npx roverlink edge",
    );
  const bin = join(REPO_ROOT, "node_modules", ".bin", "wrangler");
  if (!existsSync(bin)) throw new LocalEdgeError("wrangler is not installed: run npm install");
  return bin;
}

/**
 * The worker's vars with ROVERLINK_SECRET filled in, or why the edge must not start: no secret
 * (or the published development one) beyond loopback, or a secret too short to sign tokens with.
 */
export function edgeVars(
  ip: string,
  given: Record<string, string> = {},
): { vars: Record<string, string>; devSecret: boolean } {
  const vars: Record<string, string> = { ...given };
  if (!vars.ROVERLINK_SECRET) vars.ROVERLINK_SECRET = process.env.ROVERLINK_SECRET || DEV_SECRET;
  const devSecret = vars.ROVERLINK_SECRET === DEV_SECRET;
  if (devSecret && !isLoopbackHost(ip)) {
    throw new LocalEdgeError(
      `refusing to serve ${ip} with the public development secret: set ROVERLINK_SECRET (${MIN_SECRET_BYTES}+ random bytes, e.g. openssl rand -base64 32)`,
    );
  }
  const bytes = Buffer.byteLength(vars.ROVERLINK_SECRET);
  if (bytes < MIN_SECRET_BYTES) {
    throw new LocalEdgeError(
      `ROVERLINK_SECRET is ${bytes} bytes; use at least ${MIN_SECRET_BYTES} random bytes (e.g. openssl rand -base64 32)`,
    );
  }
  // Every variable as the env file will hold it: a bad name or value is refused here, before
  // anything is printed or started, not when the file is written.
  try {
    for (const [name, value] of Object.entries(vars)) envFileLine(name, value);
  } catch (e) {
    if (e instanceof EdgeVarsError) throw new LocalEdgeError(e.message);
    throw e;
  }
  return { vars, devSecret };
}

export async function startLocalEdge(opts: LocalEdgeOptions = {}): Promise<LocalEdge> {
  // A port we picked ourselves can be taken between freePort() and wrangler binding it (other
  // edges starting at the same moment, as parallel test files do): pick another, twice at most.
  // A port the caller chose is never changed behind its back.
  // wrangler's bundler crashing is tried again too (seen once in CI, under load).
  for (let attempt = 1; ; attempt++) {
    try {
      return await startLocalEdgeOnce(opts);
    } catch (e) {
      const again =
        e instanceof LocalEdgeError && startFailureIsTransient(e.message, Boolean(opts.port));
      if (!again || attempt >= 3) throw e;
    }
  }
}

/** wrangler's bundler (esbuild, a Go program) crashed: its goroutine dump is in the output. */
const bundlerCrashed = (text: string) => /github\.com\/evanw\/esbuild\//.test(text);

/**
 * Whether a start that failed this way may succeed if tried again: the port we picked was taken
 * meanwhile (never a port the caller chose), or wrangler's bundler crashed (a Go panic in esbuild,
 * not an error in the Worker: a broken Worker fails the same way again, with `[ERROR]` lines).
 */
export function startFailureIsTransient(message: string, portChosen: boolean): boolean {
  if (/Address already in use/i.test(message)) return !portChosen;
  return bundlerCrashed(message);
}

async function startLocalEdgeOnce(opts: LocalEdgeOptions): Promise<LocalEdge> {
  const ip = opts.ip ?? "127.0.0.1";
  // Everything that can be refused is refused before anything starts.
  const { vars, devSecret } = edgeVars(ip, opts.vars);
  const bin = wranglerBin();
  let varsFile: ReturnType<typeof writeVarsFile>;
  try {
    varsFile = writeVarsFile(vars);
  } catch (e) {
    if (e instanceof EdgeVarsError) throw new LocalEdgeError(e.message);
    throw e;
  }
  let port: number;
  try {
    if (opts.port && opts.port > 0) {
      await checkPortFree(ip, opts.port);
      port = opts.port;
    } else port = await freePort(ip);
  } catch (e) {
    varsFile.remove();
    throw e;
  }
  // wrangler runs in the checkout: a relative path is the caller's, resolved from where it runs.
  const persistTo =
    opts.persistTo !== undefined
      ? resolvePath(opts.persistTo)
      : mkdtempSync(join(tmpdir(), "roverlink-edge-"));
  if (opts.persistTo !== undefined) {
    // wrangler would only hang on a directory it cannot make or write (90 s, then "did not come
    // up"): say so now.
    try {
      makeDirs(persistTo);
      checkDirWritable(persistTo);
    } catch (e) {
      varsFile.remove();
      throw new LocalEdgeError(`--persist-to ${opts.persistTo}: cannot use it: ${errnoText(e)}`);
    }
  }
  // A directory we made is ours to remove; one the caller named keeps its state.
  const ownDir = opts.persistTo === undefined ? persistTo : null;
  // With --env-file, wrangler reads exactly that file (no .dev.vars, no .env from the checkout).
  const args = ["dev", "--ip", ip, "--port", String(port), "--persist-to", persistTo];
  args.push("--env-file", varsFile.path);
  args.push("--show-interactive-dev-session=false", "--log-level", "warn");
  // Node 24 from node_modules/.bin first, whatever the caller's PATH.
  const binDir = join(REPO_ROOT, "node_modules", ".bin");
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${binDir}:${dirname(process.execPath)}:${process.env.PATH ?? ""}`,
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    WRANGLER_SEND_METRICS: "false",
    // The file, and only the file, holds the worker's secrets (wrangler also loads it into its own
    // environment, which like the file only this user can read).
    CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV: "true",
    CLOUDFLARE_INCLUDE_PROCESS_ENV: "false",
    NO_COLOR: "1",
    CI: process.env.CI ?? "1",
    // wrangler's local trace store and data explorer: the first writes every invocation into a
    // SQLite file that only grows (a third of workerd's CPU per signaling session, measured
    // 2026-12-05, docs/performance.md), the second serves the rooms' storage on the edge's own
    // port. Neither exists in production; the edge's own logs still reach the console.
    X_LOCAL_OBSERVABILITY: "false",
    X_LOCAL_EXPLORER: "false",
  };
  for (const name of [...SECRET_VARS, "ROVERLINK_TOKEN"]) delete env[name];
  const child: ChildProcess = spawn(bin, args, {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env,
  });
  const tail: string[] = [];
  const onData = (d: Buffer) => {
    for (const line of stripVTControlCharacters(d.toString()).split("\n")) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > 30) tail.shift();
      opts.log?.(line);
    }
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  const pgid = child.pid as number;
  const reaper = startReaper(pgid, [dirname(varsFile.path), ...(ownDir ? [ownDir] : [])]);
  const removeFiles = () => {
    varsFile.remove();
    if (ownDir) rmSync(ownDir, { recursive: true, force: true });
  };
  /** Signal wrangler's whole process group (wrangler and its workerd); false when it is empty. */
  const signalGroup = (sig: NodeJS.Signals | 0): boolean => {
    try {
      process.kill(-pgid, sig);
      return true;
    } catch {
      return false;
    }
  };
  // The edge runs in its own process group: take it down with us even if stop() is never called.
  const reap = () => {
    signalGroup("SIGTERM");
    removeFiles();
  };
  process.once("exit", reap);
  let stopping: Promise<void> | null = null;
  const stop = (graceMs = 5_000) => {
    stopping ??= (async () => {
      signalGroup("SIGTERM");
      // A frozen edge (stopped by a debugger or job control) acts on SIGTERM only once resumed.
      signalGroup("SIGCONT");
      const kill = setTimeout(() => signalGroup("SIGKILL"), graceMs);
      await exited;
      clearTimeout(kill);
      // workerd may outlive wrangler by a moment; never leave it behind.
      const deadline = Date.now() + Math.min(2_000, graceMs);
      while (signalGroup(0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      if (signalGroup(0)) signalGroup("SIGKILL");
      // Done here: the reaper must not signal a group id the system may hand out again.
      reaper?.kill("SIGKILL");
      removeFiles();
      process.off("exit", reap);
    })();
    return stopping;
  };
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const url = `http://${ip.includes(":") ? `[${ip}]` : ip}:${port}`;
  const deadline = Date.now() + (opts.startTimeoutMs ?? 90_000);
  while (Date.now() < deadline) {
    if (opts.signal?.aborted) {
      await stop();
      throw new LocalEdgeError("stopped before the edge was up");
    }
    if (gone) {
      await stop(); // whatever wrangler started goes with it
      throw new LocalEdgeError(
        `wrangler dev exited before the edge was up: ${reason(tail) || "no output"}\n${tail.join("\n")}`,
      );
    }
    try {
      const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2_000) });
      if (r.ok && (await r.text()).trim() === "ok") {
        return { url, port, pid: pgid, persistTo, devSecret, stop, exited };
      }
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  await stop();
  throw new LocalEdgeError(
    `the local edge did not come up within ${opts.startTimeoutMs ?? 90_000} ms${tail.length ? `: ${reason(tail)}` : ""}\n${tail.join("\n")}`,
  );
}
