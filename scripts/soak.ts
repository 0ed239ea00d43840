/**
 * `npm run soak [-- --quick] [--seconds N]` (root): chaos soak in the carrier-NAT lab (random uplink faults, edge outages, kill -9).
 * Rover A (wifi + cell, --manage-routes) probes rover B (--echo) at 20 msg/s on `control`
 * through TURN while random faults hit A's uplinks and the edge: wifi down, carrier loss,
 * silent blackholes, flapping, heavy loss, planned switches, edge outages.
 * Full: 10 minutes of chaos; quick: 40 s. Then durable applications are killed (SIGKILL) and
 * restarted on their state, one run per kind (scripts/soak/kills.ts): the sender while its link
 * is down, the receiver mid-stream, both at once; 5 kills of each (quick: 1).
 * Prints and writes bench/results/soak-<date>[-quick].json. Exit 1 if the chaos run or any kill
 * run lost, duplicated, reordered or invented a message (counted from the applications' own
 * records, both directions), or if a kill's premise did not happen.
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
  startEdge,
  startTurn,
} from "../test/lab/lab.ts";
import { runScenario, sleep, waitEdge } from "../test/lab/scenario.ts";
import { KILL_KINDS, type KillRun, killRun } from "./soak/kills.ts";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    seconds: { type: "string" },
    kills: { type: "string" },
    // Development: the kill runs alone (reported as such; CI runs the whole soak).
    "only-kills": { type: "boolean", default: false },
    kind: { type: "string" },
  },
});
const quick = values.quick === true;
const seconds = values.seconds ? Number(values.seconds) : quick ? 40 : 600;
const onlyKills = values["only-kills"] === true;
const repeat = values.kills ? Number(values.kills) : quick ? 1 : 5;
const log = (s: string) => process.stderr.write(`soak: ${s}\n`);
if (!Number.isFinite(seconds) || seconds < 20) {
  log("--seconds must be a number of at least 20");
  process.exit(2);
}
if (!Number.isInteger(repeat) || repeat < 1) {
  log("--kills must be a whole number of at least 1");
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
const kills: (KillRun | { kind: string; failed: true })[] = [];
try {
  startTurn();
  process.env.ROVERLINK_SECRET ??= "soak-secret-soak-secret-soak-secret";
  const edgeUrl = startEdge();
  await waitEdge(edgeUrl);
  if (!onlyKills) log(`chaos for ${seconds} s at 20 msg/s`);
  const start = Date.now();
  const chaos = onlyKills
    ? null
    : await runScenario(
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

  const kinds = onlyKills && values.kind ? KILL_KINDS.filter((k) => k === values.kind) : KILL_KINDS;
  for (const kind of kinds) {
    log(`kill -9, ${kind}, ${repeat} time(s), restarted on the same state`);
    const r = await killRun(edgeUrl, kind, repeat).catch((e: Error) => {
      log(`${kind}: ${e.message}`);
      return null;
    });
    kills.push(r ?? { kind, failed: true });
    if (r)
      log(
        `${kind}: ${r.kills.filter((k) => k.premiseMet).length}/${r.kills.length} kills as intended; ` +
          `a->b ${r.aToB.delivered}/${r.aToB.sent}, b->a ${r.bToA.delivered}/${r.bToA.sent} delivered; ` +
          `lost ${r.aToB.lost + r.bToA.lost}, duplicated ${r.aToB.duplicated + r.bToA.duplicated}, ` +
          `reordered ${r.aToB.reordered + r.bToA.reordered}`,
      );
  }

  result = {
    date: new Date().toISOString(),
    quick,
    onlyKills,
    seconds,
    killsPerKind: repeat,
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
    kills,
  };
} finally {
  await labDown();
}
const dir = join(REPO_ROOT, "bench", "results");
mkdirSync(dir, { recursive: true });
const file = join(
  dir,
  `soak-${new Date().toISOString().slice(0, 10)}${quick ? "-quick" : ""}${onlyKills ? "-kills" : ""}.json`,
);
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
const chaosFig = result.chaos as { lost: number; duplicated: number; reordered: number } | null;
const problems: string[] = [];
if (onlyKills) problems.push("--only-kills: no chaos run (development only)");
else if (chaosFig === null) problems.push("the chaos run gave no figures");
else if (chaosFig.lost + chaosFig.duplicated + chaosFig.reordered > 0)
  problems.push(
    `chaos: ${chaosFig.lost} lost, ${chaosFig.duplicated} duplicated, ${chaosFig.reordered} reordered`,
  );
for (const r of kills) {
  if ("failed" in r) {
    problems.push(`${r.kind}: the kill run did not finish`);
    continue;
  }
  if (r.kills.length < repeat) problems.push(`${r.kind}: ${r.kills.length} of ${repeat} kills`);
  for (const k of r.kills.filter((k) => !k.premiseMet))
    problems.push(`${r.kind}: premise not met: ${k.premise}`);
  for (const [dir, t] of [
    ["a->b", r.aToB],
    ["b->a", r.bToA],
  ] as const)
    if (t.lost + t.duplicated + t.reordered + t.unexpected > 0 || t.sent === 0)
      problems.push(
        `${r.kind} ${dir}: ${t.sent} sent, ${t.lost} lost, ${t.duplicated} duplicated, ${t.reordered} reordered, ${t.unexpected} unexpected`,
      );
}
log(
  problems.length === 0 ? `ok: nothing lost (${file})` : `FAILED: ${problems.join("; ")} (${file})`,
);
process.exit(problems.length === 0 ? 0 : 1);
