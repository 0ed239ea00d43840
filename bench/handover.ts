/**
 * 2. Handover gap, from the carrier-NAT lab (docs/lab.md; needs root): per scenario, repeated runs
 * of two `roverlink rover` processes (A probing B at 50 msg/s on `control`, through TURN) while
 * rover A's network fails (test/lab/scenario.ts, the same runner as the lab tests); p50/p95 of the
 * longest gap without an echo, and lost messages. Baseline: two stock werift peers
 * (test/lab/peer.ts: werift 0.25.2 as published through the `werift-unpatched` alias; no restart,
 * no rebuild, no reliable layer) under the same fault and the same 50 msg/s probe stream, with the
 * same figures.
 */

import { jsonLines } from "../test/lab/json-lines.ts";
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
import { runScenario, waitEdge } from "../test/lab/scenario.ts";
import { ratio, type Summary, sleep, summarize } from "./stats.ts";

export interface GapFigures {
  runs: number;
  gapMs: Summary;
  lostPerRun: Summary;
  lostTotal: number;
  sentTotal: number;
  duplicated: number;
  reordered: number;
  /** Runs where the probe process did not exit cleanly (its figures are still counted). */
  failedRuns: number;
  /** Stock werift: runs where no probe sent after the fault ever came back. */
  unrecoveredRuns?: number;
  /** roverlink: runs in which the one fault took more than one handover (a second restart). */
  multiHandoverRuns?: number;
  /** roverlink: handovers per run. */
  handoversPerRun?: Summary;
  /** roverlink: runs in which the one fault took more than one ICE restart or rebuild (switches to a backup path not counted; absent before 2026-12-06). */
  multiRestartRuns?: number;
  /** Every run's figures, in the order run. */
  samples?: {
    gapMs: number[];
    lost: number[];
    sent: number[];
    handovers?: number[];
    restarts?: number[];
  };
}

export interface HandoverRow {
  scenario: string;
  what: string;
  /** Seconds of probing per run; the fault comes ~6 s in (roverlink) or 2 s after open (stock). */
  seconds: number;
  roverlink: GapFigures;
  stockWerift: GapFigures;
  /** Median gap, roverlink over stock werift (< 1: roverlink recovers sooner). */
  ratioGapP50: number | null;
}

export interface Handover {
  available: boolean;
  note?: string;
  /** What the stock rows ran (absent in runs before 2026-12-05, which loaded the patched copy). */
  anchor?: string;
  rows: HandoverRow[];
  /** Idle, then a blackhole, then one send (issue 15; absent before 2026-12-06). */
  idleSend?: IdleSend;
}

/**
 * A link idle for `idleS` (default cellular profile: no probes, a keepalive every ~20 s), wifi
 * silently blackholed ~1 s before the first and only send (--manage-routes): how long until that
 * message came back echoed (a round trip, so delivery took less). The send is what finds the path
 * dead; the next keepalive is up to 20 s away.
 */
export interface IdleSend {
  idleS: number;
  runs: number;
  /** Send to echo, ms, per run (null: never echoed within the window). */
  sendToEchoMs: (number | null)[];
  summary: Summary;
  delivered: number;
  handovers: number[];
}

/** The stock peers' werift: test/lab/peer.ts imports the unpatched alias. */
export const STOCK_ANCHOR = "werift 0.25.2, unpatched";

interface Scenario {
  name: string;
  what: string;
  seconds: number;
  apply: () => void | Promise<void>;
  extra?: string[];
}

// Durations as in test/lab/handover.test.ts (the blackhole needs silence detection plus a restart).
const SCENARIOS: Scenario[] = [
  { name: "wifi-down", what: "wifi interface down", seconds: 16, apply: () => fault.wifiDown() },
  {
    name: "wifi-carrier",
    what: "wifi carrier lost (address kept)",
    seconds: 16,
    apply: () => fault.wifiCarrier(false),
  },
  {
    name: "prefer-cell",
    what: "planned switch: cell preferred, wifi still up",
    seconds: 14,
    apply: () => fault.prefer("cell"),
  },
  {
    name: "wifi-blackhole",
    what: "wifi silently drops everything (routes unchanged)",
    seconds: 22,
    apply: () => fault.wifiBlackhole(true),
    extra: ["--manage-routes"],
  },
  {
    name: "blackhole-noroot",
    what: "wifi blackhole, source routing, no --manage-routes (no CAP_NET_ADMIN)",
    seconds: 16,
    apply: () => fault.wifiBlackhole(true),
  },
  {
    name: "edge-down-wifi-down",
    what: "edge unreachable from 200 ms before wifi goes down",
    seconds: 16,
    apply: async () => {
      fault.edgeBlock();
      await sleep(200);
      fault.wifiDown();
    },
  },
  {
    name: "edge-down-blackhole",
    what: "edge unreachable from 200 ms before a wifi blackhole",
    seconds: 16,
    apply: async () => {
      fault.edgeBlock();
      await sleep(200);
      fault.wifiBlackhole(true);
    },
  },
  {
    name: "flap-2hz",
    what: "wifi down/up every 250 ms for 6 s",
    seconds: 18,
    apply: async () => {
      const stop = fault.startFlap({ periodS: 0.25, mode: "down" });
      await sleep(6_000);
      stop();
    },
  },
];

