/**
 * `npm run soak [-- --quick] [--seconds N]` (root): chaos soak in the carrier-NAT lab (random uplink faults, edge outages, kill -9).
 * Rover A (wifi + cell, --manage-routes) probes rover B (--echo) at 20 msg/s on `control`
 * through TURN while random faults hit A's uplinks and the edge: wifi down, carrier loss,
 * silent blackholes, flapping, heavy loss, planned switches, edge outages.
 * Full: 10 minutes of chaos; quick: 40 s. Then an agent is killed (SIGKILL) mid-stream, on a
 * healthy link and while its link is down (quick: only the latter), and restarted with the same
 * id while B keeps running; what the restart lost is counted.
 * Prints and writes bench/results/soak-<date>[-quick].json. Exit 1 if the chaos run lost,
 * duplicated or reordered anything (a process restart's loss is reported, not failed on).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { REPO_ROOT } from "../rover/local-edge.ts";
import {
  fault,
  labDown,
  labUnavailableReason,
  labUp,
  startEdge,
  startTurn,
} from "../test/lab/lab.ts";
import { runScenario, sleep, waitEdge } from "../test/lab/scenario.ts";
import { killAndRestart, type RestartFigures } from "./soak/restart.ts";

const { values } = parseArgs({
  options: { quick: { type: "boolean", default: false }, seconds: { type: "string" } },
});
const quick = values.quick === true;
const seconds = values.seconds ? Number(values.seconds) : quick ? 40 : 600;
const log = (s: string) => process.stderr.write(`soak: ${s}\n`);
if (!Number.isFinite(seconds) || seconds < 20) {
  log("--seconds must be a number of at least 20");
  process.exit(2);
}

const why = labUnavailableReason();
if (why) {
  // Never a pass: a soak that did not run measured nothing (CI must notice).
  log(`not run: ${why}`);
  process.exit(1);
}

type Chaos = { name: string; on: () => void; off: () => void };
let stopFlap: () => void = () => {};
const CHAOS: Chaos[] = [
  { name: "wifi-down", on: () => fault.wifiDown(), off: () => fault.wifiUp() },
  { name: "wifi-carrier", on: () => fault.wifiCarrier(false), off: () => fault.wifiCarrier(true) },
  {
    name: "wifi-blackhole",
    on: () => fault.wifiBlackhole(true),
    off: () => fault.wifiBlackhole(false),
  },
  {
    name: "wifi-flap",
    on: () => {
      const modes = ["down", "carrier", "blackhole"] as const;
      stopFlap = fault.startFlap({ periodS: 1, mode: modes[Math.floor(Math.random() * 3)] });
    },
    off: () => stopFlap(),
  },
  { name: "wifi-loss-30%", on: () => fault.loss("natw", 0.3), off: () => fault.loss("natw", 0) },
  { name: "prefer-cell", on: () => fault.prefer("cell"), off: () => fault.prefer("wifi") },
  { name: "edge-outage", on: () => fault.edgeBlock(), off: () => fault.edgeUnblock() },
];

labUp();
const faults: { at: number; name: string; holdS: number }[] = [];
let result: Record<string, unknown> = {};
const restarts: (RestartFigures | null)[] = [];
try {
  startTurn();
  process.env.ROVERLINK_SECRET ??= "soak-secret-soak-secret-soak-secret";
  const edgeUrl = startEdge();
  await waitEdge(edgeUrl);
  log(`chaos for ${seconds} s at 20 msg/s`);
  const start = Date.now();
  const chaos = await runScenario(
    edgeUrl,
    "soak",
    seconds + 6,
    async () => {
      // The stream is up: faults until the end, each held 2..8 s, then healed for 2..6 s.
      while (Date.now() - start < seconds * 1000 - 8_000) {
        const c = CHAOS[Math.floor(Math.random() * CHAOS.length)] as Chaos;
        const holdS = 2 + Math.floor(Math.random() * 7);
        faults.push({ at: Math.round((Date.now() - start) / 1000), name: c.name, holdS });
        c.on();
        await sleep(holdS * 1000);
        c.off();
        await sleep((2 + Math.floor(Math.random() * 5)) * 1000);
      }
    },
    ["--manage-routes", "--probe", "20"],
  ).catch((e: Error) => {
    log(`chaos run failed: ${e.message}`);
    return null;
  });

  // Quick: only the telling case (killed while its link is down); full: also while healthy.
  for (const linkDown of quick ? [true] : [false, true]) {
    log(
      `agent killed (SIGKILL) mid-stream ${linkDown ? "while its link is down" : "on a healthy link"}, restarted with the same id`,
    );
    const r = await killAndRestart(
      edgeUrl,
      mkdtempSync(join(tmpdir(), "roverlink-soak-")),
      quick ? 6 : 20,
      linkDown,
    ).catch((e: Error) => {
      log(`restart run failed: ${e.message}`);
      return null;
    });
    restarts.push(r);
  }

  result = {
    date: new Date().toISOString(),
    quick,
    seconds,
    faults: faults.length,
    faultsByKind: Object.fromEntries(
      [...new Set(faults.map((f) => f.name))].map((n) => [
        n,
        faults.filter((f) => f.name === n).length,
      ]),
    ),
    faultLog: faults,
    chaos: chaos?.figures ?? null,
    chaosExitCode: chaos?.exitCode ?? null,
    killedAndRestarted: restarts,
  };
} finally {
  await labDown();
}
const dir = join(REPO_ROOT, "bench", "results");
mkdirSync(dir, { recursive: true });
const file = join(
  dir,
  `soak-${new Date().toISOString().slice(0, 10)}${quick ? "-quick" : ""}.json`,
);
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
const chaosFig = result.chaos as { lost: number; duplicated: number; reordered: number } | null;
const problems: string[] = [];
if (chaosFig === null) problems.push("the chaos run gave no figures");
else if (chaosFig.lost + chaosFig.duplicated + chaosFig.reordered > 0)
  problems.push(
    `chaos: ${chaosFig.lost} lost, ${chaosFig.duplicated} duplicated, ${chaosFig.reordered} reordered`,
  );
for (const r of restarts) {
  if (r === null) problems.push("a kill-and-restart run gave no figures");
  else if (r.restarted.lost > 0 || r.relinkMs === null)
    problems.push("a restarted agent did not carry its stream");
}
log(
  problems.length === 0 ? `ok: nothing lost (${file})` : `FAILED: ${problems.join("; ")} (${file})`,
);
process.exit(problems.length === 0 ? 0 : 1);
