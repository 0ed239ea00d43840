/**
 * 3. Data path on loopback: RTT at 100 msg/s, reliable throughput and CPU per message; roverlink
 * links (the `control` channel with its exactly-once layer) vs stock werift and node-datachannel
 * channels (reliable, ordered). Both peers run in this process, so CPU covers both ends, native
 * threads included (process.cpuUsage is the whole process).
 */
import type { LocalEdge } from "../rover/local-edge.ts";
import { type EchoPair, nodeDatachannel, pairOf, type Stack } from "./peers.ts";
import { ratio, type Summary, sleep, summarize, until } from "./stats.ts";

export interface PathFigures {
  stack: Stack;
  unavailable?: string;
  rttMs: Summary;
  /** Probes that never came back within 10 s of the last one. */
  rttLost: number;
  /** One direction, payload bytes (each message crosses twice: out and echoed back). */
  throughputMBps: number | null;
  /** Both ends, user + system, at 100 msg/s (includes each stack's idle work: timers, probes). */
  cpuUsPerMessagePaced: number | null;
  /** Both ends, during the throughput burst (per message echoed). */
  cpuUsPerMessageBurst: number | null;
}

export interface DataPath {
  rateHz: number;
  seconds: number;
  burst: { messages: number; bytes: number };
  stacks: PathFigures[];
  /** roverlink / other, per figure (RTT and CPU: lower is better; throughput: higher is better). */
  ratios: Record<
    "werift" | "nodeDatachannel",
    {
      rttP50: number | null;
      rttP99: number | null;
      throughput: number | null;
      cpuPaced: number | null;
      cpuBurst: number | null;
    }
  >;
}

const RATE_HZ = 100;
const MESSAGE_BYTES = 1024;

const cpuUs = (c: NodeJS.CpuUsage) => c.user + c.system;

async function measure(
  stack: Stack,
  pair: EchoPair,
  seconds: number,
  burst: number,
): Promise<PathFigures> {
  const sentAt = new Map<string, number>();
  const rtts: number[] = [];
  let echoed = 0;
  pair.onEcho((d) => {
    echoed++;
    const id = d.slice(0, 16);
    const t = sentAt.get(id);
    if (t !== undefined) {
      rtts.push(performance.now() - t);
      sentAt.delete(id);
    }
  });
  // RTT at 100 msg/s, paced against the clock (timers drift, the schedule does not).
  const n = seconds * RATE_HZ;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const due = start + (i * 1000) / RATE_HZ;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const id = `r${String(i).padStart(15, "0")}`;
    sentAt.set(id, performance.now());
    pair.send(id);
  }
  await until(() => echoed >= n, 10_000);
  const cpuPaced = cpuUs(process.cpuUsage(cpu0));
  const rttLost = sentAt.size;
  // Reliable throughput: `burst` messages of 1 KiB, queued at once, until every echo is back.
  const payload = "x".repeat(MESSAGE_BYTES - 16);
  const before = echoed;
  const cpu1 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < burst; i++) pair.send(`t${String(i).padStart(15, "0")}${payload}`);
  const complete = await until(() => echoed - before >= burst, 120_000);
  const secs = (performance.now() - t0) / 1000;
  const cpuBurst = cpuUs(process.cpuUsage(cpu1));
  const got = echoed - before;
  return {
    stack,
    rttMs: summarize(rtts),
    rttLost,
    throughputMBps: complete
      ? Math.round(((burst * MESSAGE_BYTES) / secs / 1e6) * 100) / 100
      : null,
    cpuUsPerMessagePaced: Math.round(cpuPaced / Math.max(1, n - rttLost)),
    cpuUsPerMessageBurst: got > 0 ? Math.round(cpuBurst / got) : null,
  };
}

function none(stack: Stack, why: string): PathFigures {
  return {
    stack,
    unavailable: why,
    rttMs: summarize([]),
    rttLost: 0,
    throughputMBps: null,
    cpuUsPerMessagePaced: null,
    cpuUsPerMessageBurst: null,
  };
}

export async function dataPath(edge: LocalEdge, seconds: number, burst: number): Promise<DataPath> {
  const stacks: PathFigures[] = [];
  const ndc = nodeDatachannel();
  for (const stack of ["roverlink", "werift", "node-datachannel"] as const) {
    if (stack === "node-datachannel" && typeof ndc === "string") {
      stacks.push(none(stack, ndc));
      continue;
    }
    const linked = await pairOf(stack, edge);
    await sleep(500); // let the link settle (first health probes, SCTP warm-up)
    try {
      stacks.push(await measure(stack, linked.pair, seconds, burst));
    } finally {
      await linked.pair.close();
    }
  }
  const get = (s: Stack) => stacks.find((x) => x.stack === s) as PathFigures;
  const vs = (other: PathFigures) => {
    const r = get("roverlink");
    return {
      rttP50: ratio(r.rttMs.median, other.rttMs.median),
      rttP99: ratio(r.rttMs.p99, other.rttMs.p99),
      throughput: ratio(r.throughputMBps, other.throughputMBps),
      cpuPaced: ratio(r.cpuUsPerMessagePaced, other.cpuUsPerMessagePaced),
      cpuBurst: ratio(r.cpuUsPerMessageBurst, other.cpuUsPerMessageBurst),
    };
  };
  return {
    rateHz: RATE_HZ,
    seconds,
    burst: { messages: burst, bytes: MESSAGE_BYTES },
    stacks,
    ratios: { werift: vs(get("werift")), nodeDatachannel: vs(get("node-datachannel")) },
  };
}
