/**
 * `npm run load [-- --quick]`: the edge under load on local workerd (issue 8).
 *  1. Parked long-polls: N peers in one room each park a poll; one more peer joins; every poll
 *     must return that peer-joined event exactly once (fan-out latency measured).
 *  2. Rooms × peers: join, offer (answered by the target from its events), trickle, leave.
 *     Midway the edge process is restarted on the same state directory; clients retry with their
 *     last cursor. Every peer's events must arrive exactly once and in order; every offer and
 *     every trickle must reach its target exactly once.
 *  3. Rate limit: one subject past 600 requests a minute gets 429 with Retry-After.
 * Prints a summary and writes bench/results/load-<date>.json.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Agent as UndiciAgent, fetch as undiciFetch } from "undici";
import { summarize } from "../bench/stats.ts";
import { type LocalEdge, REPO_ROOT, startLocalEdge } from "../rover/local-edge.ts";
import { RoverlinkClient } from "../shared/client.ts";
import { ProblemError } from "../shared/errors.ts";
import type { RoomEvent } from "../shared/protocol.ts";
import { mintToken } from "../shared/token.ts";

const { values } = parseArgs({ options: { quick: { type: "boolean", default: false } } });
const quick = values.quick === true;
const PARKED = quick ? 200 : 1000;
const ROOMS = quick ? 10 : 100;
const PEERS = 8;
const SECRET = "load-secret-load-secret-load-secret";
const log = (s: string) => process.stderr.write(`load: ${s}\n`);

const dispatcher = new UndiciAgent({
  connections: 2048,
  headersTimeout: 60_000,
  bodyTimeout: 60_000,
});
const fetchFn = (url: string, init: RequestInit) =>
  undiciFetch(url, {
    ...(init as Parameters<typeof undiciFetch>[1]),
    dispatcher,
  }) as unknown as Promise<Response>;

const latencies = new Map<string, number[]>();
const statuses = new Map<number, number>();
let requests = 0;

/** Time a client call under a route label; count statuses. */
async function timed<T>(route: string, f: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  requests++;
  try {
    const r = await f();
    statuses.set(200, (statuses.get(200) ?? 0) + 1);
    return r;
  } catch (e) {
    const st = e instanceof ProblemError ? e.status : 0;
    statuses.set(st, (statuses.get(st) ?? 0) + 1);
    throw e;
  } finally {
    const l = latencies.get(route) ?? [];
    l.push(performance.now() - t0);
    latencies.set(route, l);
  }
}

let edge: LocalEdge;
const persistTo = mkdtempSync(join(tmpdir(), "roverlink-load-"));
// A room of 1000 takes longer to fill than the default 30 s presence TTL on 2 shared cores.
const vars = {
  ROVERLINK_SECRET: SECRET,
  MAX_PEERS_PER_ROOM: String(PARKED + 10),
  PRESENCE_TTL_S: "120",
};

async function client(room: string, id: string): Promise<RoverlinkClient> {
  return new RoverlinkClient({
    baseUrl: edge.url,
    token: await mintToken({ secret: SECRET, sub: id, room, ttlSeconds: 3600 }),
    fetch: fetchFn,
    timeoutMs: 30_000,
  });
}

async function pool<T>(items: T[], width: number, f: (x: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (i < items.length) await f(items[i++] as T);
    }),
  );
}

