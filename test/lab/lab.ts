// TypeScript face of test/lab/lab.sh (the carrier-NAT lab): build/tear down, run processes in namespaces,
// coturn, faults, counters. Everything network-side lives in lab.sh; this module only calls it.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { fileURLToPath } from "node:url";

export const LAB_SCRIPT = fileURLToPath(new URL("./lab.sh", import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * This process's lab. Labs are named (lab.sh: RL_LAB_NAME, namespaces <name>-a, <name>-b, ...): under
 * the test runner each worker gets its own ("rl1", "rl2": VITEST_POOL_ID), so two lab files run side
 * by side without sharing a namespace; elsewhere (bench/, scripts/) it is lab.sh's default, "rl".
 */
export const LAB_NAME =
  process.env.RL_LAB_NAME ??
  (process.env.VITEST_POOL_ID ? `rl${process.env.VITEST_POOL_ID}` : "rl");

/** Namespaces by short name: <lab>-a (rover A: wifi + cell), <lab>-b (rover B), <lab>-inet, and the three NATs. */
export type LabNs = "a" | "b" | "inet" | "natb" | "natw" | "natc";
/** A NAT by namespace or by the uplink it serves (b = natb, wifi = natw, cell = natc). */
export type LabNat = "natb" | "natw" | "natc" | "b" | "wifi" | "cell";
export type Uplink = "wifi" | "cell";

export interface LabAddresses {
  stateDir: string;
  natbWan: string;
  natwWan: string;
  natcWan: string;
  turnIp: string;
  turnPort: number;
  edgeIp: string;
  edgePort: number;
  aWifi: string;
  aCell: string;
  b: string;
  turnSecret: string;
}

/** Run lab.sh synchronously; returns stdout, throws with lab.sh's own one-line error. */
export function lab(...args: string[]): string {
  const result = spawnSync(LAB_SCRIPT, args, { encoding: "utf8", env: labEnvVars() });
  if (result.status !== 0) {
    const why = (result.stderr || result.error?.message || `exit ${result.status}`).trim();
    throw new Error(`lab.sh ${args.join(" ")}: ${why}`);
  }
  return result.stdout;
}

// The lab belongs to this process (lab.sh refuses to rebuild or tear down a live owner's lab).
function labEnvVars(): NodeJS.ProcessEnv {
  return { ...process.env, RL_LAB_NAME: LAB_NAME, RL_LAB_OWNER: String(process.pid) };
}

/**
 * Whether a lab that cannot run is a failure rather than a skip: in CI (CI set, as .ci/run
 * does), and as root (the lab's own user: a root machine without its tools is misconfigured).
 * Elsewhere (a developer's unprivileged shell) the lab tests are skipped and say why.
 */
export function labRequired(): boolean {
  const ci = process.env.CI;
  return (ci !== undefined && ci !== "" && ci !== "false") || process.getuid?.() === 0;
}

/** Why the lab cannot run here, or undefined when it can (root, ip, iptables, turnserver, netns). */
export function labUnavailableReason(): string | undefined {
  if (process.platform !== "linux")
    return `network namespaces need Linux (this is ${process.platform})`;
  const result = spawnSync(LAB_SCRIPT, ["check"], { encoding: "utf8", env: labEnvVars() });
  if (result.status === 0) return undefined;
  return (result.stderr || result.error?.message || "lab.sh check failed")
    .replace(/^lab: /, "")
    .trim();
}

let addresses: LabAddresses | undefined;
/** The lab's addresses (from `lab.sh env`, the single source of truth). */
export function labAddresses(): LabAddresses {
  if (addresses) return addresses;
  const env = Object.fromEntries(
    lab("env")
      .trim()
      .split("\n")
      .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
  ) as Record<string, string>;
  const get = (key: string): string => {
    const value = env[key];
    if (value === undefined) throw new Error(`lab.sh env: no ${key}`);
    return value;
  };
  addresses = {
    stateDir: get("STATE"),
    natbWan: get("NATB_WAN"),
    natwWan: get("NATW_WAN"),
    natcWan: get("NATC_WAN"),
    turnIp: get("TURN_IP"),
    turnPort: Number(get("TURN_PORT")),
    edgeIp: get("EDGE_IP"),
    edgePort: Number(get("EDGE_PORT")),
    aWifi: get("A_WIFI"),
    aCell: get("A_CELL"),
    b: get("B_IP"),
    turnSecret: get("TURN_SECRET_DEFAULT"),
  };
  return addresses;
}

/** How many times a scenario should repeat (RL_LAB_REPETITIONS, default 1); bench/ raises it. */
export function labRepetitions(): number {
  const n = Number(process.env.RL_LAB_REPETITIONS ?? "1");
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`RL_LAB_REPETITIONS must be a whole number >= 1`);
  return n;
}

const children = new Set<ChildProcess>();

/** Build the lab (tearing down leftovers of a crashed run first). */
export function labUp(): void {
  lab("up");
}

/** Kill every process started with spawnIn, then tear the lab down. Idempotent. */
export async function labDown(): Promise<void> {
  await Promise.all([...children].map((child) => stopChild(child)));
  lab("down");
}

/** Start `command` inside a namespace with piped stdio; labDown kills it if the test did not. */
export function spawnIn(ns: LabNs, command: string, args: string[]): ChildProcess {
  const child = spawn("ip", ["netns", "exec", `${LAB_NAME}-${ns}`, command, ...args], {
    cwd: REPO_ROOT,
    stdio: ["pipe", "pipe", "pipe"],
  });
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}

/** Run a TypeScript/JS file with this Node inside a namespace. */
export function nodeIn(ns: LabNs, script: string, args: string[]): ChildProcess {
  return spawnIn(ns, process.execPath, [script, ...args]);
}

/** Stop a child: close stdin, SIGTERM, SIGKILL after a grace period. */
export async function stopChild(child: ChildProcess, graceMs = 2000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.stdin?.end();
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

export interface TurnOptions {
  secret?: string;
  realm?: string;
  /** coturn --max-allocate-lifetime, seconds (the TURN-expiry scenario lowers it). */
  lifetimeS?: number;
  extraArgs?: string[];
}

export interface TurnServer {
  url: string;
  secret: string;
  logFile: string;
}

/** Start coturn in rl-inet on the public TURN address (UDP, no TLS/DTLS, TURN REST secret). */
export function startTurn(options: TurnOptions = {}): TurnServer {
  const a = labAddresses();
  const secret = options.secret ?? a.turnSecret;
  const args = ["turn-start", "--secret", secret];
  if (options.realm) args.push("--realm", options.realm);
  if (options.lifetimeS !== undefined) args.push("--lifetime", String(options.lifetimeS));
  if (options.extraArgs) args.push("--", ...options.extraArgs);
  lab(...args);
  return {
    url: `turn:${a.turnIp}:${a.turnPort}?transport=udp`,
    secret,
    logFile: `${a.stateDir}/turn.log`,
  };
}

export function stopTurn(): void {
  lab("turn-stop");
}

/** Start the edge in rl-inet (default: `roverlink edge` on the edge address, TURN wired to coturn). */
export function startEdge(options: { secret?: string; command?: string[] } = {}): string {
  const a = labAddresses();
  const args = ["edge-start", "--secret", options.secret ?? a.turnSecret];
  if (options.command) args.push("--", ...options.command);
  lab(...args);
  return `http://${a.edgeIp}:${a.edgePort}`;
}

/** TURN REST credentials (coturn --use-auth-secret): username "<expiry>:<id>", HMAC-SHA1 of it, base64. */
export function turnRestCredentials(
  secret: string,
  id: string,
  ttlS: number,
  nowMs = Date.now(),
): { username: string; credential: string } {
  const username = `${Math.floor(nowMs / 1000) + ttlS}:${id}`;
  const credential = createHmac("sha1", secret).update(username).digest("base64");
  return { username, credential };
}

/** Packets a NAT has forwarded since the lab came up: up = inside -> internet, down = replies in. */
export function counters(nat: LabNat): { up: number; down: number } {
  const match = /up=(\d+) down=(\d+)/.exec(lab("counters", nat));
  if (!match) throw new Error(`lab.sh counters ${nat}: unexpected output`);
  return { up: Number(match[1]), down: Number(match[2]) };
}

/** Network faults on the lab; each is undone by its counterpart or by heal(). */
export const fault = {
  wifiDown: () => void lab("wifi-down"),
  wifiUp: () => void lab("wifi-up"),
  /** false: wifi loses carrier (far end down) but keeps its address; true: carrier back. */
  wifiCarrier: (on: boolean) => void lab("wifi-carrier", on ? "on" : "off"),
  /** Link and routes look fine, rl-natw drops every packet. */
  wifiBlackhole: (on: boolean) => void lab("wifi-blackhole", on ? "on" : "off"),
  /** Planned switch: both uplinks stay up, route metrics prefer this one. */
  prefer: (uplink: Uplink) => void lab("prefer", uplink),
  /** Random loss (both directions) in one NAT; 0 clears. */
  loss: (nat: LabNat, probability: number) => void lab("loss", nat, String(probability)),
  edgeBlock: () => void lab("edge-block"),
  edgeUnblock: () => void lab("edge-unblock"),
  /** Edge unreachable for this long, then reachable again. */
  edgeOutage: async (seconds: number) => {
    lab("edge-block");
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    lab("edge-unblock");
  },
  /** Toggle wifi in the background (fault for periodS, healthy for periodS); returns stop (wifi healthy). */
  startFlap: (options: {
    periodS: number;
    mode?: "down" | "carrier" | "blackhole";
    repetitions?: number;
  }): (() => void) => {
    const args = ["flap-start", "--period", String(options.periodS)];
    if (options.mode) args.push("--mode", options.mode);
    if (options.repetitions !== undefined) args.push("--repetitions", String(options.repetitions));
    lab(...args);
    return () => void lab("flap-stop");
  },
  /** Every fault off, wifi preferred. */
  heal: () => void lab("heal"),
};

/** Run a command to completion inside a namespace (short-lived helpers); returns stdout. */
export function execIn(ns: LabNs, command: string, args: string[], timeoutMs = 30_000): string {
  return execFileSync("ip", ["netns", "exec", `${LAB_NAME}-${ns}`, command, ...args], {
    cwd: REPO_ROOT,
    encoding: "utf8",
    timeout: timeoutMs,
  });
}
