/**
 * `roverlink rover` as its own process, as a supervisor runs it: its stderr (JSON log lines off a
 * terminal) to wait on, and how it exited. `env` is laid over the environment, whose roverlink
 * variables are cleared first (the caller's shell must not leak into the test).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { expect } from "vitest";
import { REPO_ROOT } from "../../rover/local-edge.ts";

export const CLI = join(REPO_ROOT, "rover", "cli.ts");

/** The environment for a CLI process: roverlink's own variables cleared, then `env` over it. */
export function cliEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { ...process.env, ROVERLINK_SECRET: "", ROVERLINK_TOKEN: "", ROVERLINK_EDGE: "", ...env };
}

export function spawnRover(args: string[], env: Record<string, string>) {
  const child: ChildProcess = spawn(process.execPath, [CLI, "rover", ...args], {
    cwd: REPO_ROOT,
    env: cliEnv(env),
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdout?.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.on("exit", (code, signal) => r({ code, signal })),
  );
  return {
    child,
    exited,
    stderr: () => stderr,
    async waitFor(pattern: RegExp, ms = 30_000) {
      const end = Date.now() + ms;
      while (!pattern.test(stderr) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      expect(stderr).toMatch(pattern);
    },
  };
}

export type RoverProcess = ReturnType<typeof spawnRover>;
