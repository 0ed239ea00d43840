/**
 * 4. Edge on local workerd: offer-to-answer latency through the room object (POST offer parked in
 * the Worker, the answerer's long-poll woken, its answer returned in the 201), sessions per second
 * in one room as concurrency grows, and the same concurrency spread over more rooms (one Durable
 * Object each). Baseline: a minimal `ws` WebSocket relay forwarding offer and answer frames.
 */
import { WebSocket, WebSocketServer } from "ws";
import type { LocalEdge } from "../rover/local-edge.ts";
import { RoverlinkClient } from "../shared/client.ts";
import { ProblemError } from "../shared/errors.ts";
import { mintToken } from "../shared/token.ts";
import { BENCH_SECRET } from "./peers.ts";
import { ratio, type Summary, summarize } from "./stats.ts";

// A real-shaped data-channel offer/answer (what werift sends, minus candidates), ~400 bytes.
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
    "a=sctp-port:5000",
    "",
  ].join("\r\n");

export interface Throughput {
  rooms: number;
  pairsPerRoom: number;
  sessionsPerSecond: number;
  /** Offers that did not complete with a 201 (answer in the response); by status or error name. */
  errors: Record<string, number>;
}

export interface EdgeBench {
  runs: number;
  /** Context: one plain request through wrangler dev and workerd (no auth), and an authenticated one. */
  healthzMs: Summary;
  iceServersMs: Summary;
  offerToAnswerMs: Summary;
  /** One trickle PATCH (a candidate, If-Match) on an answered session, to its 204. */
  trickleMs?: Summary;
  /** Offer→answer and trickle over a bare request (GET /healthz), medians: the edge's own cost. */
  offerOverBare?: number | null;
  trickleOverBare?: number | null;
  /** Every sample, ms, in the order taken. */
  samples?: { healthzMs: number[]; offerToAnswerMs: number[]; trickleMs: number[] };
  wsRelayMs: Summary;
  /** Median edge latency over median relay latency. */
  ratioLatency: number | null;
  /** One room, growing number of concurrent offerer/answerer pairs. */
  oneRoom: Throughput[];
  /** The same total concurrency spread over more rooms. */
  rooms: Throughput[];
  wsRelay: { pairs: number; sessionsPerSecond: number };
  /** Edge sessions/s over relay sessions/s at the same concurrency, one room. */
  ratioThroughput: number | null;
  secondsPerPoint: number;
}

let seq = 0;

interface EdgePair {
  offer(): Promise<{ ms: number; error?: string }>;
  /** Offer, keep the session open, and time `n` trickle PATCHes on it. */
  trickles(n: number): Promise<number[]>;
  stop(): Promise<void>;
}

/**
 * One offerer and one answerer in `room` (the answerer long-polls and answers every offer at
 * once). Fresh peer ids every time: the edge's rate limit is per token subject.
 */
async function pairInRoom(edge: LocalEdge, room: string): Promise<EdgePair> {
  const n = ++seq;
  const a = `o${n}`;
  const b = `t${n}`;
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
  const abort = new AbortController();
  const answerer = (async () => {
    while (running) {
      const r = await cb
        .poll(room, b, { after: cursor, wait: 10, signal: abort.signal })
        // Aborted at stop(), or a failed poll: the loop polls again (or ends).
        .catch(() => null);
      if (!r) continue;
      cursor = r.cursor;
      for (const ev of r.events) {
        if (ev.type === "offer")
          await cb
            .answer(room, ev.session, SDP("ans"), { contentType: "sdp", ifMatch: ev.etag })
            // A failed answer shows up as the offer's own error (counted there).
            .catch(() => undefined);
      }
    }
  })();
  return {
    offer: async () => {
      const t0 = performance.now();
      try {
        const r = await ca.offer(room, b, SDP("off"), { waitS: 10 });
        const ms = performance.now() - t0;
        // Not part of the measure; a leftover session is closed by the next offer (superseded).
        await ca.closeSession(room, r.session).catch(() => undefined);
        return r.status === 201 ? { ms } : { ms, error: `${r.status}` };
      } catch (err) {
        return {
          ms: performance.now() - t0,
          error: err instanceof ProblemError ? String(err.status) : (err as Error).name,
        };
      }
    },
    trickles: async (n) => {
      const r = await ca.offer(room, b, SDP("trickler"), { waitS: 10 });
      if (r.status !== 201) throw new Error(`offer for the trickle run: ${r.status}`);
      const etag = r.etag;
      const times: number[] = [];
      for (let i = 0; i <= n; i++) {
        const frag = [
          "a=ice-ufrag:trickler",
          "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
          "a=mid:0",
          `a=candidate:1 1 udp 2130706431 127.0.0.1 ${50_000 + i} typ host`,
          "",
        ].join("\r\n");
        const t0 = performance.now();
        await ca.trickle(room, r.session, frag, { ifMatch: etag });
        if (i > 0) times.push(performance.now() - t0); // the first is a warm-up
      }
      await ca.closeSession(room, r.session);
      return times;
    },
    stop: async () => {
      running = false;
      abort.abort();
      await answerer;
      // Clean-up only: presence expires by itself.
      await Promise.all([
        ca.leave(room, a).catch(() => undefined),
        cb.leave(room, b).catch(() => undefined),
      ]);
    },
  };
}

