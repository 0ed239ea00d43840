/**
 * `npm run bench [-- --quick] [--only a,b] [--runs N]`: measure roverlink against its anchors in
 * one run and write bench/results/<date>.json, <date>.md and PNG charts. No thresholds: figures.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { REPO_ROOT, startLocalEdge } from "../rover/local-edge.ts";
import { type DataPath, dataPath } from "./data-path.ts";
import { type EdgeBench, edgeBench } from "./edge.ts";
import { type Footprint, footprint } from "./footprint.ts";
import { type Handover, handover } from "./handover.ts";
import { BENCH_SECRET } from "./peers.ts";
import { writeReport } from "./report.ts";
import { type TimeToLink, timeToLink } from "./time-to-link.ts";

export interface BenchResults {
  date: string;
  quick: boolean;
  machine: string;
  timeToLink?: TimeToLink;
  dataPath?: DataPath;
  edge?: EdgeBench;
  footprint?: Footprint;
  handover?: Handover;
}

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    runs: { type: "string" },
    out: { type: "string" },
  },
});
const quick = values.quick === true;
const only = new Set((values.only ?? "time-to-link,data-path,edge,footprint,handover").split(","));
const runs = values.runs ? Number(values.runs) : quick ? 3 : 10;
const outDir = values.out ?? join(REPO_ROOT, "bench", "results");
const date = new Date().toISOString().slice(0, 10);
const log = (s: string) => process.stderr.write(`bench: ${s}\n`);

const results: BenchResults = {
  date,
  quick,
  machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
};
const edge = await startLocalEdge({
  vars: { ROVERLINK_SECRET: BENCH_SECRET, MAX_PEERS_PER_ROOM: "64" },
});
try {
  if (only.has("time-to-link")) {
    log(`time to link (${runs} runs each)`);
    results.timeToLink = await timeToLink(edge, runs);
  }
  if (only.has("data-path")) {
    log("data path");
    results.dataPath = await dataPath(edge, quick ? 3 : 10, quick ? 300 : 2000);
  }
  if (only.has("edge")) {
    log("edge");
    results.edge = await edgeBench(edge, quick ? 10 : 50, quick ? 2 : 5);
  }
  if (only.has("footprint")) {
    log("footprint");
    results.footprint = await footprint(edge, quick ? 10 : 60);
  }
} finally {
  await edge.stop();
}
if (only.has("handover")) {
  log(
    quick
      ? "handover (skipped in quick mode)"
      : `handover (${Math.max(1, Math.min(runs, 10))} runs per scenario; needs root)`,
  );
  results.handover = quick
    ? { available: false, note: "skipped in quick mode (needs root and ~1 min per run)", rows: [] }
    : await handover(Math.max(1, Math.min(runs, 10)));
}
mkdirSync(outDir, { recursive: true });
const stem = quick ? `${date}-quick` : date;
writeFileSync(join(outDir, `${stem}.json`), `${JSON.stringify(results, null, 2)}\n`);
const files = await writeReport(results, outDir, stem);
log(`wrote ${join(outDir, `${stem}.json`)} and ${files.join(", ")}`);
