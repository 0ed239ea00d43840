/**
 * 3. Data path on loopback: RTT at 100 msg/s, CPU per message, and reliable throughput in bursts of
 * several depths and message sizes; roverlink links (the `control` channel with its exactly-once
 * layer) vs werift with our patches, werift 0.25.2 unpatched, and node-datachannel channels
 * (reliable, ordered). Both peers run in this process, the echoing one in a worker thread of its
 * own (bench/echo-peer.ts; `--one-thread`: on the same event loop), so CPU covers both ends,
 * worker and native threads included (process.cpuUsage is the whole process).
 */
import type { LocalEdge } from "../rover/local-edge.ts";
import { type EchoPair, nodeDatachannel, type PairOptions, pairOf, type Stack } from "./peers.ts";
import { ratio, type Summary, sleep, summarize, until } from "./stats.ts";

/** One burst: `messages` of `bytes` queued at once, until every echo is back (or the time cap). */
export interface BurstFigures {
  messages: number;
  bytes: number;
  /** Why this stack cannot run this burst (e.g. a message above its max-message-size). */
  unavailable?: string;
  /** Echoes back before the cap. */
  delivered: number;
  complete: boolean;
  seconds: number;
  /** One direction, payload bytes delivered / seconds (a lower bound when not complete). */
  throughputMBps: number | null;
  /** Both ends, per message echoed. */
  cpuUsPerMessage: number | null;
  /**
   * Every run of this burst, in order, when it was run more than once (the figures above are the
   * run of median throughput). Absent in older files: one run.
   */
  runs?: BurstRun[];
}

export type BurstRun = Pick<
  BurstFigures,
  "delivered" | "complete" | "seconds" | "throughputMBps" | "cpuUsPerMessage"
>;

export interface PathFigures {
  stack: Stack;
  unavailable?: string;
  rttMs: Summary;
  /** Every RTT sample at 100 msg/s, ms, in the order measured. */
  rttSamplesMs: number[];
  /** Probes that never came back within 10 s of the last one. */
  rttLost: number;
  /** The 2000 × 1 KiB burst (the headline figure; null when it did not complete). */
  throughputMBps: number | null;
  /** Both ends, user + system, at 100 msg/s (includes each stack's idle work: timers, probes). */
  cpuUsPerMessagePaced: number | null;
  /** Both ends, during the 2000 × 1 KiB burst (per message echoed). */
  cpuUsPerMessageBurst: number | null;
  bursts: BurstFigures[];
  /**
   * The headline burst on a cold stack: the first bulk data after the paced phase, before the
   * bulk warm-up (JIT compilation included). Absent in older files, whose bursts were all cold.
   */
  coldBurst?: BurstFigures;
}

type Ratios = {
  rttP50: number | null;
  rttP99: number | null;
  throughput: number | null;
  /** The 300 × 256 KiB burst's throughput (the large-message goal). */
  throughputLarge: number | null;
  cpuPaced: number | null;
  cpuBurst: number | null;
};

export interface DataPath {
  /**
   * "per-peer": b in a worker thread of its own, as two rovers are two machines; "one": both ends
   * on one event loop (every run before 2026-12-06 evening). Absent in older files: "one".
   */
  threads?: "one" | "per-peer";
  rateHz: number;
  /** Paced probes sent first and not counted (absent in older files: none). */
  warmUpSeconds?: number;
  seconds: number;
  /** The headline burst. */
  burst: { messages: number; bytes: number };
  /** Every burst, in the order run; each capped at `capSeconds`. */
  bursts: { messages: number; bytes: number }[];
  capSeconds: number;
  /** Uncounted bulk traffic per stack before the measured bursts (absent in older files: none). */
  bulkWarmUpSeconds?: number;
  /** Runs of each measured burst (absent in older files: 1). */
  repeats?: number;
  /**
   * Each run of a measured burst taken by every stack in turn, seconds apart (since 2026-12-07,
   * late); absent in older files: each stack ran its whole series in a block of its own.
   */
  interleaved?: boolean;
  /**
   * The paced phase in this many blocks, the stacks in turn, each block on a new pair (since
   * 2026-12-07, late); absent in older files: one block per stack.
   */
  pacedBlocks?: number;
  stacks: PathFigures[];
  /** roverlink / other, per figure (RTT and CPU: lower is better; throughput: higher is better). */
  ratios: Record<"werift" | "weriftUnpatched" | "nodeDatachannel", Ratios>;
}

