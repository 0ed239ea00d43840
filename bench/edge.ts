/**
 * 4. Edge: offer-to-answer latency through the room object on local workerd, sessions per second
 * in one room and across rooms; against a minimal WebSocket relay (ws) doing the same exchange.
 */
import { WebSocket, WebSocketServer } from "ws";
import type { LocalEdge } from "../rover/local-edge.ts";
import { RoverlinkClient } from "../shared/client.ts";
import { mintToken } from "../shared/token.ts";
import { BENCH_SECRET } from "./peers.ts";
import { ratio, type Summary, summarize } from "./stats.ts";

const SDP = (u: string) =>
  [
    "v=0",
    "o=- 1 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 0.0.0.0",
    `a=ice-ufrag:${u}`,
    "a=ice-pwd:0123456789abcdefghijkl",
    "a=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89",
    "a=setup:actpass",
    "a=mid:0",
    "",
  ].join("\r\n");

export interface EdgeBench {
  offerToAnswerMs: Summary;
  wsRelayMs: Summary;
  ratioEdgeToRelay: number | null;
  sessionsPerSecondOneRoom: number;
  roomsScaling: { rooms: number; sessionsPerSecond: number }[];
}

let roomN = 0;

/** One offerer and one answerer (the answerer long-polls and answers every offer at once). */
async function pairInRoom(edge: LocalEdge, room: string, a: string, b: string) {
  const client = async (id: string) =>
    new RoverlinkClient({
      baseUrl: edge.url,
      token: await mintToken({ secret: BENCH_SECRET, sub: id, room, ttlSeconds: 3600 }),
    });
  const ca = await client(a);
  const cb = await client(b);
  await ca.join(room, {});
  const jb = await cb.join(room, {});
  let running = true;
  let cursor = jb.cursor;
  const answerer = (async () => {
    while (running) {
      const r = await cb.poll(room, b, { after: cursor, wait: 2 }).catch(() => null);
      if (!r) continue;
      cursor = r.cursor;
      for (const ev of r.events) {
        if (ev.type === "offer")
          await cb
            .answer(room, ev.session, SDP("ans"), { contentType: "sdp", ifMatch: ev.etag })
            .catch(() => {});
      }
    }
  })();
  return {
    offer: async () => {
      const t0 = performance.now();
      const r = await ca.offer(room, b, SDP("off"), { waitS: 10 });
      const ms = performance.now() - t0;
      await ca.closeSession(room, r.session).catch(() => {});
      return { ms, ok: r.status === 201 };
    },
    stop: async () => {
      running = false;
      await answerer;
    },
  };
}

async function wsRelay(runs: number): Promise<number[]> {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((r) => server.once("listening", () => r()));
  const port = (server.address() as { port: number }).port;
  const peers = new Map<string, WebSocket>();
  server.on("connection", (ws, req) => {
    const id = new URL(req.url ?? "/", "http://x").searchParams.get("id") ?? "";
    peers.set(id, ws);
    ws.on("message", (data) => {
      const m = JSON.parse(String(data)) as { to: string };
      peers.get(m.to)?.send(String(data));
    });
  });
  const open = (id: string) =>
    new Promise<WebSocket>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/?id=${id}`);
      ws.once("open", () => resolve(ws));
    });
  const a = await open("a");
  const b = await open("b");
  b.on("message", (d) => {
    const m = JSON.parse(String(d)) as { type: string };
    if (m.type === "offer") b.send(JSON.stringify({ to: "a", type: "answer", sdp: SDP("ans") }));
  });
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await new Promise<void>((resolve) => {
      a.once("message", () => resolve());
      a.send(JSON.stringify({ to: "b", type: "offer", sdp: SDP("off") }));
    });
    out.push(performance.now() - t0);
  }
  a.close();
  b.close();
  server.close();
  return out;
}

async function sessionsPerSecond(
  edge: LocalEdge,
  rooms: number,
  pairsPerRoom: number,
  seconds: number,
): Promise<number> {
  const pairs = [];
  for (let r = 0; r < rooms; r++) {
    const room = `bench-edge-${process.pid}-${++roomN}`;
    for (let p = 0; p < pairsPerRoom; p++)
      pairs.push(await pairInRoom(edge, room, `o${p}`, `t${p}`));
  }
  let done = 0;
  const end = Date.now() + seconds * 1000;
  await Promise.all(
    pairs.map(async (p) => {
      while (Date.now() < end) if ((await p.offer()).ok) done++;
    }),
  );
  await Promise.all(pairs.map((p) => p.stop()));
  return Math.round((done / seconds) * 10) / 10;
}

export async function edgeBench(
  edge: LocalEdge,
  runs: number,
  seconds: number,
): Promise<EdgeBench> {
  const p = await pairInRoom(edge, `bench-edge-${process.pid}-${++roomN}`, "a", "b");
  const lat: number[] = [];
  await p.offer(); // warm-up
  for (let i = 0; i < runs; i++) lat.push((await p.offer()).ms);
  await p.stop();
  const relay = await wsRelay(runs);
  const offerToAnswerMs = summarize(lat);
  const wsRelayMs = summarize(relay);
  const sessionsPerSecondOneRoom = await sessionsPerSecond(edge, 1, 4, seconds);
  const roomsScaling = [];
  for (const rooms of [1, 4, 8])
    roomsScaling.push({
      rooms,
      sessionsPerSecond: await sessionsPerSecond(edge, rooms, 1, seconds),
    });
  return {
    offerToAnswerMs,
    wsRelayMs,
    ratioEdgeToRelay: ratio(offerToAnswerMs.median, wsRelayMs.median),
    sessionsPerSecondOneRoom,
    roomsScaling,
  };
}