async function sessionsPerSecond(
  edge: LocalEdge,
  rooms: number,
  pairsPerRoom: number,
  seconds: number,
): Promise<Throughput> {
  const pairs: EdgePair[] = [];
  for (let r = 0; r < rooms; r++) {
    const room = `bench-edge-${process.pid}-${++seq}`;
    for (let p = 0; p < pairsPerRoom; p++) pairs.push(await pairInRoom(edge, room));
  }
  let done = 0;
  const errors: Record<string, number> = {};
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    pairs.map(async (p) => {
      while (performance.now() < end) {
        const r = await p.offer();
        if (r.error) errors[r.error] = (errors[r.error] ?? 0) + 1;
        else done++;
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  await Promise.all(pairs.map((p) => p.stop()));
  return { rooms, pairsPerRoom, sessionsPerSecond: Math.round((done / secs) * 10) / 10, errors };
}

/** The baseline: a WebSocket server that forwards each frame to the peer named in `to`. */
async function wsRelay(
  runs: number,
  pairs: number,
  seconds: number,
): Promise<{ latency: number[]; sessionsPerSecond: number }> {
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
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/?id=${id}`);
      ws.once("open", () => resolve(ws));
      ws.once("error", reject);
    });
  const mkPair = async (n: number) => {
    const a = await open(`a${n}`);
    const b = await open(`b${n}`);
    b.on("message", (d) => {
      const m = JSON.parse(String(d)) as { type: string };
      if (m.type === "offer")
        b.send(JSON.stringify({ to: `a${n}`, type: "answer", sdp: SDP("ans") }));
    });
    const offer = () =>
      new Promise<number>((resolve) => {
        const t0 = performance.now();
        a.once("message", () => resolve(performance.now() - t0));
        a.send(JSON.stringify({ to: `b${n}`, type: "offer", sdp: SDP("off") }));
      });
    return { offer, close: () => [a.close(), b.close()] };
  };
  const first = await mkPair(0);
  await first.offer(); // warm-up
  const latency: number[] = [];
  for (let i = 0; i < runs; i++) latency.push(await first.offer());
  const all = [first];
  for (let n = 1; n < pairs; n++) all.push(await mkPair(n));
  let done = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    all.map(async (p) => {
      while (performance.now() < end) {
        await p.offer();
        done++;
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  for (const p of all) p.close();
  await new Promise<void>((r) => server.close(() => r()));
  return { latency, sessionsPerSecond: Math.round((done / secs) * 10) / 10 };
}

async function requestTimes(
  edge: LocalEdge,
  runs: number,
): Promise<{ healthz: number[]; ice: number[] }> {
  const c = new RoverlinkClient({
    baseUrl: edge.url,
    token: await mintToken({
      secret: BENCH_SECRET,
      sub: `r${++seq}`,
      room: "bench-requests",
      ttlSeconds: 3600,
    }),
  });
  // /v1/ice-servers needs membership.
  await c.join("bench-requests", {});
  const healthz: number[] = [];
  const ice: number[] = [];
  for (let i = 0; i <= runs; i++) {
    let t0 = performance.now();
    await (await fetch(`${edge.url}/healthz`)).text();
    if (i > 0) healthz.push(performance.now() - t0); // the first is a warm-up
    t0 = performance.now();
    await c.iceServers();
    if (i > 0) ice.push(performance.now() - t0);
  }
  return { healthz, ice };
}

export async function edgeBench(
  edge: LocalEdge,
  runs: number,
  seconds: number,
): Promise<EdgeBench> {
  const req = await requestTimes(edge, runs);
  const p = await pairInRoom(edge, `bench-edge-${process.pid}-${++seq}`);
  await p.offer(); // warm-up: the room object's first wake, SQLite, the parked-wait path
  const lat: number[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await p.offer();
    if (!r.error) lat.push(r.ms);
  }
  const trickle = await p.trickles(runs);
  await p.stop();
  const CONCURRENCY = 8;
  const oneRoom: Throughput[] = [];
  for (const pairs of [1, 4, CONCURRENCY])
    oneRoom.push(await sessionsPerSecond(edge, 1, pairs, seconds));
  const rooms: Throughput[] = [];
  for (const r of [2, 4, CONCURRENCY])
    rooms.push(await sessionsPerSecond(edge, r, CONCURRENCY / r, seconds));
  const relay = await wsRelay(runs, CONCURRENCY, seconds);
  const offerToAnswerMs = summarize(lat);
  const wsRelayMs = summarize(relay.latency);
  const healthzMs = summarize(req.healthz);
  const trickleMs = summarize(trickle);
  return {
    runs,
    healthzMs,
    iceServersMs: summarize(req.ice),
    offerToAnswerMs,
    trickleMs,
    offerOverBare: ratio(offerToAnswerMs.median, healthzMs.median),
    trickleOverBare: ratio(trickleMs.median, healthzMs.median),
    samples: { healthzMs: req.healthz, offerToAnswerMs: lat, trickleMs: trickle },
    wsRelayMs,
    ratioLatency: ratio(offerToAnswerMs.median, wsRelayMs.median),
    oneRoom,
    rooms,
    wsRelay: { pairs: CONCURRENCY, sessionsPerSecond: relay.sessionsPerSecond },
    ratioThroughput: ratio(oneRoom.at(-1)?.sessionsPerSecond, relay.sessionsPerSecond),
    secondsPerPoint: seconds,
  };
}