const RATE_HZ = 100;
const HEADLINE = { messages: 2000, bytes: 1024 };
const LARGE = { messages: 300, bytes: 256 * 1024 };
/*
 * 256 KiB messages: roverlink fragments a `control` message past the peer's 64 KiB
 * max-message-size (shared/link/reliable.ts) and reassembles it at the other end; the raw werift
 * pairs advertise 1 MiB (werift's `maxMessageSize` option, bench/peers.ts) and send it whole.
 */

const cpuUs = (c: NodeJS.CpuUsage) => c.user + c.system;

/** A burst run that took longer than this is not run again (BurstPlan.repeats). */
const LONG_RUN_SECONDS = 10;

/** The paced phase is taken in this many blocks, the stacks in turn (one in quick mode). */
const PACED_BLOCKS = 3;

/** Paced probes sent before the measured window, uncounted (prefix "w"). */
const WARMUP_SECONDS = 2;

/**
 * `n` probes at RATE_HZ, named by `id(i)` (called just before each goes), then up to 10 s for
 * their own echoes (`echoes.n` also counts what came back before).
 */
async function sendPaced(
  pair: EchoPair,
  n: number,
  echoes: { n: number },
  id: (i: number) => string,
): Promise<void> {
  const before = echoes.n;
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const wait = start + (i * 1000) / RATE_HZ - performance.now();
    if (wait > 0) await sleep(wait);
    pair.send(id(i));
  }
  await until(() => echoes.n - before >= n, 10_000);
}

async function paced(
  pair: EchoPair,
  seconds: number,
  echoes: { n: number; ids: Map<string, number>; rtts: number[] },
) {
  const n = seconds * RATE_HZ;
  const cpu0 = process.cpuUsage();
  await sendPaced(pair, n, echoes, (i) => {
    const id = `r${String(i).padStart(15, "0")}`;
    echoes.ids.set(id, performance.now());
    return id;
  });
  return { n, cpu: cpuUs(process.cpuUsage(cpu0)), lost: echoes.ids.size };
}

async function burst(
  pair: EchoPair,
  echoes: { n: number },
  messages: number,
  bytes: number,
  capSeconds: number,
): Promise<BurstFigures> {
  const base = { messages, bytes };
  const payload = "x".repeat(bytes - 16);
  const before = echoes.n;
  const cpu1 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < messages; i++) pair.send(`t${String(i).padStart(15, "0")}${payload}`);
  const complete = await until(() => echoes.n - before >= messages, capSeconds * 1000);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuUs(process.cpuUsage(cpu1));
  const delivered = Math.min(messages, echoes.n - before);
  return {
    ...base,
    delivered,
    complete,
    seconds: Math.round(seconds * 100) / 100,
    throughputMBps:
      delivered > 0 ? Math.round(((delivered * bytes) / seconds / 1e6) * 100) / 100 : null,
    cpuUsPerMessage: delivered > 0 ? Math.round(cpu / delivered) : null,
  };
}

/**
 * Bulk traffic, not counted, until `seconds` have passed: bursts of `messages` × 1 KiB, then
 * 16 KiB and 256 KiB messages (the fragmenting paths). V8 keeps optimizing a stack's data path
 * for ~10 000 messages (`--trace-opt`): the first bursts measured the JIT, and the raw werift pair
 * reused what roverlink's run had compiled on the same thread. False when a warm-up burst did not
 * complete (the pair is clogged).
 */