export const HANDOVER_SCENARIOS = [...SCENARIOS.map((s) => s.name), "idle-send"];

const FAULT_AT = 100;

interface Run {
  gapMs: number;
  lost: number;
  sent: number;
  duplicated: number;
  reordered: number;
  ok: boolean;
  recovered?: boolean;
  handovers?: number;
  restarts?: number;
}

function figures(runs: Run[]): GapFigures {
  return {
    runs: runs.length,
    gapMs: summarize(runs.map((r) => r.gapMs)),
    lostPerRun: summarize(runs.map((r) => r.lost)),
    lostTotal: runs.reduce((s, r) => s + r.lost, 0),
    sentTotal: runs.reduce((s, r) => s + r.sent, 0),
    duplicated: runs.reduce((s, r) => s + r.duplicated, 0),
    reordered: runs.reduce((s, r) => s + r.reordered, 0),
    failedRuns: runs.filter((r) => !r.ok).length,
    ...(runs.some((r) => r.recovered !== undefined)
      ? { unrecoveredRuns: runs.filter((r) => r.recovered === false).length }
      : {}),
    ...(runs.some((r) => r.handovers !== undefined)
      ? {
          multiHandoverRuns: runs.filter((r) => (r.handovers ?? 0) > 1).length,
          handoversPerRun: summarize(runs.map((r) => r.handovers ?? 0)),
        }
      : {}),
    ...(runs.some((r) => r.restarts !== undefined)
      ? { multiRestartRuns: runs.filter((r) => (r.restarts ?? 0) > 1).length }
      : {}),
    samples: {
      gapMs: runs.map((r) => Math.round(r.gapMs)),
      lost: runs.map((r) => r.lost),
      sent: runs.map((r) => r.sent),
      ...(runs.some((r) => r.handovers !== undefined)
        ? { handovers: runs.map((r) => r.handovers ?? 0) }
        : {}),
      ...(runs.some((r) => r.restarts !== undefined)
        ? { restarts: runs.map((r) => r.restarts ?? 0) }
        : {}),
    },
  };
}

async function roverlinkRun(edgeUrl: string, s: Scenario): Promise<Run> {
  const r = await runScenario(
    edgeUrl,
    `bench-${s.name}`,
    s.seconds,
    async () => {
      await s.apply();
    },
    s.extra ?? [],
  );
  const f = r.figures;
  return {
    gapMs: f.maxGapMs,
    lost: f.lost,
    sent: f.sent,
    duplicated: f.duplicated,
    reordered: f.reordered,
    ok: r.exitCode === 0,
    handovers: f.handovers,
    restarts: f.restarts,
  };
}

/**
 * Stock werift peers relayed by TURN, probes every 20 ms from the offerer (B echoes), the fault
 * 2 s after the channel opens; the same gap definition as the CLI's probe figures: the longest
 * time without an echo, the last gap closed at the end when probes are still outstanding.
 */
async function stockRun(turnUrl: string, secret: string, s: Scenario): Promise<Run> {
  const servers = (id: string) => [{ urls: turnUrl, ...turnRestCredentials(secret, id, 600) }];
  const a = nodeIn("a", "test/lab/peer.ts", [
    JSON.stringify({ role: "offer", iceServers: servers("a") }),
  ]);
  const b = nodeIn("b", "test/lab/peer.ts", [
    JSON.stringify({ role: "answer", iceServers: servers("b") }),
  ]);
  try {
    const la = jsonLines(a, "stock peer A");
    const lb = jsonLines(b, "stock peer B");
    const offer = await la.next((l) => l.type === "offer", 20_000, "offer");
    lb.send(offer);
    const answer = await lb.next((l) => l.type === "answer", 20_000, "answer");
    la.send(answer);
    await la.next((l) => l.type === "open", 30_000, "an open channel");
    const echoedAt = new Map<string, number>();
    let duplicated = 0;
    let reordered = 0;
    let highest = -1;
    let lastEcho: number | null = null;
    let maxGap = 0;
    let cursor = la.seen.length;
    const watch = setInterval(() => {
      for (; cursor < la.seen.length; cursor++) {
        const l = la.seen[cursor];
        if (l?.type !== "message" || typeof l.data !== "string") continue;
        const now = performance.now();
        if (echoedAt.has(l.data)) {
          duplicated++;
          continue;
        }
        echoedAt.set(l.data, now);
        const n = Number(l.data.slice(1));
        if (n < highest) reordered++;
        highest = Math.max(highest, n);
        if (lastEcho !== null) maxGap = Math.max(maxGap, now - lastEcho);
        lastEcho = now;
      }
    }, 1);
    // The fault after 2 s (100 probes), then as long as roverlink's window after its fault.
    const total = (s.seconds - 6) * 50 + FAULT_AT;
    const start = performance.now();
    for (let i = 0; i < total; i++) {
      if (i === FAULT_AT) s.apply();
      const wait = start + i * 20 - performance.now();
      if (wait > 0) await sleep(wait);
      la.send({ type: "send", data: `p${i}` });
    }
    await sleep(2_000); // as the CLI: up to 2 s for the last echoes
    clearInterval(watch);
    const end = performance.now();
    if (echoedAt.size < total && lastEcho !== null) maxGap = Math.max(maxGap, end - lastEcho);
    return {
      gapMs: Math.round(maxGap),
      lost: total - echoedAt.size,
      sent: total,
      duplicated,
      reordered,
      ok: true,
      recovered: [...echoedAt.keys()].some((d) => Number(d.slice(1)) >= FAULT_AT),
    };
  } finally {
    fault.heal();
    await stopChild(a);
    await stopChild(b);
  }
}

