/**
 * 4. Edge on local workerd: offer-to-answer latency through the room object (POST offer parked in
 * the Worker, the offer event on the answerer's SSE stream as the rover agent follows its room,
 * its answer returned in the 201; the same with long-polling peers for context), sessions per second
 * in one room as concurrency grows, and the same concurrency spread over more rooms (one Durable
 * Object each). Baseline: a minimal `ws` WebSocket relay forwarding offer and answer frames.
 *
 * The goals are ratios to a bare request (GET /healthz) through the same client, proxy and
 * workerd, sampled in turn with the offers and trickles so that all three see the same machine
 * load. Each simulated robot has a client address of its own (robotFetch), as robots do: the
 * per-address rate limit then acts as in production instead of throttling the whole benchmark
 * as one client. CPU time per session of the edge's
 * processes and of this client is measured beside each throughput point: on a shared machine it
 * shows what bounds the rate.
 */
import { readdirSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { Agent, fetch as undiciFetch } from "undici";
import { WebSocket, WebSocketServer } from "ws";
import type { LocalEdge } from "../rover/local-edge.ts";
import type { FetchFn } from "../shared/client.ts";
import { RoverlinkClient } from "../shared/client.ts";
import { ProblemError } from "../shared/errors.ts";
import type { RoomEvent } from "../shared/protocol.ts";
import { mintToken } from "../shared/token.ts";
import { BENCH_SECRET } from "./peers.ts";
import { ratio, type Summary, sleep, summarize } from "./stats.ts";

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
  /** How the pairs followed their events (absent before 2026-12-06: long-polls). */
  events?: EventsMode;
  rooms: number;
  pairsPerRoom: number;
  sessionsPerSecond: number;
  /** Offers that did not complete with a 201 (answer in the response); by status or error name. */
  errors: Record<string, number>;
  /** Failed long-polls and broken event streams of the pairs, by status or error name. */
  eventErrors?: Record<string, number>;
  /** CPU time per completed session: the edge's processes (wrangler, its proxy and workerd) and this client. */
  cpuMsPerSession?: { edge: number | null; client: number };
  /** Share of one core the edge's processes used during the point (1 = a full core). */
  edgeCores?: number | null;
  /** Every offer's time to its 201, ms, in the order completed. */
  samples?: number[];
}

/** A goal on a ratio or a rate, and whether this run met it. */
export interface Goal {
  value: number | null;
  goal: number;
  /** "max": value ≤ goal; "min": value ≥ goal. */
  kind: "max" | "min";
  met: boolean;
}

