/**
 * 3. Data path: RTT at 100 msg/s, reliable throughput and CPU per message, roverlink links (with
 * the reliable layer on control) vs stock werift data channels. Both peers run in this process,
 * so CPU figures cover both ends.
 */
import type { LocalEdge } from "../rover/local-edge.ts";
import { type EchoPair, NODE_DATACHANNEL_UNAVAILABLE, roverlinkPair, weriftPair } from "./peers.ts";
import { ratio, type Summary, sleep, summarize, until } from "./stats.ts";

export interface PathFigures {
  rttMs: Summary;
  throughputMBps: number;
  cpuUsPerMessage: number;
}

export interface DataPath {
  roverlink: PathFigures;
  werift: PathFigures;
  nodeDatachannel: string;
  ratios: {
    rttP50: number | null;
    rttP99: number | null;
    throughput: number | null;
    cpu: number | null;
  };
}

async function measure(pair: EchoPair, seconds: number, burst: number): Promise<PathFigures> {
  const sentAt = new Map<string, number>();
  const rtts: number[] = [];
  let echoed = 0;
  pair.onEcho((d) => {
    echoed++;
    const t = sentAt.get(d.slice(0, 16));
    if (t !== undefined) rtts.push(performance.now() - t);
  });
  // RTT at 100 msg/s.
  const cpu0 = process.cpuUsage();
  const n = seconds * 100;
  for (let i = 0; i < n; i++) {
    const id = `r${String(i).padStart(15, "0")}`;
    sentAt.set(id, performance.now());
    pair.send(id);
    await sleep(10);
  }
  await until(() => echoed >= n, 10_000);
  const cpu = process.cpuUsage(cpu0);
  const cpuUsPerMessage = (cpu.user + cpu.system) / Math.max(1, echoed);
  // Reliable throughput: `burst` messages of 1 KiB, as fast as they go, until all are echoed.
  const payload = "x".repeat(1024 - 16);
  const before = echoed;
  const t0 = performance.now();
  for (let i = 0; i < burst; i++) pair.send(`t${String(i).padStart(15, "0")}${payload}`);
  await until(() => echoed - before >= burst, 60_000);
  const secs = (performance.now() - t0) / 1000;
  // Echoed: each byte crossed twice; count one direction.
  const throughputMBps = Math.round(((burst * 1024) / secs / 1e6) * 100) / 100;
  return { rttMs: summarize(rtts), throughputMBps, cpuUsPerMessage: Math.round(cpuUsPerMessage) };
}

export async function dataPath(edge: LocalEdge, seconds: number, burst: number): Promise<DataPath> {
  const r = await roverlinkPair(edge);
  const roverlink = await measure(r.pair, seconds, burst);
  await r.pair.close();
  const w = await weriftPair();
  const werift = await measure(w.pair, seconds, burst);
  await w.pair.close();
  return {
    roverlink,
    werift,
    nodeDatachannel: `unavailable: ${NODE_DATACHANNEL_UNAVAILABLE}`,
    ratios: {
      rttP50: ratio(roverlink.rttMs.median, werift.rttMs.median),
      rttP99: ratio(roverlink.rttMs.p99, werift.rttMs.p99),
      throughput: ratio(roverlink.throughputMBps, werift.throughputMBps),
      cpu: ratio(roverlink.cpuUsPerMessage, werift.cpuUsPerMessage),
    },
  };
}
