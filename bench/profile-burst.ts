/**
 * `node --cpu-prof bench/profile-burst.ts [roverlink|werift|werift-unpatched] [messages] [bytes]`:
 * one linked pair on loopback, three bursts echoed back, for a CPU profile of the data path (not
 * part of `npm run bench`; figures come from bench/run.ts). `PACED=<seconds>`: 100 msg/s of
 * 16-byte probes instead of the bursts. `PER_PEER=1`: the echoing end in a worker thread.
 * `BURSTS=<n>`: n bursts instead of three.
 */

import { startLocalEdge } from "../rover/local-edge.ts";
import { BENCH_SECRET, roverlinkPair, weriftPair } from "./peers.ts";
import { sleep, until } from "./stats.ts";

const stack = process.argv[2] ?? "werift";
if (!["roverlink", "werift", "werift-unpatched"].includes(stack)) {
  process.stderr.write(
    `profile-burst: unknown stack "${stack}" (roverlink, werift, werift-unpatched)\n`,
  );
  process.exit(2);
}
const messages = Number(process.argv[3] ?? 2000);
const bytes = Number(process.argv[4] ?? 1024);
const edge =
  stack === "roverlink"
    ? await startLocalEdge({ vars: { ROVERLINK_SECRET: BENCH_SECRET, MAX_PEERS_PER_ROOM: "64" } })
    : null;
// Both ends on this thread, so that one CPU profile holds both (PER_PEER=1: b in a worker, as
// bench/run.ts runs it).
const oneThread = process.env.PER_PEER !== "1";
const { pair } = edge
  ? await roverlinkPair(edge, { oneThread })
  : await weriftPair(stack === "werift-unpatched", { oneThread });
let n = 0;
pair.onEcho(() => n++);
await sleep(500);
const payload = "x".repeat(bytes - 16);
if (process.env.PACED) {
  // 100 msg/s of 16-byte probes for PACED seconds, as bench/data-path.ts's RTT phase.
  const secs = Number(process.env.PACED);
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < secs * 100; i++) {
    const wait = t0 + i * 10 - performance.now();
    if (wait > 0) await sleep(wait);
    pair.send(`r${String(i).padStart(15, "0")}`);
  }
  await until(() => n >= secs * 100, 10_000);
  const c = process.cpuUsage(cpu);
  process.stderr.write(
    `${stack} paced: ${Math.round((c.user + c.system) / (secs * 100))} µs CPU/msg\n`,
  );
  await pair.close();
  await edge?.stop();
  process.exit(0);
}
for (let round = 0; round < Number(process.env.BURSTS ?? 3); round++) {
  const before = n;
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < messages; i++) pair.send(`t${String(i).padStart(15, "0")}${payload}`);
  const ok = await until(() => n - before >= messages, 120_000);
  const s = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(cpu);
  process.stderr.write(
    `${stack} ${messages}×${bytes}: ${ok ? "" : "INCOMPLETE "}${s.toFixed(2)} s, ${((messages * bytes) / s / 1e6).toFixed(2)} MB/s, ${Math.round((c.user + c.system) / messages)} µs CPU/msg\n`,
  );
  await sleep(200);
}
await pair.close();
await edge?.stop();
process.exit(0);
