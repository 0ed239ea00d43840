/**
 * `npm run soak [-- --quick]` (root): chaos soak in the carrier-NAT lab (issue 8). Rover A (wifi +
 * cell) probes rover B at 20 msg/s on `control` through TURN while random faults hit A's uplinks
 * and the edge: wifi down/up, carrier loss, silent blackholes, planned switches, edge outages.
 * Full: 10 minutes; quick: 60 s. Then an agent is killed (SIGKILL) mid-stream and restarted.
 * Prints and writes bench/results/soak-<date>.json: messages lost (goal 0), max gap, handovers.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { REPO_ROOT } from "../rover/local-edge.ts";
import {
  fault,
  labDown,
  labUnavailableReason,
  labUp,
  nodeIn,
  startEdge,
  startTurn,
  stopChild,
} from "../test/lab/lab.ts";
import { runScenario, sleep, waitEdge } from "../test/lab/scenario.ts";

const { values } = parseArgs({
  options: { quick: { type: "boolean", default: false }, seconds: { type: "string" } },
});
const quick = values.quick === true;
const seconds = values.seconds ? Number(values.seconds) : quick ? 60 : 600;
const log = (s: string) => process.stderr.write(`soak: ${s}\n`);

const why = labUnavailableReason();
if (why) {
  log(`not run: ${why}`);
  process.exit(quick ? 0 : 1);
}

type Chaos = { name: string; on: () => void; off: () => void };
const CHAOS: Chaos[] = [
  { name: "wifi-down", on: () => fault.wifiDown(), off: () => fault.wifiUp() },
  { name: "wifi-carrier", on: () => fault.wifiCarrier(false), off: () => fault.wifiCarrier(true) },
  {
    name: "wifi-blackhole",
    on: () => fault.wifiBlackhole(true),
    off: () => fault.wifiBlackhole(false),
  },
  { name: "prefer-cell", on: () => fault.prefer("cell"), off: () => fault.prefer("wifi") },
  { name: "edge-outage", on: () => fault.edgeBlock(), off: () => fault.edgeUnblock() },
];

labUp();
const faults: { at: number; name: string; holdS: number }[] = [];
let result: Record<string, unknown> = {};
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
      // The stream is up; faults until the end, each held 2..8 s, then healed 2..6 s.
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
    log(`soak run failed: ${e.message}`);
    return null;
  });

  // An agent killed mid-stream and started again: what the new process sends is exactly-once;
  // what the killed one had not had acknowledged dies with it (measured: its stream's figures
  // are gone, so we report the restarted process's own).
  log("agent killed (SIGKILL) mid-stream and restarted");
  const killed = nodeIn("a", "rover/cli.ts", [
    "rover",
    "--edge",
    edgeUrl,
    "--room",
    "soak-kill",
    "--id",
    "a",
    "--connect",
    "b",
    "--probe",
    "20",
    "--log-level",
    "warn",
  ]);
  const b = nodeIn("b", "rover/cli.ts", [
    "rover",
    "--edge",
    edgeUrl,
    "--room",
    "soak-kill",
    "--id",
    "b",
    "--echo",
    "--log-level",
    "warn",
  ]);
  await sleep(8_000);
  killed.kill("SIGKILL");
  await stopChild(killed);
  await stopChild(b);
  const after = await runScenario(edgeUrl, "soak-restarted", 12, async () => {});

  result = {
    date: new Date().toISOString(),
    quick,
    seconds,
    faults: faults.length,
    faultsByKind: faults.reduce<Record<string, number>>(
      (m, f) => ({ ...m, [f.name]: (m[f.name] ?? 0) + 1 }),
      {},
    ),
    chaos: chaos?.figures ?? null,
    restartedAgent: after.figures,
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
const ok =
  chaosFig !== null && chaosFig.lost === 0 && chaosFig.duplicated === 0 && chaosFig.reordered === 0;
log(ok ? `ok: nothing lost (${file})` : `FAILED (${file})`);
process.exit(ok ? 0 : 1);