async function warmBulk(
  pair: EchoPair,
  echoes: { n: number },
  messages: number,
  seconds: number,
  capSeconds: number,
): Promise<boolean> {
  const end = performance.now() + seconds * 1000;
  do {
    if (!(await burst(pair, echoes, messages, 1024, capSeconds)).complete) return false;
  } while (performance.now() < end);
  for (const [messages, bytes] of [
    [30, 16 * 1024],
    [4, 256 * 1024],
  ] as const) {
    if (!(await burst(pair, echoes, messages, bytes, capSeconds)).complete) return false;
  }
  return true;
}

const run = (f: BurstFigures): BurstRun => ({
  delivered: f.delivered,
  complete: f.complete,
  seconds: f.seconds,
  throughputMBps: f.throughputMBps,
  cpuUsPerMessage: f.cpuUsPerMessage,
});

/** How the bursts are taken. */
export interface BurstPlan {
  bursts: { messages: number; bytes: number }[];
  capSeconds: number;
  bulkWarmUpSeconds: number;
  repeats: number;
}

type Echoes = { n: number; ids: Map<string, number>; rtts: number[] };

/** Count `pair`'s echoes into `echoes`, with the RTT of each paced probe. */
function countEchoes(pair: EchoPair, echoes: Echoes): void {
  pair.onEcho((d) => {
    echoes.n++;
    if (d.charCodeAt(0) !== 114) return; // "r": a paced probe
    const id = d.slice(0, 16);
    const t = echoes.ids.get(id);
    if (t !== undefined) {
      echoes.rtts.push(performance.now() - t);
      echoes.ids.delete(id);
    }
  });
}

/** One stack's figures as the run gathers them, and its pair for the bursts. */
interface Live {
  stack: Stack;
  rtts: number[];
  paced: { n: number; cpu: number; lost: number };
  cold: BurstFigures;
  pair?: EchoPair;
  echoes?: Echoes;
  close?: () => Promise<void>;
  /** Warm and with no incomplete burst yet: runs the next burst. */
  running: boolean;
  bursts: BurstFigures[];
}

/**
 * One block of the paced phase, on a pair of this stack's own with no other pair linked (the
 * paced CPU figure is the whole process's: another pair's keepalives would count), added to
 * `live`; the first block also takes the cold headline burst.
 */
async function pacedBlock(
  stack: Stack,
  pair: EchoPair,
  seconds: number,
  plan: BurstPlan,
  live: Live | undefined,
): Promise<Live> {
  const echoes: Echoes = { n: 0, ids: new Map(), rtts: [] };
  countEchoes(pair, echoes);
  // The same 2 s of paced probes for every stack first: the measured window is the steady state a
  // rover lives in, not the JIT compiling the stack's code (the first stack measured paid for it).
  await sendPaced(pair, WARMUP_SECONDS * RATE_HZ, echoes, (i) => `w${String(i).padStart(15, "0")}`);
  const p = await paced(pair, seconds, echoes);
  if (live) {
    live.rtts.push(...echoes.rtts);
    live.paced = {
      n: live.paced.n + p.n,
      cpu: live.paced.cpu + p.cpu,
      lost: live.paced.lost + p.lost,
    };
    return live;
  }
  // The headline burst as a cold stack meets it (kept apart).
  const cold = await burst(pair, echoes, HEADLINE.messages, HEADLINE.bytes, plan.capSeconds);
  return { stack, rtts: echoes.rtts, paced: p, cold, running: cold.complete, bursts: [] };
}

/**
 * A second pair of the stack, linked for the measured bursts, after the bulk warm-up: as deep as
 * the headline (past the 1 MiB high-water mark: roverlink's backpressure path), unless the stack
 * took seconds for its cold burst (unpatched werift: ~40 s).
 */
