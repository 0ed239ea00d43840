/**
 * Bench "file": large payloads on a roverlink link, loopback, both agents in this process (CPU is
 * user + system of the whole process, so it covers both ends). Rows: a file through `sendFile`
 * (its own channel, 64 KiB binary chunks, sha256 on both sides included) and one large message on
 * `control` (fragmented to ~48 KiB binary frames, exactly-once). Figures only.
 * Standalone: `node bench/file-transfer.ts [MiB]`; in `npm run bench` as `--only file`.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, type AgentMessage } from "../rover/agent.ts";
import { FileReceiver, type ReceivedFile, sendFile } from "../rover/file-transfer.ts";
import { type LocalEdge, startLocalEdge } from "../rover/local-edge.ts";
import { mintToken } from "../shared/token.ts";
import { BENCH_SECRET } from "./peers.ts";

const MiB = 1024 * 1024;

export interface FileRow {
  what: string;
  bytes: number;
  ms: number;
  mbPerS: number;
  /** CPU of both ends (ms) and per MiB moved (ms). */
  cpuMs: number;
  cpuMsPerMiB: number;
}

export interface FileBench {
  rows: FileRow[];
}

const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;
let room = 0;

async function pair(edge: LocalEdge): Promise<{ a: Agent; b: Agent }> {
  const r = `bench-file-${process.pid}-${++room}`;
  const mk = async (id: string, connect: string[]) =>
    new Agent({
      edge: edge.url,
      room: r,
      id,
      token: await mintToken({ secret: BENCH_SECRET, sub: id, room: r, ttlSeconds: 3600 }),
      connect,
      iceServers: [],
      iceAdditionalHostAddresses: ["127.0.0.1"],
      watchNetwork: false,
    });
  const b = await mk("b", []);
  await b.start();
  const a = await mk("a", ["b"]);
  const up = new Promise<void>((resolve) => a.once("link-up", () => resolve()));
  await a.start();
  await up;
  return { a, b };
}

async function writeRandom(path: string, bytes: number): Promise<void> {
  const out = createWriteStream(path);
  for (let at = 0; at < bytes; at += MiB) {
    if (!out.write(randomBytes(Math.min(MiB, bytes - at))))
      await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((r) => out.end(() => r()));
}

function row(what: string, bytes: number, ms: number, cpu: number): FileRow {
  return {
    what,
    bytes,
    ms: Math.round(ms),
    mbPerS: Math.round((bytes / 1e6 / (ms / 1000)) * 100) / 100,
    cpuMs: Math.round(cpu),
    cpuMsPerMiB: Math.round((cpu / (bytes / MiB)) * 10) / 10,
  };
}

export async function fileBench(
  edge: LocalEdge,
  fileMiB: number,
  messageMiB: number,
): Promise<FileBench> {
  const rows: FileRow[] = [];
  const work = mkdtempSync(join(tmpdir(), "rl-bench-file-"));
  try {
    const { a, b } = await pair(edge);
    try {
      const src = join(work, "file.bin");
      const size = fileMiB * MiB;
      await writeRandom(src, size);
      const dst = mkdtempSync(join(work, "in-"));
      const receiver = new FileReceiver({ agent: b, dir: dst, log: { info() {}, warn() {} } });
      receiver.start();
      const got = new Promise<ReceivedFile>((r) => receiver.once("received", r));
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await sendFile(a, "b", src).done;
      await got;
      rows.push(
        row(
          `${fileMiB} MiB file (sendFile)`,
          size,
          performance.now() - t0,
          cpuMs(process.cpuUsage(cpu0)),
        ),
      );
      receiver.stop();

      const msg = randomBytes(messageMiB * MiB);
      const arrived = new Promise<void>((r) =>
        b.on("message", (m: AgentMessage) => {
          if (m.channel === "control" && typeof m.data !== "string") r();
        }),
      );
      const cpu1 = process.cpuUsage();
      const t1 = performance.now();
      a.send("b", "control", msg);
      await arrived;
      rows.push(
        row(
          `${messageMiB} MiB message on control`,
          msg.length,
          performance.now() - t1,
          cpuMs(process.cpuUsage(cpu1)),
        ),
      );
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { rows };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const mib = Number(process.argv[2] ?? 100);
  const edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: BENCH_SECRET } });
  try {
    const r = await fileBench(edge, mib, 16);
    for (const x of r.rows)
      process.stdout.write(
        `${x.what}: ${x.mbPerS} MB/s (${x.ms} ms), CPU ${x.cpuMs} ms for both ends, ${x.cpuMsPerMiB} ms/MiB\n`,
      );
  } finally {
    await edge.stop();
  }
}
