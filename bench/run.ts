/**
 * `npm run bench [-- --quick] [--only a,b] [--runs N] [--one-thread] [--out dir]`: measure roverlink against its
 * anchors (stock werift, node-datachannel, a WebSocket relay, a WireGuard keepalive) in one run and
 * write <out>/<date>[-quick].json, .md and PNG charts (default out: bench/results). Figures only:
 * no thresholds. --quick: few runs, short windows, no lab (CI smoke test, well under 2 minutes).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { REPO_ROOT, startLocalEdge } from "../rover/local-edge.ts";
import { burstsFor, type DataPath, dataPath } from "./data-path.ts";
import { type EdgeBench, edgeBench } from "./edge.ts";
import { type FileBench, fileBench } from "./file-transfer.ts";
import { type Footprint, footprint } from "./footprint.ts";
import { type ForwardBench, forwardBench } from "./forward.ts";
import { HANDOVER_SCENARIOS, type Handover, handover } from "./handover.ts";
import { type OutboxBench, outboxBench } from "./outbox.ts";
import { BENCH_SECRET, nodeDatachannelVersion } from "./peers.ts";
import { writeReport } from "./report.ts";
import { type TimeToLink, timeToLink } from "./time-to-link.ts";
import { type VideoBench, videoBench } from "./video.ts";

export const BENCHMARKS = [
  "time-to-link",
  "handover",
  "data-path",
  "edge",
  "footprint",
  "file",
  "outbox",
  "forward",
  "video",
] as const;
export type BenchName = (typeof BENCHMARKS)[number];

export interface BenchResults {
  date: string;
  quick: boolean;
  runs: number;
  machine: string;
  /** werift: the patched copy roverlink runs; weriftUnpatched: the anchors' copy, as published. */
  versions: { werift: string; weriftUnpatched?: string; nodeDatachannel: string | null };
  /** Wall time of each benchmark, seconds. */
  took: Partial<Record<BenchName, number>>;
  /** When each benchmark ran (ISO time): `--only` keeps the other sections of the same day's file. */
  ranAt: Partial<Record<BenchName, string>>;
  timeToLink?: TimeToLink;
  handover?: Handover;
  dataPath?: DataPath;
  edge?: EdgeBench;
  footprint?: Footprint;
  file?: FileBench;
  outbox?: OutboxBench;
  forward?: ForwardBench;
  /** Where the local edge kept the rooms' SQLite for this run. */
  edgeStorage?: string;
  video?: VideoBench;
  /** The same with `--link-profile lan` (probes every second), for comparison. */
  footprintLan?: Footprint;
}

function fail(msg: string): never {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}

let values: {
  quick?: boolean;
  only?: string;
  runs?: string;
  scenarios?: string;
  out?: string;
  "report-from"?: string;
  "one-thread"?: boolean;
  help?: boolean;
};
try {
  ({ values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      runs: { type: "string" },
      scenarios: { type: "string" },
      out: { type: "string" },
      "report-from": { type: "string" },
      "one-thread": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  }));
} catch (err) {
  fail((err as Error).message);
}
if (values.help) {
  process.stdout.write(
    `usage: npm run bench -- [--quick] [--only ${BENCHMARKS.join(",")}] [--runs N] [--scenarios a,b] [--out DIR]\n` +
      `       --scenarios: handover scenarios to run (default all: ${HANDOVER_SCENARIOS.join(",")})\n` +
      "       --one-thread: time-to-link and data-path with both ends of a pair on one event loop\n" +
      "                     (default: the echoing end in a worker thread of its own)\n" +
      "       npm run bench -- --report-from results.json [--out DIR]   (redo the report and charts only)\n",
  );
  process.exit(0);
}
const outDir = values.out ?? join(REPO_ROOT, "bench", "results");
const reportFrom = values["report-from"];
if (reportFrom !== undefined) {
  let saved: BenchResults;
  try {
    saved = JSON.parse(readFileSync(reportFrom, "utf8")) as BenchResults;
  } catch (err) {
    fail(`--report-from: ${(err as Error).message}`);
  }
  const stem = saved.quick ? `${saved.date}-quick` : saved.date;
  mkdirSync(outDir, { recursive: true });
  const files = await writeReport(saved, outDir, stem);
  process.stderr.write(`bench: wrote ${files.join(", ")}\n`);
  process.exit(0);
}
const quick = values.quick === true;
const oneThread = values["one-thread"] === true;
const only = new Set((values.only ?? BENCHMARKS.join(",")).split(",").map((s) => s.trim()));
for (const name of only)
  if (!(BENCHMARKS as readonly string[]).includes(name))
    fail(`--only: unknown benchmark "${name}" (known: ${BENCHMARKS.join(", ")})`);
