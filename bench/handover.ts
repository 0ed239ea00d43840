/**
 * 2. Handover gap, from the carrier-NAT lab (needs root): per scenario, repeated runs of two
 * `roverlink rover` processes probing at 50 msg/s through TURN while rover A's network fails;
 * p50/p95 of the longest gap and the lost-message count. Baseline: stock werift peers (no
 * handover logic) under the same fault: how many of their messages still get through.
 */
import { createInterface } from "node:readline";
import {
  fault,
  labDown,
  labUnavailableReason,
  labUp,
  nodeIn,
  startEdge,
  startTurn,
  stopChild,
  turnRestCredentials,
} from "../test/lab/lab.ts";
import { runScenario, sleep, waitEdge } from "../test/lab/scenario.ts";
import { type Summary, summarize } from "./stats.ts";

export interface HandoverRow {
  scenario: string;
  runs: number;
  gapMs: Summary;
  lost: number;
  duplicated: number;
  reordered: number;
}

export interface Handover {
  available: boolean;
  note?: string;
  rows: HandoverRow[];
  baseline?: { scenario: string; sentAfterFault: number; echoedAfterFault: number; note: string };
}

type Fault = { name: string; apply: () => Promise<void>; extra?: string[] };

const SCENARIOS: Fault[] = [
  { name: "wifi-down", apply: async () => fault.wifiDown() },
  { name: "wifi-carrier", apply: async () => fault.wifiCarrier(false) },
  { name: "prefer-cell", apply: async () => fault.prefer("cell") },
  {
    name: "wifi-blackhole",
    apply: async () => fault.wifiBlackhole(true),
    extra: ["--manage-routes"],
  },
];

/** Stock werift peers (test/lab/peer.ts) relayed by TURN; messages every 20 ms; wifi goes down. */
async function stockBaseline(turnUrl: string, secret: string): Promise<Handover["baseline"]> {
  const servers = (id: string) => [{ urls: turnUrl, ...turnRestCredentials(secret, id, 600) }];
  const a = nodeIn("a", "test/lab/peer.ts", [
    JSON.stringify({ role: "offer", iceServers: servers("a") }),
  ]);
  const b = nodeIn("b", "test/lab/peer.ts", [
    JSON.stringify({ role: "answer", iceServers: servers("b") }),
  ]);
  const lines = (child: typeof a) => {
    const q: Record<string, unknown>[] = [];
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (l) => {
      try {
        q.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // not ours
      }
    });
    return q;
  };
  const la = lines(a);
  const lb = lines(b);
  const wait = async (q: Record<string, unknown>[], type: string) => {
    for (let i = 0; i < 400; i++) {
      const m = q.find((x) => x.type === type);
      if (m) return m;
      await sleep(50);
    }
    throw new Error(`stock peer: no ${type}`);
  };
  b.stdin?.write(`${JSON.stringify(await wait(la, "offer"))}\n`);
  a.stdin?.write(`${JSON.stringify(await wait(lb, "answer"))}\n`);
  await wait(la, "open");
  fault.wifiDown();
  const from = la.filter((x) => x.type === "message").length;
  let sent = 0;
  for (let i = 0; i < 500; i++) {
    a.stdin?.write(`${JSON.stringify({ type: "send", data: `m${i}` })}\n`);
    sent++;
    await sleep(20);
  }
  await sleep(2_000);
  const echoed = la.filter((x) => x.type === "message").length - from;
  fault.heal();
  await stopChild(a);
  await stopChild(b);
  return {
    scenario: "wifi-down",
    sentAfterFault: sent,
    echoedAfterFault: echoed,
    note: "stock werift peers keep their nominated pair; with wifi gone nothing restarts ICE",
  };
}

export async function handover(runs: number): Promise<Handover> {
  const why = labUnavailableReason();
  if (why) return { available: false, note: `not run: ${why}`, rows: [] };
  labUp();
  try {
    const turn = startTurn();
    process.env.ROVERLINK_SECRET ??= "bench-lab-secret-bench-lab-secret";
    const edgeUrl = startEdge();
    await waitEdge(edgeUrl);
    const rows: HandoverRow[] = [];
    for (const s of SCENARIOS) {
      const gaps: number[] = [];
      let lost = 0;
      let duplicated = 0;
      let reordered = 0;
      for (let i = 0; i < runs; i++) {
        const r = await runScenario(edgeUrl, `bench-${s.name}`, 14, s.apply, s.extra ?? []);
        gaps.push(r.figures.maxGapMs);
        lost += r.figures.lost;
        duplicated += r.figures.duplicated;
        reordered += r.figures.reordered;
      }
      rows.push({ scenario: s.name, runs, gapMs: summarize(gaps), lost, duplicated, reordered });
    }
    const baseline = await stockBaseline(turn.url, turn.secret);
    return { available: true, rows, baseline };
  } finally {
    await labDown();
  }
}
