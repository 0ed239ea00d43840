/**
 * Footprint measurement, run by bench/footprint.ts inside a fresh network namespace of its own
 * (`ip netns exec roverlink-bench-<pid> node bench/idle-link.ts '{"seconds":60}'`), where loopback
 * carries nothing but this: a local edge and two `roverlink rover` processes. iptables counters
 * in that namespace count every packet of the idle link (UDP) and of its signaling (TCP to the
 * edge). Prints one JSON line (IdleLinkFigures) on stdout.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT, startLocalEdge } from "../rover/local-edge.ts";
import { BENCH_SECRET } from "./peers.ts";
import { sleep } from "./stats.ts";

export interface Counted {
  packets: number;
  bytes: number;
}

export interface IdleLinkFigures {
  /** A bare `node` process doing nothing, for scale. */
  rssBareNodeMiB: number;
  rssIdleMiB: number;
  rssLinkedMiB: number;
  seconds: number;
  /** The link itself: DTLS/SCTP (health probes, SCTP heartbeats) and STUN consent checks, both ways. */
  udp: Counted;
  /** The STUN part of `udp` (ICE consent checks and their answers: the keepalive). */
  stun: Counted;
  /** CPU time of each linked rover (all threads, its children too) over the idle window (% of one core). */
  cpuPct: { a: number; b: number };
  /**
   * The same from STEADY_AFTER_S after each rover started to the end of the window: V8's memory
   * reducer runs one or two full GCs in a process's first ~4 minutes (at ~100 s and ~200 s, a few
   * tens of ms each), which a rover running for days does not pay again. Null when that leaves
   * less than a minute.
   */
  cpuSteadyPct: { a: number; b: number } | null;
  /** How long after its start each rover's steady window began (s). */
  steadyAfterS: number;
  /** The link profile both rovers ran with. */
  profile: string;
  /** Both rovers' HTTP to the edge's port (parked long-polls and their answers), both ways. */
  tcp: Counted;
}

const CHAIN = "RLBENCH";

function iptables(...args: string[]): string {
  return execFileSync("iptables", ["-w", ...args], { encoding: "utf8" });
}

/**
 * Count every packet leaving through loopback (each packet crosses OUTPUT once). TCP only to and
 * from the edge's port: wrangler dev also talks to its own workerd over loopback, which a
 * deployed edge does not, and which is not the rovers' signaling.
 */
function countersUp(edgePort: number): void {
  iptables("-N", CHAIN);
  // STUN (first payload byte 0-3, RFC 7983), apart from DTLS (20-63): the keepalive's share.
  iptables("-A", CHAIN, "-p", "udp", "-m", "u32", "--u32", "0>>22&0x3C@8>>24=0:3");
  iptables("-A", CHAIN, "-p", "udp");
  iptables("-A", CHAIN, "-p", "tcp", "--dport", String(edgePort));
  iptables("-A", CHAIN, "-p", "tcp", "--sport", String(edgePort));
  iptables("-I", "OUTPUT", "-o", "lo", "-j", CHAIN);
}

function read(): { udp: Counted; stun: Counted; tcp: Counted } {
  // Rows: pkts bytes prot ...; iptables-nft prints the protocol as a number (17, 6).
  const lines = iptables("-L", CHAIN, "-v", "-x", "-n")
    .split("\n")
    .filter((l) => /^\d+$/.test(l.trim().split(/\s+/)[0] ?? ""));
  const rows = lines.filter((l) => !l.includes("u32")).map((l) => l.trim().split(/\s+/));
  const stunRow = lines
    .find((l) => l.includes("u32"))
    ?.trim()
    .split(/\s+/);
  if (!stunRow) throw new Error(`iptables: no STUN counter in chain ${CHAIN}`);
  const get = (names: string[]): Counted => {
    const fs = rows.filter((r) => names.includes(r[2] ?? ""));
    if (fs.length === 0) throw new Error(`iptables: no ${names[0]} counter in chain ${CHAIN}`);
    return {
      packets: fs.reduce((n, f) => n + Number(f[0]), 0),
      bytes: fs.reduce((n, f) => n + Number(f[1]), 0),
    };
  };
  return {
    udp: get(["udp", "17"]),
    stun: { packets: Number(stunRow[0]), bytes: Number(stunRow[1]) },
    tcp: get(["tcp", "6"]),
  };
}

/**
 * CPU time a process and its children (the agent's `ip monitor`) have run, in seconds: the
 * scheduler's own runtime of every thread (/proc/<pid>/task/<tid>/schedstat, ns). The tick
 * counts of /proc/<pid>/stat charge a whole 10 ms tick to whichever thread runs at the tick, and
 * a timer-driven idle process wakes on ticks: they read 2-3 times the real figure here.
 */
function cpuSeconds(pid: number): number {
  let ns = 0;
  const tasks = readdirSync(`/proc/${pid}/task`);
  for (const tid of tasks) {
    const at = `/proc/${pid}/task/${tid}`;
    try {
      ns += Number(readFileSync(`${at}/schedstat`, "utf8").split(" ")[0]);
      for (const child of readFileSync(`${at}/children`, "utf8").trim().split(/\s+/))
        if (child) ns += cpuSeconds(Number(child)) * 1e9;
    } catch {
      // The thread (or child) ended between the listing and the read: its time is gone with it.
    }
  }
  return ns / 1e9;
}