// ---------------------------------------------------------------------------------------------
async function parkedPolls() {
  const room = "load-parked";
  const ids = Array.from({ length: PARKED }, (_, i) => `p${i}`);
  const clients = new Map<string, { c: RoverlinkClient; cursor: string }>();
  await pool(ids, 50, async (id) => {
    const c = await client(room, id);
    const j = await timed("join", () => c.join(room, { kind: "rover" }));
    clients.set(id, { c, cursor: j.cursor });
  });
  // Everyone joined: move each cursor past the other joins, then park.
  await pool(ids, 100, async (id) => {
    const s = clients.get(id) as { c: RoverlinkClient; cursor: string };
    for (;;) {
      const r = await timed("poll", () => s.c.poll(room, id, { after: s.cursor, wait: 0 }));
      if (r.events.length === 0) break;
      s.cursor = r.cursor;
    }
  });
  let triggerAt = 0;
  const got = new Map<string, number>();
  const fanout: number[] = [];
  const parked = ids.map(async (id) => {
    const s = clients.get(id) as { c: RoverlinkClient; cursor: string };
    const r = await timed("poll (parked)", () => s.c.poll(room, id, { after: s.cursor, wait: 25 }));
    fanout.push(performance.now() - triggerAt);
    got.set(id, r.events.filter((e) => e.type === "peer-joined" && e.peer.id === "trigger").length);
  });
  await new Promise((r) => setTimeout(r, 3_000)); // let every poll park
  const t = await client(room, "trigger");
  triggerAt = performance.now();
  await timed("join", () => t.join(room, {}));
  await Promise.all(parked);
  const exactlyOnce = [...got.values()].filter((n) => n === 1).length;
  return {
    parked: PARKED,
    exactlyOnce,
    missing: PARKED - exactlyOnce,
    fanoutMs: summarize(fanout),
  };
}

// ---------------------------------------------------------------------------------------------
const SDP = (u: string) =>
  `v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:${u}\r\na=ice-pwd:0123456789abcdefghijkl\r\na=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\na=setup:actpass\r\na=mid:0\r\n`;

interface PeerState {
  room: string;
  id: string;
  c: RoverlinkClient;
  cursor: string;
  seen: RoomEvent[];
  running: boolean;
  loop?: Promise<void>;
}

async function roomsAndPeers() {
  const peers: PeerState[] = [];
  for (let r = 0; r < ROOMS; r++) {
    for (let p = 0; p < PEERS; p++) {
      const room = `load-room-${r}`;
      peers.push({
        room,
        id: `r${r}p${p}`,
        c: await client(room, `r${r}p${p}`),
        cursor: "",
        seen: [],
        running: true,
      });
    }
  }
  await pool(peers, 50, async (s) => {
    const j = await timed("join", () => s.c.join(s.room, { kind: "rover" }));
    s.cursor = j.cursor;
  });
  let retries = 0;
  // Every peer follows its events and answers offers at once; a failed poll retries with its cursor.
  for (const s of peers) {
    s.loop = (async () => {
      while (s.running) {
        try {
          const r = await timed("poll", () => s.c.poll(s.room, s.id, { after: s.cursor, wait: 5 }));
          for (const ev of r.events) {
            s.seen.push(ev);
            if (ev.type === "offer") {
              await timed("answer", () =>
                s.c.answer(s.room, ev.session, SDP(`a${s.id}`), {
                  contentType: "sdp",
                  ifMatch: ev.etag,
                }),
              ).catch(() => {});
            }
          }
          s.cursor = r.cursor;
        } catch {
          retries++;
          await new Promise((res) => setTimeout(res, 200));
        }
      }
    })();
  }
  const offered: { room: string; from: string; to: string; session: string }[] = [];
  const requestErrors: string[] = [];
  const trickled: { to: string; session: string }[] = [];
  // Each peer offers to the next one in its room, then trickles one candidate.
  const offerAll = async (round: number) =>
    pool(peers, 32, async (s) => {
      const p = Number(s.id.split("p")[1]);
      const to = `${s.id.split("p")[0]}p${(p + 1) % PEERS}`;
      try {
        const o = await timed("offer", () =>
          s.c.offer(s.room, to, SDP(`o${s.id}${round}`), { waitS: 20 }),
        );
        offered.push({ room: s.room, from: s.id, to, session: o.session });
        const frag = `a=ice-ufrag:o${s.id}${round}\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 192.0.2.1 ${50000 + p} typ host\r\n`;
        await timed("trickle", () => s.c.trickle(s.room, o.session, frag, { ifMatch: o.etag }));
        trickled.push({ to, session: o.session });
      } catch (e) {
        // Counted and reported; what did get through is still checked for exactly-once delivery.
        requestErrors.push(`${s.id} round ${round}: ${(e as Error).message.slice(0, 160)}`);
      }
    });
  await offerAll(1);
  // The edge restarts on the same state; polls fail, retry with their cursor, and go on.
  log("restarting the edge mid-run");
  const port = edge.port;
  await edge.stop();
  edge = await startLocalEdge({ port, persistTo, vars });
  await offerAll(2);
  await new Promise((r) => setTimeout(r, 3_000));
  await pool(peers, 64, async (s) => {
    await timed("leave", () => s.c.leave(s.room, s.id)).catch(() => {});
  });
  for (const s of peers) s.running = false;
  await Promise.all(peers.map((s) => s.loop));

  // Exactly once, in order, per peer.
  let duplicates = 0;
  let outOfOrder = 0;
  for (const s of peers) {
    const ids = s.seen.map((e) => Number(e.id));
    duplicates += ids.length - new Set(ids).size;
    for (let i = 1; i < ids.length; i++)
      if ((ids[i] as number) <= (ids[i - 1] as number)) outOfOrder++;
  }
  const byPeer = new Map(peers.map((s) => [s.id, s]));
  const count = (to: string, f: (e: RoomEvent) => boolean) =>
    (byPeer.get(to)?.seen ?? []).filter(f).length;
  let offersLost = 0;
  let offersDuplicated = 0;
  for (const o of offered) {
    const n = count(o.to, (e) => e.type === "offer" && e.session === o.session);
    if (n === 0) offersLost++;
    if (n > 1) offersDuplicated++;
  }
  let tricklesLost = 0;
  for (const t of trickled)
    if (count(t.to, (e) => e.type === "candidates" && e.session === t.session) !== 1)
      tricklesLost++;
  const events = peers.reduce((n, s) => n + s.seen.length, 0);
  return {
    offersAttempted: peers.length * 2,
    offerOrTrickleErrors: requestErrors.length,
    errorSamples: requestErrors.slice(0, 5),
    rooms: ROOMS,
    peersPerRoom: PEERS,
    offers: offered.length,
    offersLost,
    offersDuplicated,
    trickles: trickled.length,
    tricklesLost,
    events,
    duplicates,
    outOfOrder,
    pollRetriesAcrossRestart: retries,
  };
}