const runs = values.runs === undefined ? (quick ? 3 : 10) : Number(values.runs);
const scenarios = values.scenarios?.split(",").filter(Boolean);
for (const s of scenarios ?? [])
  if (!(HANDOVER_SCENARIOS as readonly string[]).includes(s))
    fail(`--scenarios: unknown scenario "${s}" (${HANDOVER_SCENARIOS.join(", ")})`);
if (!Number.isInteger(runs) || runs < 1)
  fail(`--runs must be a whole number >= 1, got "${values.runs}"`);
const date = new Date().toISOString().slice(0, 10);
const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

const versionOf = (pkg: string) =>
  (
    JSON.parse(readFileSync(join(REPO_ROOT, "node_modules", pkg, "package.json"), "utf8")) as {
      version: string;
    }
  ).version;
const weriftVersion = versionOf("werift");
const results: BenchResults = {
  date,
  quick,
  runs,
  machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${process.platform}`,
  versions: {
    werift: weriftVersion,
    weriftUnpatched: versionOf("werift-unpatched"),
    nodeDatachannel: nodeDatachannelVersion(),
  },
  took: {},
  ranAt: {},
};
const stem = quick ? `${date}-quick` : date;
const json = join(outDir, `${stem}.json`);
const prev: BenchResults | null =
  values.only !== undefined && existsSync(json)
    ? (JSON.parse(readFileSync(json, "utf8")) as BenchResults)
    : null;
if (prev) {
  // Keep the sections this run does not redo (e.g. the lab run on its own, the rest later).
  const keys = {
    "time-to-link": "timeToLink",
    handover: "handover",
    "data-path": "dataPath",
    edge: "edge",
    footprint: "footprint",
    file: "file",
    outbox: "outbox",
    forward: "forward",
    video: "video",
  } as const;
  for (const name of BENCHMARKS) {
    if (only.has(name) || prev[keys[name]] === undefined) continue;
    Object.assign(results, { [keys[name]]: prev[keys[name]] });
    if (prev.took?.[name] !== undefined) results.took[name] = prev.took[name];
    if (prev.ranAt?.[name] !== undefined) results.ranAt[name] = prev.ranAt[name];
    if (name === "footprint" && prev.footprintLan) results.footprintLan = prev.footprintLan;
  }
}

async function timed<T>(name: BenchName, what: string, f: () => Promise<T>): Promise<T> {
  log(`${name}: ${what}`);
  results.ranAt[name] = new Date().toISOString();
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    results.took[name] = Math.round((performance.now() - t0) / 100) / 10;
    log(`${name}: done in ${results.took[name]} s`);
  }
}

const needsEdge = ["time-to-link", "data-path", "edge", "file", "forward", "video"].some((n) =>
  only.has(n),
);
// The rooms' SQLite on a RAM disk when there is one: an fsync on this shared machine's disk
// costs what the disk and its other users make it cost, which is not the edge's own path (a
// deployed room's storage is Cloudflare's). Measured 2026-12-05: workerd's CPU per signaling
// session ~25 ms on /dev/shm against ~37 ms on disk (docs/performance.md).
const ramDisk =
  needsEdge && existsSync("/dev/shm") ? mkdtempSync("/dev/shm/roverlink-bench-") : null;
if (needsEdge) results.edgeStorage = ramDisk ? "tmpfs (/dev/shm)" : "disk (temporary directory)";
const edge = needsEdge
  ? await startLocalEdge({
      vars: { ROVERLINK_SECRET: BENCH_SECRET, MAX_PEERS_PER_ROOM: "64" },
      ...(ramDisk ? { persistTo: ramDisk } : {}),
    })
  : null;
try {
  if (edge && only.has("time-to-link")) {
    results.timeToLink = await timed("time-to-link", `${runs} runs per stack`, () =>
      timeToLink(edge, runs, { oneThread }),
    );
  }
  if (edge && only.has("data-path")) {
    // 30 s paced: 3 000 RTT samples (a p99 of 30) and a CPU figure that one GC or JIT pass does
    // not sway; at 10 s the same stack's CPU per message moved by ±30 % between runs.
    // Bursts after a bulk warm-up (V8 compiles a stack's data path over its first ~10 000
    // messages), each run three times: single runs of one stack moved by ±30 % within a run.
    const [secs, cap, warm, repeats] = quick ? [3, 15, 1, 1] : [30, 60, 6, 3];
    const bursts = burstsFor(quick);
    results.dataPath = await timed(
      "data-path",
      `${secs} s at 100 msg/s, a cold 2000 × 1 KiB burst, ${warm} s of bulk warm-up, then ${bursts.map((b) => `${b.messages} × ${b.bytes / 1024} KiB`).join(", ")} bursts × ${repeats} (≤ ${cap} s each, stacks in turn)`,
      () =>
        dataPath(
          edge,
          secs,
          { bursts, capSeconds: cap, bulkWarmUpSeconds: warm, repeats },
          { oneThread },
        ),
    );
  }
  if (edge && only.has("file")) {
    const [fileMiB, messageMiB] = quick ? [10, 4] : [100, 16];
    results.file = await timed(
      "file",
      `a ${fileMiB} MiB file (sendFile) and a ${messageMiB} MiB message on control`,
      () => fileBench(edge, fileMiB, messageMiB),
    );
  }
  if (edge && only.has("edge")) {
    const [n, secs] = quick ? [10, 2] : [Math.max(50, runs), 5];
    results.edge = await timed("edge", `${n} offers, ${secs} s per throughput point`, () =>
      edgeBench(edge, n, secs),
    );
  }
  if (edge && only.has("forward")) {
    const [mib, pings] = quick ? [8, 100] : [64, 500];
    results.forward = await timed(
      "forward",
      `TCP ${mib} MiB one way, ${pings} TCP and UDP round trips, forward vs plain loopback`,
      () => forwardBench(edge, mib, pings),
    );
  }
  if (edge && only.has("video")) {
    results.video = await timed(
      "video",
      "one agent process, 640×480 30 fps VP8 to werift watchers: no video, one stream, two; then glass to glass in Chromium",
      () => videoBench(edge, quick),
    );
  }
} finally {
  await edge?.stop();
  if (ramDisk) rmSync(ramDisk, { recursive: true, force: true });
}
if (only.has("footprint")) {
  // Long enough for 20 keepalive exchanges (one every 16-24 s) at the cellular cadence, and for
  // 3 minutes of CPU past the start-up GCs (bench/idle-link.ts, cpuSteadyPct).
  const idle = quick ? 5 : 420;
  results.footprint = await timed(
    "footprint",
    `rovers idle and linked, ${idle} s idle link in a private namespace`,
    () => footprint(idle, quick ? 2 : 5, "cellular"),
  );
  if (!quick) {
    results.footprintLan = await timed("footprint", "the same with --link-profile lan, 60 s", () =>
      footprint(60, 5, "lan"),
    );
  }
}
if (only.has("outbox")) {
  const n = quick ? 5_000 : 50_000;
  results.outbox = await timed("outbox", `${n} durable 1 KiB messages, 200 per turn`, () =>
    outboxBench(n, 200),
  );
}
if (only.has("handover")) {
  if (quick) {
    results.handover = {
      available: false,
      note: "not run in quick mode (needs root and the lab; ~20 s per run)",
      rows: [],
    };
  } else {
    const stockRuns = Math.min(runs, 3);
    results.handover = await timed(
      "handover",
      `${runs} runs per scenario, ${stockRuns} stock werift runs (lab, needs root)`,
      () => handover(runs, stockRuns, log, scenarios),
    );
    // --scenarios redoes some rows: the day's other rows (and the idle-send figure) stay.
    const before = prev?.handover;
    if (scenarios && before?.available && results.handover.available) {
      const redone = new Set(results.handover.rows.map((r) => r.scenario));
      const order = (r: { scenario: string }) =>
        (HANDOVER_SCENARIOS as readonly string[]).indexOf(r.scenario);
      results.handover.rows = [
        ...before.rows.filter((r) => !redone.has(r.scenario)),
        ...results.handover.rows,
      ].sort((x, y) => order(x) - order(y));
      if (!results.handover.idleSend && before.idleSend)
        results.handover.idleSend = before.idleSend;
    }
  }
}
mkdirSync(outDir, { recursive: true });
writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`);
const files = await writeReport(results, outDir, stem);
log(`wrote ${[json, ...files].join(", ")}`);
// node-datachannel keeps native threads that can hold the process open; its cleanup() can crash
// once PeerConnections were used (segfault seen here), so end the process explicitly.
process.exit(0);
