/**
 * Two edges side by side: this checkout's and another revision's (a git worktree), measured in
 * alternating blocks so that both see the same machine. On a shared 2-core machine the edge's
 * figures move by more than a change of a few percent between runs minutes apart; run one after
 * the other, a change measured −12 % once and +5 % the next time (docs/performance.md). In turn,
 * the same change shows as the same difference in every round.
 *
 *   node bench/edge-ab.ts --base <rev> [--rounds 6] [--out bench/results] [--name label]
 *
 * Each round, for each edge (the order alternates between rounds): 60 trickle PATCHes on an
 * answered session, each after a bare request (GET /healthz) and 30 ms apart, timed to the 204
 * and to the candidates event on the other party's SSE stream; then 8 offerer/answerer pairs in
 * one room completing offer → answer → DELETE for 4 s. CPU: the edge's process group (wrangler,
 * its proxy and the Worker's workerd) per trickle block step and per session.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { LocalEdge, LocalEdgeOptions } from "../rover/local-edge.ts";
import { REPO_ROOT, startLocalEdge } from "../rover/local-edge.ts";
import { bare, type EdgePair, groupCpuMs, pairInRoom } from "./edge.ts";
import { BENCH_SECRET } from "./peers.ts";
import { sleep } from "./stats.ts";

const TRICKLES_PER_BLOCK = 60;
const SESSION_PAIRS = 8;
const SESSION_SECONDS = 4;

interface Side {
  bare: number[];
  trickle: number[];
  delivered: number[];
  /** Edge CPU (ms) per step of a trickle block (a bare request and a trickle), per round. */
  trickleCpuMs: number[];
  sessionsPerSecond: number[];
  /** Edge CPU (ms) per session, per round. */
  sessionCpuMs: number[];
}

/** One round's medians for one edge. */
interface Round {
  bareMs: number;
  trickleMs: number;
  trickleOverBare: number;
  deliveredMs: number;
  sessionsPerSecond: number;
  sessionCpuMs: number;
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length === 0 ? Number.NaN : (s[Math.floor(s.length / 2)] as number);
};
const r2 = (x: number) => Math.round(x * 100) / 100;

function usage(msg: string): never {
  console.error(`bench/edge-ab: ${msg}`);
  console.error(
    "usage: node bench/edge-ab.ts --base <rev> [--rounds N] [--out DIR] [--name LABEL]",
  );
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    base: { type: "string" },
    rounds: { type: "string", default: "6" },
    out: { type: "string", default: join(REPO_ROOT, "bench", "results") },
    name: { type: "string" },
  },
});
if (!values.base) usage("name the revision to compare with (--base)");
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) usage(`--rounds must be a positive integer`);
const git = (...args: string[]) =>
  execFileSync("git", args, {
    cwd: REPO_ROOT,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  }).trim();
let baseRev: string;
try {
  baseRev = git("rev-parse", "--verify", `${values.base}^{commit}`);
} catch {
  usage(`no such revision: ${values.base}`);
}
const headRev = git("rev-parse", "HEAD");
const dirty = git("status", "--porcelain", "--untracked-files=no") !== "";

// The base's tree, with this checkout's node_modules (same lockfile assumed: say so if not).
const tree = mkdtempSync(join(tmpdir(), "roverlink-ab-"));
git("worktree", "add", "--detach", tree, baseRev);
symlinkSync(join(REPO_ROOT, "node_modules"), join(tree, "node_modules"));
const lockDiffers = git("diff", "--name-only", baseRev, "--", "package-lock.json") !== "";