export interface EdgeBench {
  runs: number;
  /** The machine's 1-minute load average when the section started and ended (cores: os.cpus()). */
  loadAverage?: { start: number; end: number };
  /** Context: one plain request through wrangler dev and workerd (no auth), and an authenticated one. */
  healthzMs: Summary;
  iceServersMs: Summary;
  /** Both peers following their events over SSE, the rover agent's default (before 2026-12-06: long-polls). */
  offerToAnswerMs: Summary;
  /** The same with both peers long-polling (the agent's fallback, curl's way). */
  offerToAnswerPollMs?: Summary;
  /** How the peers of `offerToAnswerMs`, trickle and the one-room goal followed their events. */
  events?: EventsMode;
  /** One trickle PATCH (a candidate, If-Match) on an answered session, to its 204. */
  trickleMs?: Summary;
  /** The same PATCH, from its start to the candidates event on the other party's SSE stream. */
  trickleDeliveredMs?: Summary;
  /** Offer→answer and trickle over a bare request (GET /healthz), medians: the edge's own cost. */
  offerOverBare?: number | null;
  trickleOverBare?: number | null;
  /** Every sample, ms, in the order taken (bare, offer and trickle taken in turn). */
  samples?: {
    healthzMs: number[];
    offerToAnswerMs: number[];
    offerToAnswerPollMs?: number[];
    trickleMs: number[];
    trickleDeliveredMs?: number[];
    iceServersMs?: number[];
    wsRelayMs?: number[];
  };
  /** The edge's latency and throughput goals (docs/performance.md), as met on this run. */
  goals?: { offerOverBare: Goal; trickleOverBare: Goal; sessionsPerSecondOneRoom: Goal };
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
let lastAddress = 1;

/**
 * A fetch for one simulated robot: a connection pool of its own, and its own client address in
 * CF-Connecting-IP (from 198.18.0.0/15, the benchmarking range), the header Cloudflare's front
 * sets from each robot's address. Through wrangler dev every request otherwise reaches the Worker
 * from 127.0.0.1 (its proxy's address, whatever the client's source address: checked against the
 * local limiter's keys), and the per-address limit would treat all robots as one client.
 */
function robotFetch(): { fetch: FetchFn; close(): Promise<void> } {
  const n = ++lastAddress;
  const address = `198.${18 + ((n >> 16) & 1)}.${(n >> 8) & 255}.${n & 255}`;
  const dispatcher = new Agent({ keepAliveTimeout: 30_000 });
  return {
    fetch: (url, init) => {
      const headers: Record<string, string> = Object.fromEntries(new Headers(init.headers));
      headers["CF-Connecting-IP"] = address;
      return undiciFetch(url, {
        ...(init as Parameters<typeof undiciFetch>[1]),
        headers,
        dispatcher,
      }) as unknown as Promise<Response>;
    },
    close: () => dispatcher.close(),
  };
}

/** One bare request (no auth, no body, no room): the context every goal is a ratio to. */
export async function bare(edge: LocalEdge, f: FetchFn): Promise<number> {
  const t0 = performance.now();
  await (await f(`${edge.url}/healthz`, {})).text();
  return performance.now() - t0;
}

export interface EdgePair {
  /** Failed long-polls / broken streams while following events, by status or error name. */
  eventErrors: Record<string, number>;
  /** The offerer's fetch (its own client address). */
  fetch: FetchFn;
  offer(): Promise<{ ms: number; error?: string }>;
  /**
   * Offer and keep the session open for trickles; `trickle()` then times one PATCH to its 204
   * (`ms`) and to the candidates event on the other party's stream (`deliveredMs`, null when it
   * did not come within 5 s).
   */
  openTrickle(): Promise<void>;
  trickle(): Promise<{ ms: number; deliveredMs: number | null }>;
  stop(): Promise<void>;
}

/** How a simulated robot follows its room's events. */
export type EventsMode = "sse" | "poll";

/**
 * Follow `id`'s events: an SSE stream (the rover agent's default) or long-polls (its fallback, and
 * what a curl user does). Calls `on` for each event in order until `running()` is false; a broken
 * stream or failed poll is counted in `errors` and taken up again from the last cursor.
 */
async function follow(
  c: RoverlinkClient,
  room: string,
  id: string,
  cursor: string,
  mode: EventsMode,
  running: () => boolean,
  signal: AbortSignal,
  on: (ev: RoomEvent) => Promise<void>,
  errors: Record<string, number>,
): Promise<void> {
  let after = cursor;
  while (running()) {
    try {
      if (mode === "sse") {
        for await (const ev of c.stream(room, id, { lastEventId: after, signal })) {
          after = ev.id;
          await on(ev);
        }
      } else {
        const r = await c.poll(room, id, { after, wait: 10, signal });
        after = r.cursor;
        for (const ev of r.events) await on(ev);
      }
    } catch (err) {
      // Aborted at stop(), or a broken stream / failed poll: counted, then followed again from
      // the cursor after a pause (as the agent does; a tight loop would measure itself).
      if (!running()) return;
      const key = err instanceof ProblemError ? String(err.status) : (err as Error).name;
      errors[key] = (errors[key] ?? 0) + 1;
      await sleep(250);
    }
  }
}

/**
 * One offerer and one answerer in `room` (the answerer answers every offer at once), each from an
 * address of its own, both following their events by `mode`. Fresh peer ids every time: the
 * edge's rate limit is per token subject.
 */
export async function pairInRoom(
  edge: LocalEdge,
  room: string,
  mode: EventsMode,
): Promise<EdgePair> {
  const n = ++seq;
  const a = `o${n}`;
  const b = `t${n}`;
  const fa = robotFetch();
  const fb = robotFetch();
  const client = async (id: string, f: FetchFn) =>
    new RoverlinkClient({
      baseUrl: edge.url,
      token: await mintToken({ secret: BENCH_SECRET, sub: id, room, ttlSeconds: 3600 }),
      fetch: f,
    });
  const ca = await client(a, fa.fetch);
  const cb = await client(b, fb.fetch);
  const ja = await ca.join(room, {});
  const jb = await cb.join(room, {});
  let running = true;
  const isRunning = () => running;
  const abort = new AbortController();
  // The offerer follows its events too, as a robot does: that keeps it present in the room past
  // PRESENCE_TTL_S (and with it the session the trickles go to).
  const eventErrors: Record<string, number> = {};
  const presence = follow(
    ca,
    room,
    a,
    ja.cursor,
    mode,
    isRunning,
    abort.signal,
    async () => {},
    eventErrors,
  );
  // The trickle run's candidates, as they reach the answerer's stream.
  let onCandidates: (() => void) | null = null;
  const answer = async (ev: RoomEvent) => {
    if (ev.type === "candidates") onCandidates?.();
    if (ev.type === "offer")
      await cb
        .answer(room, ev.session, SDP("answ"), { contentType: "sdp", ifMatch: ev.etag })
        // A failed answer shows up as the offer's own error (counted there).
        .catch(() => undefined);
  };
  const answerer = follow(
    cb,
    room,
    b,
    jb.cursor,
    mode,
    isRunning,
    abort.signal,
    answer,
    eventErrors,
  );
  let trickling: { session: string; etag: string } | null = null;
  let port = 50_000;
  const frag = () =>
    [
      "a=ice-ufrag:trickler",
      "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
      "a=mid:0",
      `a=candidate:1 1 udp 2130706431 127.0.0.1 ${port++} typ host`,
      "",
    ].join("\r\n");
  return {
    eventErrors,
    fetch: fa.fetch,
    offer: async () => {
      const t0 = performance.now();
      try {
        const r = await ca.offer(room, b, SDP("offr"), { waitS: 10 });
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
    openTrickle: async () => {
      const r = await ca.offer(room, b, SDP("trickler"), { waitS: 10 });
      if (r.status !== 201) throw new Error(`offer for the trickle run: ${r.status}`);
      trickling = { session: r.session, etag: r.etag };
      await ca.trickle(room, r.session, frag(), { ifMatch: r.etag }); // warm-up
    },
    trickle: async () => {
      if (!trickling) throw new Error("openTrickle() first");
      const body = frag();
      let delivered: number | null = null;
      const arrived = new Promise<void>((resolve) => {
        onCandidates = () => {
          delivered = performance.now();
          resolve();
        };
      });
      const t0 = performance.now();
      await ca.trickle(room, trickling.session, body, { ifMatch: trickling.etag });
      const ms = performance.now() - t0;
      let cap: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([arrived, new Promise<void>((r) => (cap = setTimeout(r, 5000)))]);
      clearTimeout(cap);
      onCandidates = null;
      return { ms, deliveredMs: delivered === null ? null : delivered - t0 };
    },
    stop: async () => {
      running = false;
      abort.abort();
      await Promise.all([answerer, presence]);
      // Clean-up only: presence expires by itself.
      await Promise.all([
        trickling ? ca.closeSession(room, trickling.session).catch(() => undefined) : null,
        ca.leave(room, a).catch(() => undefined),
        cb.leave(room, b).catch(() => undefined),
      ]);
      await Promise.all([fa.close(), fb.close()]);
    },
  };
}

/** CPU time (ms) used so far by every process in the group `pgid` (Linux /proc), else null. */
export function groupCpuMs(pgid: number): number | null {
  if (process.platform !== "linux") return null;
  let ticks = 0;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // Fields after the command's closing parenthesis: state is [0], pgrp [2], utime [11], stime [12].
      const f = readFileSync(`/proc/${name}/stat`, "utf8").split(") ").at(-1)?.split(" ") ?? [];
      if (Number(f[2]) === pgid) ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // The process ended while we listed: its time is no longer countable either way.
    }
  }
  return ticks * 10; // USER_HZ is 100 on Linux
}

async function sessionsPerSecond(
  edge: LocalEdge,
  rooms: number,
  pairsPerRoom: number,
  seconds: number,
  mode: EventsMode,
): Promise<Throughput> {
  const pairs: EdgePair[] = [];
  for (let r = 0; r < rooms; r++) {
    const room = `bench-edge-${process.pid}-${++seq}`;
    for (let p = 0; p < pairsPerRoom; p++) pairs.push(await pairInRoom(edge, room, mode));
  }
  let done = 0;
  const errors: Record<string, number> = {};
  const samples: number[] = [];
  const edgeCpu0 = groupCpuMs(edge.pid);
  const clientCpu0 = process.cpuUsage();
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    pairs.map(async (p) => {
      while (performance.now() < end) {
        const r = await p.offer();
        if (r.error) errors[r.error] = (errors[r.error] ?? 0) + 1;
        // Rate-limited (one robot over its 600 requests a minute): it waits the Retry-After
        // (10 s), as the agent does, which outlasts the point. Retrying at once would measure
        // the edge rejecting a tight loop, not sessions.
        if (r.error === "429") break;
        if (!r.error) {
          done++;
          samples.push(Math.round(r.ms * 100) / 100);
        }
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  const edgeCpu1 = groupCpuMs(edge.pid);
  const client = process.cpuUsage(clientCpu0);
  await Promise.all(pairs.map((p) => p.stop()));
  const edgeMs = edgeCpu0 === null || edgeCpu1 === null ? null : edgeCpu1 - edgeCpu0;
  const per = (ms: number) => (done > 0 ? Math.round((ms / done) * 100) / 100 : Number.NaN);
  const eventErrors: Record<string, number> = {};
  for (const p of pairs)
    for (const [k, v] of Object.entries(p.eventErrors)) eventErrors[k] = (eventErrors[k] ?? 0) + v;
  return {
    events: mode,
    rooms,
    pairsPerRoom,
    sessionsPerSecond: Math.round((done / secs) * 10) / 10,
    errors,
    eventErrors,
    cpuMsPerSession: {
      edge: edgeMs === null ? null : per(edgeMs),
      client: per((client.user + client.system) / 1000),
    },
    edgeCores: edgeMs === null ? null : Math.round((edgeMs / 1000 / secs) * 100) / 100,
    samples,
  };
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
        b.send(JSON.stringify({ to: `a${n}`, type: "answer", sdp: SDP("answ") }));
    });
    const offer = () =>
      new Promise<number>((resolve) => {
        const t0 = performance.now();
        a.once("message", () => resolve(performance.now() - t0));
        a.send(JSON.stringify({ to: `b${n}`, type: "offer", sdp: SDP("offr") }));
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

async function iceServersTimes(edge: LocalEdge, runs: number): Promise<number[]> {
  const f = robotFetch();
  const c = new RoverlinkClient({
    baseUrl: edge.url,
    token: await mintToken({
      secret: BENCH_SECRET,
      sub: `r${++seq}`,
      room: "bench-requests",
      ttlSeconds: 3600,
    }),
    fetch: f.fetch,
  });
  // /v1/ice-servers needs membership.
  await c.join("bench-requests", {});
  const ice: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const t0 = performance.now();
    await c.iceServers();
    if (i > 0) ice.push(performance.now() - t0); // the first is a warm-up
  }
  await f.close();
  return ice;
}

/** Pause between measured steps, ms (see edgeBench). */
const SETTLE_MS = 100;

const goal = (value: number | null, g: number, kind: "max" | "min"): Goal => ({
  value,
  goal: g,
  kind,
  met: value !== null && (kind === "max" ? value <= g : value >= g),
});

export async function edgeBench(
  edge: LocalEdge,
  runs: number,
  seconds: number,
): Promise<EdgeBench> {
  const loadStart = loadavg()[0] ?? 0;
  const ice = await iceServersTimes(edge, runs);
  // Latency: one pair offers, another keeps a session open and trickles on it; a bare request
  // from the offerer's own connection pool before each, so that each ratio's two sides see the
  // same load (the machine is shared: its load moves within seconds).
  const room = `bench-edge-${process.pid}-${++seq}`;
  const p = await pairInRoom(edge, room, "sse");
  const t = await pairInRoom(edge, room, "sse");
  const q = await pairInRoom(edge, `bench-edge-${process.pid}-${++seq}`, "poll");
  await p.offer(); // warm-up: the room object's first wake, SQLite, the parked-wait path
  await q.offer();
  await bare(edge, p.fetch);
  await t.openTrickle();
  const healthz: number[] = [];
  const lat: number[] = [];
  const latPoll: number[] = [];
  const trickle: number[] = [];
  const trickleDelivered: number[] = [];
  // Each step also sets off work after its answer (events written to streams, a long-poll
  // returning and polling again); a pause lets it finish, or it would load the next measured step
  // and the bare request that follows a trickle would pay for the trickle's aftermath.
  const settle = () => sleep(SETTLE_MS);
  for (let i = 0; i < runs; i++) {
    healthz.push(await bare(edge, p.fetch));
    await settle();
    const r = await p.offer();
    if (!r.error) lat.push(r.ms);
    await settle();
    const tr = await t.trickle();
    trickle.push(tr.ms);
    if (tr.deliveredMs !== null) trickleDelivered.push(tr.deliveredMs);
    await settle();
    const rq = await q.offer();
    if (!rq.error) latPoll.push(rq.ms);
    await settle();
  }
  await Promise.all([p.stop(), t.stop(), q.stop()]);
  const CONCURRENCY = 8;
  const oneRoom: Throughput[] = [];
  for (const pairs of [1, 4, CONCURRENCY])
    oneRoom.push(await sessionsPerSecond(edge, 1, pairs, seconds, "sse"));
  // Context: the same point with long-polling peers (two more requests per session).
  oneRoom.push(await sessionsPerSecond(edge, 1, CONCURRENCY, seconds, "poll"));
  const rooms: Throughput[] = [];
  for (const r of [2, 4, CONCURRENCY])
    rooms.push(await sessionsPerSecond(edge, r, CONCURRENCY / r, seconds, "sse"));
  const relay = await wsRelay(runs, CONCURRENCY, seconds);
  const offerToAnswerMs = summarize(lat);
  const wsRelayMs = summarize(relay.latency);
  const healthzMs = summarize(healthz);
  const trickleMs = summarize(trickle);
  const offerOverBare = ratio(offerToAnswerMs.median, healthzMs.median);
  const trickleOverBare = ratio(trickleMs.median, healthzMs.median);
  const bestOneRoom = Math.max(
    ...oneRoom.filter((x) => x.events === "sse").map((x) => x.sessionsPerSecond),
  );
  const r2 = (xs: number[]) => xs.map((x) => Math.round(x * 100) / 100);
  return {
    runs,
    loadAverage: { start: loadStart, end: loadavg()[0] ?? 0 },
    healthzMs,
    iceServersMs: summarize(ice),
    offerToAnswerMs,
    offerToAnswerPollMs: summarize(latPoll),
    events: "sse",
    trickleMs,
    trickleDeliveredMs: summarize(trickleDelivered),
    offerOverBare,
    trickleOverBare,
    goals: {
      offerOverBare: goal(offerOverBare, 3, "max"),
      trickleOverBare: goal(trickleOverBare, 1.5, "max"),
      sessionsPerSecondOneRoom: goal(bestOneRoom, 200, "min"),
    },
    samples: {
      healthzMs: r2(healthz),
      offerToAnswerMs: r2(lat),
      offerToAnswerPollMs: r2(latPoll),
      trickleMs: r2(trickle),
      trickleDeliveredMs: r2(trickleDelivered),
      iceServersMs: r2(ice),
      wsRelayMs: r2(relay.latency),
    },
    wsRelayMs,
    ratioLatency: ratio(offerToAnswerMs.median, wsRelayMs.median),
    oneRoom,
    rooms,
    wsRelay: { pairs: CONCURRENCY, sessionsPerSecond: relay.sessionsPerSecond },
    ratioThroughput: ratio(
      oneRoom.find((x) => x.events === "sse" && x.pairsPerRoom === CONCURRENCY)?.sessionsPerSecond,
      relay.sessionsPerSecond,
    ),
    secondsPerPoint: seconds,
  };
}
