/**
 * 5. Footprint: a rover agent's memory (RSS of a real `roverlink rover` process) idle and linked,
 * and the wire cost of an idle link, against a WireGuard-style 25 s keepalive.
 * Wire cost: packets and bytes the link's selected pair sent in both directions while idle
 * (werift counters: DTLS records, i.e. probes, acks and SCTP heartbeats; ICE consent checks are
 * STUN and are counted separately from werift's consent interval).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Agent } from "../rover/agent.ts";
import { type LocalEdge, REPO_ROOT } from "../rover/local-edge.ts";
import { mintToken } from "../shared/token.ts";
import { BENCH_SECRET } from "./peers.ts";
import { sleep } from "./stats.ts";

export interface Footprint {
  rssIdleMiB: number;
  rssLinkedMiB: number;
  idleLink: { seconds: number; packetsPerDay: number; bytesPerDay: number; note: string };
  wireguardKeepalive: { packetsPerDay: number; bytesPerDay: number };
  ratioBytes: number | null;
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : Number.NaN;
}

function rover(edge: LocalEdge, room: string, id: string, extra: string[]): ChildProcess {
  return spawn(
    process.execPath,
    [
      join(REPO_ROOT, "rover/cli.ts"),
      "rover",
      "--edge",
      edge.url,
      "--room",
      room,
      "--id",
      id,
      "--log-level",
      "warn",
      ...extra,
    ],
    {
      env: { ...process.env, ROVERLINK_SECRET: BENCH_SECRET },
      stdio: "ignore",
    },
  );
}

export async function footprint(edge: LocalEdge, idleSeconds: number): Promise<Footprint> {
  const room = `bench-fp-${process.pid}`;
  const a = rover(edge, room, "a", ["--connect", "b"]);
  await sleep(4_000);
  const rssIdleMiB = rssMiB(a.pid as number);
  const b = rover(edge, room, "b", ["--echo"]);
  await sleep(8_000);
  const rssLinkedMiB = rssMiB(a.pid as number);
  a.kill("SIGTERM");
  b.kill("SIGTERM");

  // Idle link, in process, to read werift's pair counters.
  const r2 = `${room}-idle`;
  const mk = async (id: string, connect: string[]) =>
    new Agent({
      edge: edge.url,
      room: r2,
      id,
      token: await mintToken({ secret: BENCH_SECRET, sub: id, room: r2, ttlSeconds: 3600 }),
      connect,
      watchNetwork: false,
    });
  const x = await mk("x", []);
  await x.start();
  const y = await mk("y", ["x"]);
  const up = new Promise<void>((res) => y.once("link-up", () => res()));
  await y.start();
  await up;
  await sleep(2_000);
  const before = Date.now();
  const s0 = countAll(y);
  await sleep(idleSeconds * 1000);
  const s1 = countAll(y);
  const secs = (Date.now() - before) / 1000;
  await Promise.all([x.stop(), y.stop()]);
  // Both directions cross the link; y's pair sees what y sent, x's what x sent: y sent about half.
  const packets = (s1.packets - s0.packets) * 2;
  const bytes = (s1.bytes - s0.bytes) * 2;
  // ICE consent (RFC 7675): a STUN binding about every 5 s each way, ~100 bytes with UDP/IP.
  const consentPacketsPerDay = 2 * (86400 / 5) * 2;
  const packetsPerDay = Math.round((packets / secs) * 86400 + consentPacketsPerDay);
  const bytesPerDay = Math.round(
    ((bytes + packets * 28) / secs) * 86400 + consentPacketsPerDay * 100,
  );
  // WireGuard persistent keepalive every 25 s: 32-byte message + 28 bytes UDP/IPv4 headers, one way.
  const wg = { packetsPerDay: Math.round(86400 / 25), bytesPerDay: Math.round((86400 / 25) * 60) };
  return {
    rssIdleMiB,
    rssLinkedMiB,
    idleLink: {
      seconds: Math.round(secs),
      packetsPerDay,
      bytesPerDay,
      note: "werift pair counters (DTLS records incl. 1/s health probes both ways, acks, SCTP heartbeats) + 28 B UDP/IP per packet + ICE consent estimated at one STUN exchange per 5 s",
    },
    wireguardKeepalive: wg,
    ratioBytes: Math.round((bytesPerDay / wg.bytesPerDay) * 10) / 10,
  };
}

/** Packets and bytes the agent's links sent on their selected pairs (werift internals). */
function countAll(ag: Agent): { packets: number; bytes: number } {
  let packets = 0;
  let bytes = 0;
  for (const link of ag.links().values()) {
    const p = link.selectedPair();
    if (p) {
      packets += p.packetsSent;
      bytes += p.bytesSent;
    }
  }
  return { packets, bytes };
}