/** labUp, waiting while another process (a lab test, the soak run) holds the lab. */
async function acquireLab(log: (s: string) => void, waitMs: number): Promise<void> {
  const end = Date.now() + waitMs;
  for (;;) {
    try {
      labUp();
      return;
    } catch (err) {
      const busy = /belongs to live process/.test((err as Error).message);
      if (!busy || Date.now() > end) throw err;
      log("handover: the lab is in use by another process; waiting");
      await sleep(15_000);
    }
  }
}

export async function handover(
  runs: number,
  stockRuns: number,
  log: (s: string) => void,
  only?: string[],
): Promise<Handover> {
  const why = labUnavailableReason();
  if (why) return { available: false, note: `not run: ${why}`, rows: [] };
  try {
    await acquireLab(log, 15 * 60_000);
  } catch (err) {
    return {
      available: false,
      note: `not run: ${(err as Error).message.split("\n")[0]}`,
      rows: [],
    };
  }
  try {
    const turn = startTurn();
    process.env.ROVERLINK_SECRET ??= "bench-lab-secret-bench-lab-secret";
    const edgeUrl = startEdge();
    await waitEdge(edgeUrl);
    const rows: HandoverRow[] = [];
    for (const s of SCENARIOS) {
      if (only && !only.includes(s.name)) continue;
      const rl: Run[] = [];
      for (let i = 0; i < runs; i++) {
        rl.push(await roverlinkRun(edgeUrl, s));
        log(
          `handover ${s.name} roverlink ${i + 1}/${runs}: gap ${rl.at(-1)?.gapMs} ms, lost ${rl.at(-1)?.lost}, handovers ${rl.at(-1)?.handovers} (restarts ${rl.at(-1)?.restarts})`,
        );
      }
      const st: Run[] = [];
      for (let i = 0; i < stockRuns; i++) {
        st.push(await stockRun(turn.url, turn.secret, s));
        log(
          `handover ${s.name} stock werift ${i + 1}/${stockRuns}: gap ${st.at(-1)?.gapMs} ms, lost ${st.at(-1)?.lost}`,
        );
      }
      const roverlink = figures(rl);
      const stockWerift = figures(st);
      rows.push({
        scenario: s.name,
        what: s.what,
        seconds: s.seconds,
        roverlink,
        stockWerift,
        ratioGapP50: ratio(roverlink.gapMs.median, stockWerift.gapMs.median),
      });
    }
    const idleSend =
      only && !only.includes(IDLE_SEND) ? undefined : await idleSendRuns(edgeUrl, runs, log);
    return { available: true, anchor: STOCK_ANCHOR, rows, ...(idleSend ? { idleSend } : {}) };
  } finally {
    await labDown();
  }
}

const IDLE_SEND = "idle-send";
const IDLE_SEND_S = 60;

async function idleSendRuns(
  edgeUrl: string,
  runs: number,
  log: (s: string) => void,
): Promise<IdleSend> {
  const n = Math.min(runs, 5); // ~75 s a run
  const rtts: (number | null)[] = [];
  const handovers: number[] = [];
  for (let i = 0; i < n; i++) {
    // A starts 1.5 s after B; its one probe goes IDLE_SEND_S after it joined (~0.5 s): the
    // blackhole comes ~1 s before that send.
    const t0 = Date.now();
    const r = await runScenario(
      edgeUrl,
      `bench-${IDLE_SEND}`,
      IDLE_SEND_S + 10,
      async () => {
        await sleep(Math.max(0, t0 + IDLE_SEND_S * 1000 + 500 - Date.now()));
        fault.wifiBlackhole(true);
      },
      ["--probe", String(1 / IDLE_SEND_S), "--manage-routes"],
    );
    const f = r.figures;
    rtts.push(f.received === 1 ? f.rttMs.p50 : null);
    handovers.push(f.handovers);
    log(
      `handover ${IDLE_SEND} ${i + 1}/${n}: send to echo ${rtts.at(-1)} ms, handovers ${f.handovers}`,
    );
  }
  const got = rtts.filter((x): x is number => x !== null);
  return {
    idleS: IDLE_SEND_S,
    runs: n,
    sendToEchoMs: rtts,
    summary: summarize(got),
    delivered: got.length,
    handovers,
  };
}
