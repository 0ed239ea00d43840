// One handover scenario in the lab, reusable by the lab tests and bench/: two `roverlink rover`
// processes (B in rl-b echoing, A in rl-a probing B at 50 msg/s on control through the lab edge),
// a fault applied to rover A once the link is up, and A's probe figures (--stats-json).
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execIn, fault, nodeIn, stopChild } from "./lab.ts";

export interface Figures {
  sent: number;
  received: number;
  lost: number;
  duplicated: number;
  reordered: number;
  maxGapMs: number;
  handovers: number;
  /** Handovers through the edge (ICE restarts, rebuilds); the rest switched to a backup path. */
  restarts: number;
  linkUpMs: number | null;
  rttMs: { p50: number | null; p99: number | null };
}

const CLI = "rover/cli.ts";
const dir = mkdtempSync(join(tmpdir(), "roverlink-lab-"));
let roomN = 0;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Log lines shown per rover on a failure (RL_LAB_LOGS=N: that many, to read a whole timeline). */
const LOG_LINES = Math.max(25, Number(process.env.RL_LAB_LOGS) || 0);
const LOG_KEEP = Math.max(20_000, LOG_LINES * 600);
/** The rovers' log level (RL_LAB_LOG_LEVEL, default info). */
const LOG_LEVEL = process.env.RL_LAB_LOG_LEVEL ?? "info";
/** RL_LAB_EVENTS=sse|poll: both rovers' --events (default: the CLI's). */
const EVENTS = process.env.RL_LAB_EVENTS ? ["--events", process.env.RL_LAB_EVENTS] : [];

function capture(child: ChildProcess, name: string) {
  let out = "";
  let linkUp = false;
  const seen = new Set<string>();
  let partial = "";
  child.stderr?.on("data", (d: Buffer) => {
    out = (out + d.toString()).slice(-LOG_KEEP);
    const lines = (partial + d.toString()).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      const m = /"msg":"([^"]*)"/.exec(line);
      if (!m) continue;
      seen.add(m[1] as string);
      // "msg|uplink=<name>" too: a premise can name the uplink ("backup path ready|uplink=cell").
      const u = /"uplink":"([^"]*)"/.exec(line);
      if (u) seen.add(`${m[1]}|uplink=${u[1]}`);
      // "msg|reason=<why>": a handover's reason ("handover done|reason=turn-credentials").
      const r = /"reason":"([^"]*)"/.exec(line);
      if (r) seen.add(`${m[1]}|reason=${r[1]}`);
    }
    if (seen.has("link up")) linkUp = true;
  });
  child.stdout?.on("data", () => {});
  return {
    tail: () => `${name} log tail:\n${out.split("\n").slice(-LOG_LINES).join("\n")}`,
    linkUp: () => linkUp,
    /** Whether the rover logged this message (its "msg") so far. */
    logged: (msg: string) => seen.has(msg),
  };
}

/** Wait until the lab edge answers /healthz from rover B's namespace. */
export async function waitEdge(edgeUrl: string): Promise<void> {
  const end = Date.now() + 60_000;
  while (Date.now() < end) {
    try {
      if (execIn("b", "curl", ["-sf", "-m", "2", `${edgeUrl}/healthz`], 5_000).trim() === "ok")
        return;
    } catch {
      // not up yet
    }
    await sleep(500);
  }
  throw new Error("the lab edge did not come up");
}

export interface ScenarioResult {
  figures: Figures;
  exitCode: number | null;
  logs: () => string;
  /** Whether rover A / rover B logged this message (its "msg") during the run. */
  aLogged: (msg: string) => boolean;
  bLogged: (msg: string) => boolean;
}

/** Run A against B for `seconds`, applying `during` once the link is up. Heals the lab after. */
export async function runScenario(
  edgeUrl: string,
  name: string,
  seconds: number,
  during: () => Promise<void>,
  extra: string[] = [],
  /**
   * A message rover A must have logged before the fault (the scenario's premise), e.g.
   * "backup path ready|uplink=cell" (a message, optionally with the uplink it names).
   */
  premise?: string,
): Promise<ScenarioResult> {
  const room = `lab-${process.pid}-${++roomN}`;
  const b = nodeIn("b", CLI, [
    "rover",
    "--edge",
    edgeUrl,
    "--room",
    room,
    "--id",
    "b",
    "--echo",
    "--log-level",
    LOG_LEVEL,
    ...EVENTS,
  ]);
  const bCap = capture(b, "rover B");
  const bLog = bCap.tail;
  await sleep(1500);
  const stats = join(dir, `${name}-${roomN}.json`);
  const a = nodeIn("a", CLI, [
    "rover",
    "--edge",
    edgeUrl,
    "--room",
    room,
    "--id",
    "a",
    "--connect",
    "b",
    "--probe",
    "50",
    "--duration",
    String(seconds),
    "--stats-json",
    stats,
    "--log-level",
    LOG_LEVEL,
    ...EVENTS,
    ...extra,
  ]);
  const aCap = capture(a, "rover A");
  const aLog = aCap.tail;
  const exited = new Promise<number | null>((resolve) => a.once("exit", (code) => resolve(code)));
  try {
    // Join, relay candidates, link up (TURN): at least 6 s, and 1.5 s after the link came up (its
    // backup paths get their first check), at most 30 s on a loaded machine.
    const started = Date.now();
    while (!aCap.linkUp() && Date.now() - started < 30_000) await sleep(100);
    const upAt = Date.now();
    await sleep(Math.max(6_000 - (upAt - started), 1_500));
    // The premise of every scenario: a fault that strikes before the link is up tests nothing.
    if (!aCap.linkUp()) {
      throw new Error(`${name}: the link was not up before the fault\n${aLog()}\n${bLog()}`);
    }
    if (premise !== undefined) {
      while (!aCap.logged(premise) && Date.now() - started < 30_000) await sleep(100);
      if (!aCap.logged(premise))
        throw new Error(`${name}: rover A never logged "${premise}" before the fault\n${aLog()}`);
    }
    await during();
    const exitCode = await exited;
    const figures = JSON.parse(readFileSync(stats, "utf8")) as Figures;
    return {
      figures,
      exitCode,
      logs: () => `${aLog()}\n${bLog()}`,
      aLogged: aCap.logged,
      bLogged: bCap.logged,
    };
  } finally {
    fault.heal();
    await stopChild(a);
    await stopChild(b);
  }
}