/** Past the memory reducer's start-up GCs (see cpuSteadyPct). */
const STEADY_AFTER_S = 240;

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : Number.NaN;
}

function rover(
  edgeUrl: string,
  room: string,
  id: string,
  extra: string[],
): { child: ChildProcess; up: Promise<void> } {
  const child = spawn(
    process.execPath,
    [
      join(REPO_ROOT, "rover/cli.ts"),
      "rover",
      "--edge",
      edgeUrl,
      "--room",
      room,
      "--id",
      id,
      "--log-level",
      "info",
      ...extra,
    ],
    {
      env: { ...process.env, ROVERLINK_SECRET: BENCH_SECRET, ROVERLINK_LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const up = new Promise<void>((resolve) => {
    const look = (d: Buffer) => {
      if (d.toString().includes("link up")) resolve();
    };
    child.stdout?.on("data", look);
    child.stderr?.on("data", look);
  });
  return { child, up };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const t = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await gone;
  clearTimeout(t);
}

async function main(): Promise<void> {
  const { seconds, settleS, profile } = JSON.parse(process.argv[2] ?? "{}") as {
    seconds?: number;
    settleS?: number;
    profile?: string;
  };
  const linkProfile = profile ?? "cellular";
  const idleS = seconds ?? 60;
  const settle = settleS ?? 5;
  const bare = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  await sleep(1_000);
  const rssBareNodeMiB = rssMiB(bare.pid as number);
  await stop(bare);
  const edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: BENCH_SECRET } });
  const kids: ChildProcess[] = [];
  try {
    const room = "footprint";
    const aStarted = performance.now();
    const a = rover(edge.url, room, "a", ["--connect", "b", "--link-profile", linkProfile]);
    kids.push(a.child);
    await sleep(settle * 1000); // joined, waiting for b
    const rssIdleMiB = rssMiB(a.child.pid as number);
    const bStarted = performance.now();
    const b = rover(edge.url, room, "b", ["--echo", "--link-profile", linkProfile]);
    kids.push(b.child);
    const linked = await Promise.race([a.up.then(() => true), sleep(30_000).then(() => false)]);
    if (!linked) throw new Error("the two rovers did not link within 30 s");
    await sleep(settle * 1000); // settle: first probes, SCTP, consent timers
    const rssLinkedMiB = rssMiB(a.child.pid as number);
    countersUp(Number(new URL(edge.url).port));
    const pids = [a.child.pid as number, b.child.pid as number] as const;
    const started = [aStarted, bStarted] as const;
    const cpu0 = pids.map(cpuSeconds);
    const c0 = read();
    const t0 = performance.now();
    // Each rover's CPU when it passes STEADY_AFTER_S (sampled every second until then).
    const steady: ({ at: number; cpu: number } | null)[] = [null, null];
    const end = t0 + idleS * 1000;
    while (performance.now() < end) {
      await sleep(Math.min(1_000, end - performance.now()));
      for (const i of [0, 1] as const)
        if (steady[i] === null && performance.now() - started[i] >= STEADY_AFTER_S * 1000)
          steady[i] = { at: performance.now(), cpu: cpuSeconds(pids[i]) };
    }
    const c1 = read();
    const t1 = performance.now();
    const secs = (t1 - t0) / 1000;
    const cpu1 = pids.map(cpuSeconds);
    const pct = (i: number) =>
      Math.round((((cpu1[i] ?? 0) - (cpu0[i] ?? 0)) / secs) * 100 * 1000) / 1000;
    const steadyPct = (i: 0 | 1): number | null => {
      const s0 = steady[i];
      if (!s0 || t1 - s0.at < 60_000) return null;
      return Math.round((((cpu1[i] ?? 0) - s0.cpu) / ((t1 - s0.at) / 1000)) * 100 * 1000) / 1000;
    };
    const sa = steadyPct(0);
    const sb = steadyPct(1);
    const diff = (x: Counted, y: Counted): Counted => ({
      packets: y.packets - x.packets,
      bytes: y.bytes - x.bytes,
    });
    const out: IdleLinkFigures = {
      rssBareNodeMiB,
      rssIdleMiB,
      rssLinkedMiB,
      seconds: Math.round(secs * 10) / 10,
      udp: diff(c0.udp, c1.udp),
      stun: diff(c0.stun, c1.stun),
      tcp: diff(c0.tcp, c1.tcp),
      cpuPct: { a: pct(0), b: pct(1) },
      cpuSteadyPct: sa !== null && sb !== null ? { a: sa, b: sb } : null,
      steadyAfterS: STEADY_AFTER_S,
      profile: linkProfile,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    await Promise.all(kids.map(stop));
    await edge.stop();
  }
}

main().catch((err: Error) => {
  process.stderr.write(`idle-link: ${err.message}\n`);
  process.exit(1);
});
