/**
 * Port forwarding against a plain loopback socket: two agents through the local edge, werift on
 * loopback, a `--forward` of each protocol (rover/forward.ts). Measured the same way on the
 * forward and on the target directly, side by side in one run:
 *   TCP throughput: `mib` MiB one way, until the target's sha256 of it comes back;
 *   TCP round trip: 64-byte ping-pong on one connection (an echo server), one at a time;
 *   UDP round trip: 64-byte datagrams to a UDP echo, one at a time.
 * Added latency = forward minus plain, at the median.
 */
import { createHash, randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { connect, createServer, type Server, type Socket } from "node:net";
import pino from "pino";
import { Agent } from "../rover/agent.ts";
import { Forwarder } from "../rover/forward.ts";
import { freePort, type LocalEdge } from "../rover/local-edge.ts";
import { parseForwardSpec } from "../shared/forward-wire.ts";
import { mintToken } from "../shared/token.ts";
import { BENCH_SECRET } from "./peers.ts";
import { type Summary, summarize } from "./stats.ts";

export interface ForwardBench {
  mib: number;
  pings: number;
  tcpMbps: { plain: number; forward: number };
  tcpRttMs: { plain: Summary; forward: Summary; addedMedian: number | null };
  udpRttMs: { plain: Summary; forward: Summary; addedMedian: number | null; lost: number };
}

const listen = (s: Server) =>
  new Promise<number>((r) =>
    s.listen(0, "127.0.0.1", () => r((s.address() as { port: number }).port)),
  );
const dial = (port: number) =>
  new Promise<Socket>((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port, allowHalfOpen: true });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });

/** `mib` MiB one way; resolves Mbit/s once the target's hash of it is back (and checked). */
async function throughput(port: number, mib: number): Promise<number> {
  const s = await dial(port);
  const sent = createHash("sha256");
  const back: Buffer[] = [];
  const done = new Promise<string>((r) => {
    s.on("data", (c: Buffer) => back.push(c));
    s.on("end", () => r(Buffer.concat(back).toString()));
  });
  const chunk = 256 * 1024;
  // Made before the clock starts: random bytes cost more than loopback TCP carries them.
  const pool = randomBytes(4 * chunk);
  const t0 = performance.now();
  for (let n = 0; n < mib * 2 ** 20; n += chunk) {
    const c = pool.subarray(n % pool.length, (n % pool.length) + chunk);
    sent.update(c);
    if (!s.write(c)) await new Promise((r) => s.once("drain", r));
  }
  s.end();
  const hash = await done;
  const secs = (performance.now() - t0) / 1000;
  s.destroy();
  if (hash !== sent.digest("hex")) throw new Error("forward bench: the stream arrived altered");
  return Math.round(((mib * 2 ** 20 * 8) / 1e6 / secs) * 10) / 10;
}

async function tcpPings(port: number, n: number): Promise<number[]> {
  const s = await dial(port);
  const rtts: number[] = [];
  const msg = Buffer.alloc(64, 7);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    let got = 0;
    await new Promise<void>((r) => {
      const on = (c: Buffer) => {
        got += c.length;
        if (got < msg.length) return;
        s.off("data", on);
        r();
      };
      s.on("data", on);
      s.write(msg);
    });
    rtts.push(performance.now() - t0);
  }
  s.destroy();
  return rtts;
}

async function udpPings(port: number, n: number): Promise<{ rtts: number[]; lost: number }> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
  const rtts: number[] = [];
  let lost = 0;
  for (let i = 0; i < n; i++) {
    const d = Buffer.alloc(64);
    d.writeUInt32BE(i);
    const t0 = performance.now();
    const ok = await new Promise<boolean>((r) => {
      const timer = setTimeout(() => {
        s.off("message", on);
        r(false);
      }, 1000);
      const on = (m: Buffer) => {
        if (m.readUInt32BE(0) !== i) return;
        clearTimeout(timer);
        s.off("message", on);
        r(true);
      };
      s.on("message", on);
      s.send(d, port, "127.0.0.1");
    });
    if (ok) rtts.push(performance.now() - t0);
    else lost++;
  }
  s.close();
  return { rtts, lost };
}