async function warmPair(live: Live, pair: EchoPair, plan: BurstPlan): Promise<void> {
  const echoes: Echoes = { n: 0, ids: new Map(), rtts: [] };
  countEchoes(pair, echoes);
  live.pair = pair;
  live.echoes = echoes;
  const depth = live.cold.seconds < 5 ? HEADLINE.messages : 300;
  live.running = await warmBulk(pair, echoes, depth, plan.bulkWarmUpSeconds, plan.capSeconds);
}

/**
 * The measured bursts, interleaved: each run of each burst goes to every stack in turn, seconds
 * apart, so that a slow minute of the machine weighs on every stack's run of that burst, not on
 * one stack's whole series (run 7 of 2026-12-07: both werift stacks' 256 KiB runs at ~9 MB/s for
 * minutes, node-datachannel's at 24 after them). Per stack, the run of median throughput is
 * kept, as before; a run over LONG_RUN_SECONDS is not repeated, an incomplete one stops the stack
 * (its pair is clogged).
 */
async function interleaved(lives: Live[], plan: BurstPlan): Promise<void> {
  for (const shape of plan.bursts) {
    const runs = new Map<Live, BurstFigures[]>(
      lives.filter((l) => l.running && l.pair).map((l) => [l, []]),
    );
    for (let r = 0; r < plan.repeats; r++) {
      for (const [live, all] of runs) {
        const last = all.at(-1);
        if (last && (!last.complete || last.seconds > LONG_RUN_SECONDS)) continue;
        const { pair, echoes } = live as Required<Live>;
        const f = await burst(pair, echoes, shape.messages, shape.bytes, plan.capSeconds);
        all.push(f);
        if (!f.complete) {
          // Clogged (unpatched werift's 2000 burst): closed at once, else its backlog, still
          // being sent at ~50 ms of CPU a message, runs under every other stack's later bursts.
          await live.close?.();
          live.close = undefined;
          live.running = false;
        }
        await sleep(200);
      }
    }
    for (const [live, all] of runs) live.bursts.push(medianRun(all));
  }
}

/** The run of median throughput, with every run when there were several. */
function medianRun(all: BurstFigures[]): BurstFigures {
  const incomplete = all.find((f) => !f.complete);
  if (incomplete) return { ...incomplete, ...(all.length > 1 ? { runs: all.map(run) } : {}) };
  const byRate = [...all].sort((a, b) => (a.throughputMBps ?? 0) - (b.throughputMBps ?? 0));
  const median = byRate[Math.floor((byRate.length - 1) / 2)] as BurstFigures;
  return all.length > 1 ? { ...median, runs: all.map(run) } : median;
}

function figures(live: Live): PathFigures {
  const head = live.bursts.find(
    (b) => b.messages === HEADLINE.messages && b.bytes === HEADLINE.bytes,
  );
  const { rtts, paced: p } = live;
  return {
    coldBurst: live.cold,
    stack: live.stack,
    rttMs: summarize(rtts),
    rttSamplesMs: rtts.map((x) => Math.round(x * 1000) / 1000),
    rttLost: p.lost,
    throughputMBps: head?.complete ? head.throughputMBps : null,
    cpuUsPerMessagePaced: Math.round(p.cpu / Math.max(1, p.n - p.lost)),
    cpuUsPerMessageBurst: head?.cpuUsPerMessage ?? null,
    bursts: live.bursts,
  };
}

function none(stack: Stack, why: string): PathFigures {
  return {
    stack,
    unavailable: why,
    rttMs: summarize([]),
    rttSamplesMs: [],
    rttLost: 0,
    throughputMBps: null,
    cpuUsPerMessagePaced: null,
    cpuUsPerMessageBurst: null,
    bursts: [],
  };
}