const vars = { ROVERLINK_SECRET: BENCH_SECRET, MAX_PEERS_PER_ROOM: "64" };
const ramDisk = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();
const edges: Record<"base" | "head", LocalEdge | null> = { base: null, head: null };
const pairs: EdgePair[] = [];
try {
  const baseModule = (await import(join(tree, "rover", "local-edge.ts"))) as {
    startLocalEdge(o: LocalEdgeOptions): Promise<LocalEdge>;
  };
  edges.base = await baseModule.startLocalEdge({
    vars,
    persistTo: mkdtempSync(join(ramDisk, "ab-base-")),
  });
  edges.head = await startLocalEdge({ vars, persistTo: mkdtempSync(join(ramDisk, "ab-head-")) });
  const emptySide = (): Side => ({
    bare: [],
    trickle: [],
    delivered: [],
    trickleCpuMs: [],
    sessionsPerSecond: [],
    sessionCpuMs: [],
  });
  const sides: Record<"base" | "head", Side> = { base: emptySide(), head: emptySide() };
  const byRound: Record<"base" | "head", Round[]> = { base: [], head: [] };
  let seq = 0;
  const tricklers: Partial<Record<"base" | "head", EdgePair>> = {};
  for (const k of ["base", "head"] as const) {
    const e = edges[k] as LocalEdge;
    const t = await pairInRoom(e, `ab-${k}-${process.pid}-${++seq}`, "sse");
    pairs.push(t);
    await t.openTrickle();
    // Warm-up, not counted: the room object's first statements, V8's first compilations.
    for (let i = 0; i < 20; i++) {
      await t.trickle();
      await bare(e, t.fetch);
    }
    tricklers[k] = t;
  }
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? (["base", "head"] as const) : (["head", "base"] as const);
    for (const k of order) {
      const e = edges[k] as LocalEdge;
      const t = tricklers[k] as EdgePair;
      const s = sides[k];
      const cpu0 = groupCpuMs(e.pid);
      for (let i = 0; i < TRICKLES_PER_BLOCK; i++) {
        s.bare.push(r2(await bare(e, t.fetch)));
        await sleep(30);
        const x = await t.trickle();
        s.trickle.push(r2(x.ms));
        if (x.deliveredMs !== null) s.delivered.push(r2(x.deliveredMs));
        await sleep(30);
      }
      const cpu1 = groupCpuMs(e.pid);
      if (cpu0 !== null && cpu1 !== null)
        s.trickleCpuMs.push(r2((cpu1 - cpu0) / TRICKLES_PER_BLOCK));
    }
    for (const k of order) {
      const e = edges[k] as LocalEdge;
      const s = sides[k];
      const room = `ab-sessions-${k}-${process.pid}-${++seq}`;
      const these: EdgePair[] = [];
      for (let p = 0; p < SESSION_PAIRS; p++) these.push(await pairInRoom(e, room, "sse"));
      let done = 0;
      const cpu0 = groupCpuMs(e.pid);
      const t0 = performance.now();
      const end = t0 + SESSION_SECONDS * 1000;
      await Promise.all(
        these.map(async (p) => {
          while (performance.now() < end) {
            const x = await p.offer();
            if (!x.error) done++;
            else if (x.error === "429") break;
          }
        }),
      );
      const secs = (performance.now() - t0) / 1000;
      const cpu1 = groupCpuMs(e.pid);
      s.sessionsPerSecond.push(r2(done / secs));
      if (cpu0 !== null && cpu1 !== null && done > 0) s.sessionCpuMs.push(r2((cpu1 - cpu0) / done));
      await Promise.all(these.map((p) => p.stop()));
    }
    const line = (k: "base" | "head") => {
      const s = sides[k];
      const last = (a: number[], n: number) => median(a.slice(-n));
      const b = last(s.bare, TRICKLES_PER_BLOCK);
      const t = last(s.trickle, TRICKLES_PER_BLOCK);
      const row: Round = {
        bareMs: r2(b),
        trickleMs: r2(t),
        trickleOverBare: r2(t / b),
        deliveredMs: r2(last(s.delivered, TRICKLES_PER_BLOCK)),
        sessionsPerSecond: s.sessionsPerSecond.at(-1) ?? Number.NaN,
        sessionCpuMs: s.sessionCpuMs.at(-1) ?? Number.NaN,
      };
      byRound[k].push(row);
      return `${k}: bare ${row.bareMs} ms, trickle ${row.trickleMs} ms (${row.trickleOverBare}×), its candidate at the other party ${row.deliveredMs} ms, ${row.sessionsPerSecond} sessions/s at ${row.sessionCpuMs} ms of edge CPU each`;
    };
    console.log(`round ${round + 1}/${rounds}\n  ${line("base")}\n  ${line("head")}`);
  }
  const summary = (k: "base" | "head") => {
    const s = sides[k];
    return {
      bareMs: r2(median(s.bare)),
      trickleMs: r2(median(s.trickle)),
      trickleOverBare: r2(median(s.trickle) / median(s.bare)),
      deliveredMs: r2(median(s.delivered)),
      trickleBlockCpuMs: r2(median(s.trickleCpuMs)),
      sessionsPerSecond: r2(median(s.sessionsPerSecond)),
      sessionCpuMs: r2(median(s.sessionCpuMs)),
    };
  };
  const result = {
    date: new Date().toISOString(),
    base: { rev: baseRev, ...summary("base") },
    head: { rev: headRev, uncommittedChanges: dirty, ...summary("head") },
    lockfileDiffers: lockDiffers,
    rounds,
    byRound,
    samples: sides,
  };
  const label =
    values.name ?? `${baseRev.slice(0, 7)}-vs-${headRev.slice(0, 7)}${dirty ? "-dirty" : ""}`;
  const stem = join(values.out as string, `${result.date.slice(0, 10)}-edge-ab-${label}`);
  mkdirSync(values.out as string, { recursive: true });
  writeFileSync(`${stem}.json`, `${JSON.stringify(result, null, 1)}\n`);
  const b = result.base;
  const h = result.head;
  const row = (what: string, x: number, y: number, unit = "") =>
    `| ${what} | ${x}${unit} | ${y}${unit} | ${r2(y - x)}${unit} |`;
  writeFileSync(
    `${stem}.md`,
    [
      `# Edge A/B, ${result.date}`,
      "",
      `Base ${baseRev.slice(0, 7)}, head ${headRev.slice(0, 7)}${dirty ? " with uncommitted changes" : ""}; ${rounds} rounds, order alternating (bench/edge-ab.ts).${lockDiffers ? " The lockfile differs between them: both ran this checkout's node_modules." : ""} Medians over all rounds; every sample in the JSON beside this file.`,
      "",
      "| median | base | head | head − base |",
      "|---|---|---|---|",
      row("bare request (GET /healthz)", b.bareMs, h.bareMs, " ms"),
      row("trickle PATCH to its 204", b.trickleMs, h.trickleMs, " ms"),
      row("… over a bare request", b.trickleOverBare, h.trickleOverBare, "×"),
      row("trickle PATCH to the event at the other party", b.deliveredMs, h.deliveredMs, " ms"),
      row("edge CPU per trickle-block step", b.trickleBlockCpuMs, h.trickleBlockCpuMs, " ms"),
      row(`sessions/s, one room, ${SESSION_PAIRS} pairs`, b.sessionsPerSecond, h.sessionsPerSecond),
      row("edge CPU per session", b.sessionCpuMs, h.sessionCpuMs, " ms"),
      "",
      "Round by round (base / head):",
      "",
      "| round | trickle over a bare request | trickle to the event, ms | sessions/s | edge CPU per session, ms |",
      "|---|---|---|---|---|",
      ...byRound.base.map((x, i) => {
        const y = byRound.head[i] as Round;
        return `| ${i + 1} | ${x.trickleOverBare} / ${y.trickleOverBare} | ${x.deliveredMs} / ${y.deliveredMs} | ${x.sessionsPerSecond} / ${y.sessionsPerSecond} | ${x.sessionCpuMs} / ${y.sessionCpuMs} |`;
      }),
      "",
    ].join("\n"),
  );
  console.log(`bench/edge-ab: wrote ${stem}.json and .md`);
} finally {
  await Promise.all(pairs.map((p) => p.stop().catch(() => undefined)));
  await Promise.all(Object.values(edges).map((e) => e?.stop()));
  try {
    git("worktree", "remove", "--force", tree);
  } catch {
    // Its files go with the temporary directory below; `git worktree prune` forgets it.
  }
  rmSync(tree, { recursive: true, force: true });
}
process.exit(0);
