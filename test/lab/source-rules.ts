// Run inside a fresh network namespace (`unshare -n`) by source-rules.test.ts: two uplinks with
// default routes (veth pairs), one already routed by source by "the system"; the agent's
// UplinkManager installs source rules for the other, leaves the main table alone on a blackhole,
// and removes only its own rules when it stops. Prints what `ip` showed at each step.
import { execFileSync } from "node:child_process";
import { UplinkManager } from "../../rover/uplinks.ts";

const ip = (...args: string[]) => execFileSync("ip", args, { encoding: "utf8" });
const rules = () =>
  (JSON.parse(ip("-j", "rule", "show")) as { src: string; priority: number; table: string }[])
    .filter((r) => r.src !== "all")
    .map((r) => `${r.src} ${r.table} ${r.priority}`)
    .sort();
const mainDefaults = () => ip("route", "show", "default").trim();

for (const [dev, addr] of [
  ["wifi", "192.168.77.2/24"],
  ["cell", "100.64.77.2/24"],
] as const) {
  ip("link", "add", dev, "type", "veth", "peer", "name", `${dev}-p`);
  ip("addr", "add", addr, "dev", dev);
  ip("link", "set", dev, "up");
  ip("link", "set", `${dev}-p`, "up");
}
ip("route", "add", "default", "via", "192.168.77.1", "dev", "wifi", "metric", "100");
ip("route", "add", "default", "via", "100.64.77.1", "dev", "cell", "metric", "200");
// The system routes wifi by source already (table 10, preference 100).
ip("route", "add", "default", "via", "192.168.77.1", "dev", "wifi", "table", "10");
ip("rule", "add", "from", "192.168.77.2", "lookup", "10", "pref", "100");

const logs: string[] = [];
const m = new UplinkManager({ log: (_o, msg) => logs.push(msg) });
const before = mainDefaults();
await m.sourceRoute();
const installed = rules();
const cellIndex = (JSON.parse(ip("-j", "link", "show", "cell")) as { ifindex: number }[])[0]
  ?.ifindex;
const cellTable = ip("route", "show", "table", String(52_070_000 + (cellIndex ?? 0))).trim();
// Where a socket bound to cell's address goes: cell's gateway, whatever the main table prefers.
const boundCell = ip("route", "get", "203.0.113.9", "from", "100.64.77.2").trim();
const sourceRouted = m.sourceRouted;
const demoted = await m.demotePrimary();
const afterDemote = mainDefaults();
await m.close();
console.log(
  JSON.stringify({
    installed,
    cellTable,
    boundCell,
    sourceRouted,
    demoted,
    mainUnchanged: afterDemote === before,
    afterClose: rules(),
    logs,
  }),
);