/** Bursts per mode: quick keeps the CI smoke test short. */
export function burstsFor(quick: boolean): { messages: number; bytes: number }[] {
  if (quick)
    return [
      { messages: 300, bytes: 1024 },
      { messages: 2000, bytes: 1024 },
    ];
  return [
    { messages: 300, bytes: 1024 },
    { messages: 2000, bytes: 1024 },
    { messages: 20_000, bytes: 1024 },
    { messages: 300, bytes: 16 * 1024 },
    { messages: 2000, bytes: 16 * 1024 },
    LARGE,
  ];
}

export async function dataPath(
  edge: LocalEdge,
  seconds: number,
  plan: BurstPlan,
  opts: PairOptions = {},
): Promise<DataPath> {
  const ndc = nodeDatachannel();
  const order = ["roverlink", "werift", "werift-unpatched", "node-datachannel"] as const;
  const stacksRun = order.filter((s) => !(s === "node-datachannel" && typeof ndc === "string"));
  const lives: Live[] = [];
  // The paced phase in blocks, the stacks in turn (a slow minute of the machine then weighs on
  // every stack's RTT and CPU, not on one's), each block on a pair of its own closed after it.
  const blocks = seconds >= 30 ? PACED_BLOCKS : 1;
  for (let block = 0; block < blocks; block++) {
    for (const stack of stacksRun) {
      const linked = await pairOf(stack, edge, opts);
      await sleep(500); // let the link settle (first health probes, SCTP warm-up)
      try {
        const live = lives.find((l) => l.stack === stack);
        const done = await pacedBlock(stack, linked.pair, seconds / blocks, plan, live);
        if (!live) lives.push(done);
      } finally {
        await linked.pair.close();
      }
    }
  }
  // The bursts: every stack's second pair stays linked until the interleaved bursts are done (an
  // idle pair costs its keepalives, consent checks and roverlink's health probes, in the burst CPU
  // of the others).
  try {
    for (const live of lives) {
      if (!live.running) continue;
      const linked = await pairOf(live.stack, edge, opts);
      live.close = () => linked.pair.close();
      await sleep(500);
      await warmPair(live, linked.pair, plan);
    }
    await interleaved(lives, plan);
  } finally {
    await Promise.all(lives.map((l) => l.close?.()));
  }
  const stacks = order.map((stack) => {
    const live = lives.find((l) => l.stack === stack);
    return live ? figures(live) : none(stack, typeof ndc === "string" ? ndc : "not run");
  });
  const get = (s: Stack) => stacks.find((x) => x.stack === s) as PathFigures;
  const large = (s: PathFigures) => {
    const b = s.bursts.find((x) => x.messages === LARGE.messages && x.bytes === LARGE.bytes);
    return b?.complete ? b.throughputMBps : null;
  };
  const vs = (other: PathFigures): Ratios => {
    const r = get("roverlink");
    return {
      rttP50: ratio(r.rttMs.median, other.rttMs.median),
      rttP99: ratio(r.rttMs.p99, other.rttMs.p99),
      throughput: ratio(r.throughputMBps, other.throughputMBps),
      throughputLarge: ratio(large(r), large(other)),
      cpuPaced: ratio(r.cpuUsPerMessagePaced, other.cpuUsPerMessagePaced),
      cpuBurst: ratio(r.cpuUsPerMessageBurst, other.cpuUsPerMessageBurst),
    };
  };
  return {
    threads: opts.oneThread ? "one" : "per-peer",
    rateHz: RATE_HZ,
    warmUpSeconds: WARMUP_SECONDS,
    seconds,
    burst: HEADLINE,
    bursts: plan.bursts,
    capSeconds: plan.capSeconds,
    bulkWarmUpSeconds: plan.bulkWarmUpSeconds,
    repeats: plan.repeats,
    interleaved: true,
    pacedBlocks: blocks,
    stacks,
    ratios: {
      werift: vs(get("werift")),
      weriftUnpatched: vs(get("werift-unpatched")),
      nodeDatachannel: vs(get("node-datachannel")),
    },
  };
}