// ---------------------------------------------------------------------------------------------
async function rateLimit() {
  const c = await client("load-rl", `hasty-${Date.now()}`);
  for (let i = 0; i < 800; i++) {
    try {
      await c.iceServers();
    } catch (e) {
      if (e instanceof ProblemError && e.status === 429)
        return { limitedAfter: i, retryAfterS: e.retryAfterS ?? null };
      throw e;
    }
  }
  return { limitedAfter: null, retryAfterS: null };
}

// ---------------------------------------------------------------------------------------------
edge = await startLocalEdge({ persistTo, vars });
const t0 = performance.now();
let result: Record<string, unknown> = {};
try {
  log(`${PARKED} parked long-polls in one room`);
  const parked = await parkedPolls();
  log(`${ROOMS} rooms × ${PEERS} peers: join, offer, answer, trickle, edge restart, leave`);
  const rooms = await roomsAndPeers();
  log("rate limit");
  const rl = await rateLimit();
  const secs = (performance.now() - t0) / 1000;
  result = {
    date: new Date().toISOString(),
    quick,
    seconds: Math.round(secs),
    requests,
    requestsPerSecond: Math.round(requests / secs),
    statuses: Object.fromEntries(statuses),
    latencyMs: Object.fromEntries([...latencies].map(([k, v]) => [k, summarize(v)])),
    parked,
    rooms,
    rateLimit: rl,
  };
} finally {
  await edge.stop();
  await dispatcher.close();
}
const dir = join(REPO_ROOT, "bench", "results");
mkdirSync(dir, { recursive: true });
const file = join(
  dir,
  `load-${new Date().toISOString().slice(0, 10)}${quick ? "-quick" : ""}.json`,
);
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
const r = result.rooms as {
  offersLost: number;
  offersDuplicated: number;
  tricklesLost: number;
  duplicates: number;
  outOfOrder: number;
};
const p = result.parked as { missing: number };
const bad =
  p.missing + r.offersLost + r.offersDuplicated + r.tricklesLost + r.duplicates + r.outOfOrder;
log(
  bad === 0
    ? `ok: every event exactly once, in order (${file})`
    : `FAILED: ${bad} delivery problems (${file})`,
);
process.exit(bad === 0 ? 0 : 1);
