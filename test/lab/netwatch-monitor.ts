// Run inside a fresh network namespace (`unshare -n`) by netwatch-monitor.test.ts: a NetWatch on
// netlink events, then an interface and an address appear; prints how long until it noticed.
import { execFileSync } from "node:child_process";
import { NetWatch } from "../../rover/netwatch.ts";

const w = new NetWatch();
const seen = new Promise<number>((resolve) => w.once("change", () => resolve(performance.now())));
await new Promise((r) => setTimeout(r, 300)); // `ip monitor` subscribed
const t0 = performance.now();
execFileSync("ip", ["link", "add", "rlmon0", "type", "veth", "peer", "name", "rlmon1"]);
execFileSync("ip", ["addr", "add", "10.77.0.1/24", "dev", "rlmon0"]);
execFileSync("ip", ["link", "set", "rlmon0", "up"]);
// Node lists an interface only once it is running (the veth's peer up), and a default route
// through it is a route change as well.
execFileSync("ip", ["link", "set", "rlmon1", "up"]);
execFileSync("ip", ["route", "add", "default", "dev", "rlmon0"]);
const at = await Promise.race([seen, new Promise<number>((r) => setTimeout(() => r(-1), 3_000))]);
console.log(JSON.stringify({ monitored: w.monitored, ms: at < 0 ? null : Math.round(at - t0) }));
w.close();
process.exit(0);