export async function forwardBench(
  edge: LocalEdge,
  mib: number,
  pings: number,
): Promise<ForwardBench> {
  // Targets on b's side: a hashing sink, a TCP echo, a UDP echo.
  const sink = createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash("sha256");
    s.on("data", (c: Buffer) => h.update(c));
    s.on("end", () => s.end(h.digest("hex")));
    s.on("error", () => {});
  });
  const echo = createServer((s) => {
    s.on("error", () => {});
    s.pipe(s);
  });
  const udpEcho = createSocket("udp4");
  udpEcho.on("message", (m, from) => udpEcho.send(m, from.port, from.address));
  await new Promise<void>((r) => udpEcho.bind(0, "127.0.0.1", r));
  const [sinkPort, echoPort] = [await listen(sink), await listen(echo)];
  const udpPort = udpEcho.address().port;
  const [fSink, fEcho, fUdp] = [await freePort(), await freePort(), await freePort()];

  const room = `bench-fwd-${process.pid}`;
  const log = pino({ level: "silent" });
  const mk = async (id: string, connectTo: string[]) =>
    new Agent({
      edge: edge.url,
      room,
      id,
      token: await mintToken({ secret: BENCH_SECRET, sub: id, room, ttlSeconds: 3600 }),
      connect: connectTo,
      iceServers: [],
      iceAdditionalHostAddresses: ["127.0.0.1"],
      watchNetwork: false,
      logger: log,
    });
  const b = await mk("b", []);
  const fb = new Forwarder({
    agent: b,
    forwards: [],
    allow: [
      { proto: "tcp", port: sinkPort },
      { proto: "tcp", port: echoPort },
      { proto: "udp", port: udpPort },
    ],
    log,
  });
  const a = await mk("a", ["b"]);
  const fa = new Forwarder({
    agent: a,
    forwards: [
      `tcp:${fSink}:b:${sinkPort}`,
      `tcp:${fEcho}:b:${echoPort}`,
      `udp:${fUdp}:b:${udpPort}`,
    ].map(parseForwardSpec),
    allow: [],
    log,
  });
  try {
    await fb.start();
    await b.start();
    await fa.start();
    const up = new Promise<void>((r) => a.once("link-up", () => r()));
    await a.start();
    await up;
    // Warm-up: the forward's first connection and flow open their channels.
    await tcpPings(fEcho, 5);
    await udpPings(fUdp, 5);
    const plainMbps = await throughput(sinkPort, mib);
    const forwardMbps = await throughput(fSink, mib);
    const tcpPlain = summarize(await tcpPings(echoPort, pings));
    const tcpFwd = summarize(await tcpPings(fEcho, pings));
    const udpPlain = await udpPings(udpPort, pings);
    const udpFwd = await udpPings(fUdp, pings);
    const added = (f: Summary, p: Summary) =>
      f.median === null || p.median === null ? null : Math.round((f.median - p.median) * 100) / 100;
    const uPlain = summarize(udpPlain.rtts);
    const uFwd = summarize(udpFwd.rtts);
    return {
      mib,
      pings,
      tcpMbps: { plain: plainMbps, forward: forwardMbps },
      tcpRttMs: { plain: tcpPlain, forward: tcpFwd, addedMedian: added(tcpFwd, tcpPlain) },
      udpRttMs: {
        plain: uPlain,
        forward: uFwd,
        addedMedian: added(uFwd, uPlain),
        lost: udpFwd.lost,
      },
    };
  } finally {
    await fa.stop();
    await fb.stop();
    await Promise.all([a.stop(), b.stop()]);
    udpEcho.close();
    await Promise.all([sink, echo].map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}
