/**
 * `npm run load [-- --quick]`: the edge under load on local workerd (exactly-once and no 5xx under many peers).
 *  1. Parked long-polls: N peers in one room each park a poll; one more peer joins; every poll
 *     must return that peer-joined event exactly once.
 *  2. Rooms × 8 peers: join, offer to the next peer (answered by the target from its events),
 *     trickle, leave one by one. Right after the first round of offers the edge process is
 *     restarted on the same state directory while the polls are parked; clients retry with their
 *     last cursor. Every event each peer should get (derived from what the clients did) must
 *     arrive exactly once, in cursor order, and nothing else may arrive.
 *  3. Rate limit: one subject past 600 requests a minute (+ at most 4 while the limiter's verdict
 *     is on its way) gets 429 with Retry-After; another
 *     subject is still served.
 * Prints a summary and writes bench/results/load-<date>[-quick].json. Exit 1 on any problem.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Agent as UndiciAgent, fetch as undiciFetch } from "undici";
import { summarize } from "../bench/stats.ts";
import { type LocalEdge, REPO_ROOT, startLocalEdge } from "../rover/local-edge.ts";
import { RoverlinkClient } from "../shared/client.ts";
import { ProblemError } from "../shared/errors.ts";
import { mintToken } from "../shared/token.ts";
import { type Delivery, Oracle } from "./load/oracle.ts";
import { Recorder } from "./load/recorder.ts";

const { values } = parseArgs({ options: { quick: { type: "boolean", default: false } } });
const quick = values.quick === true;
const PARKED = quick ? 200 : 1000;
const ROOMS = quick ? 10 : 100;
const PEERS = 8;
const POLL_WAIT_S = 20;
const SECRET = "load-secret-load-secret-load-secret";
const log = (s: string) => process.stderr.write(`load: ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dispatcher = new UndiciAgent({
  connections: 4096,
  headersTimeout: 120_000,
  bodyTimeout: 120_000,
});
const fetchFn = (url: string, init: RequestInit) =>
  undiciFetch(url, {
    ...(init as Parameters<typeof undiciFetch>[1]),
    dispatcher,
  }) as unknown as Promise<Response>;

const rec = new Recorder();
let edge: LocalEdge;
const persistTo = mkdtempSync(join(tmpdir(), "roverlink-load-"));
// Filling a room of 1000 takes longer than the default 30 s presence TTL on 2 shared cores.
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
    timeoutMs: 60_000,
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

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(50);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
async function parkedPolls() {
  const room = "load-parked";
  const tFill = performance.now();
  const ids = Array.from({ length: PARKED }, (_, i) => `p${i}`);
  const clients = new Map<string, { c: RoverlinkClient; cursor: string }>();
  await pool(ids, 50, async (id) => {
    const c = await client(room, id);
    const j = await rec.timed("join", () => c.join(room, { kind: "rover" }));
    clients.set(id, { c, cursor: j.cursor });
  });
  // Everyone joined: move each cursor past the other joins, then park.
  await pool(ids, 100, async (id) => {
    const s = clients.get(id) as { c: RoverlinkClient; cursor: string };
    for (;;) {
      const r = await rec.timed("poll", () => s.c.poll(room, id, { after: s.cursor, wait: 0 }));
      if (r.events.length === 0) break;
      s.cursor = r.cursor;
    }
  });
  // Each join is told to everyone already there: filling the room is quadratic in its size.
  const fillSeconds = Math.round((performance.now() - tFill) / 1000);
  let triggerAt = 0;
  let early = 0;
  let errors = 0;
  const got = new Map<string, number>();
  const fanout: number[] = [];
  const parked = ids.map(async (id) => {
    const s = clients.get(id) as { c: RoverlinkClient; cursor: string };
    let n = 0;
    // A poll that ends empty (its wait ran out) or fails is retried with the same cursor.
    while (n === 0) {
      try {
        const r = await rec.timed("poll (parked)", () =>
          s.c.poll(room, id, { after: s.cursor, wait: 25 }),
        );
        if (triggerAt === 0) early++;
        n = r.events.filter((e) => e.type === "peer-joined" && e.peer.id === "trigger").length;
        s.cursor = r.cursor;
        if (n > 0) fanout.push(performance.now() - triggerAt);
        if (n > 0) got.set(id, n);
      } catch {
        errors++;
        await sleep(500);
      }
    }
  });
  await sleep(quick ? 3_000 : 10_000); // let every poll reach the edge and park
  const t = await client(room, "trigger");
  triggerAt = performance.now();
  await rec.timed("join", () => t.join(room, {}));
  await Promise.all(parked);
  // Once more from each cursor: the event must not come again.
  await pool(ids, 100, async (id) => {
    const s = clients.get(id) as { c: RoverlinkClient; cursor: string };
    const r = await rec.timed("poll", () => s.c.poll(room, id, { after: s.cursor, wait: 0 }));
    const again = r.events.filter((e) => e.type === "peer-joined" && e.peer.id === "trigger");
    got.set(id, (got.get(id) ?? 0) + again.length);
  });
  const counts = [...got.values()];
  return {
    parked: PARKED,
    exactlyOnce: counts.filter((n) => n === 1).length,
    missing: PARKED - counts.length,
    duplicated: counts.filter((n) => n > 1).length,
    returnedBeforeTheEvent: early,
    pollErrors: errors,
    fillSeconds,
    fanoutMs: summarize(fanout),
  };
}

// ---------------------------------------------------------------------------------------------
const SDP = (u: string) =>
  `v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:${u}\r\na=ice-pwd:0123456789abcdefghijkl\r\na=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\na=setup:actpass\r\na=mid:0\r\n`;
const FRAG = (u: string, port: number) =>
  `a=ice-ufrag:${u}\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 192.0.2.1 ${port} typ host\r\n`;

interface PeerState {
  room: string;
  id: string;
  next: string;
  c: RoverlinkClient;
  cursor: string;
  running: boolean;
  loop?: Promise<void>;
}

async function roomsAndPeers() {
  const oracle = new Oracle();
  const rooms: PeerState[][] = [];
  for (let r = 0; r < ROOMS; r++) {
    const room = `load-room-${r}`;
    const list: PeerState[] = [];
    for (let p = 0; p < PEERS; p++) {
      const id = `r${r}p${p}`;
      list.push({
        room,
        id,
        next: `r${r}p${(p + 1) % PEERS}`,
        c: await client(room, id),
        cursor: "",
        running: true,
      });
    }
    rooms.push(list);
  }
  const peers = rooms.flat();

  // Join (all at once, in no set order): a peer hears of those not listed in its join answer.
  const joined = new Map<string, string[]>();
  await pool(peers, 64, async (s) => {
    const j = await rec.timed("join", () => s.c.join(s.room, { kind: "rover" }));
    s.cursor = j.cursor;
    joined.set(
      s.id,
      j.peers.map((p) => p.id),
    );
  });
  for (const list of rooms)
    for (const s of list)
      for (const o of list)
        if (o.id !== s.id && !joined.get(s.id)?.includes(o.id))
          oracle.expect(s.id, `peer-joined:${o.id}`);

  // Every peer follows its events and answers offers at once; a failed poll retries with its
  // last cursor (that is what carries it across the edge restart).
  let retries = 0;
  let answerErrors = 0;
  for (const s of peers) {
    s.loop = (async () => {
      while (s.running) {
        try {
          const r = await rec.timed("poll", () =>
            s.c.poll(s.room, s.id, { after: s.cursor, wait: POLL_WAIT_S }),
          );
          for (const ev of r.events) {
            oracle.record(s.id, ev);
            if (ev.type === "offer") {
              await rec
                .timed("answer", () =>
                  s.c.answer(s.room, ev.session, SDP(`a${s.id}`), {
                    contentType: "sdp",
                    ifMatch: ev.etag,
                  }),
                )
                .catch(() => answerErrors++);
            }
          }
          s.cursor = r.cursor;
        } catch {
          if (!s.running) break;
          retries++;
          await sleep(200);
        }
      }
    })();
  }

  // Each peer offers to the next one in its room and trickles one candidate.
  const sessions = new Map<string, [string, string]>();
  let offers = 0;
  let offers202 = 0;
  let trickles = 0;
  const offerAll = async (round: number) =>
    pool(peers, 64, async (s) => {
      const ufrag = `o${s.id}x${round}`;
      const o = await rec.timed("offer", () =>
        s.c.offer(s.room, s.next, SDP(ufrag), { waitS: 20 }),
      );
      offers++;
      // A new offer for the same pair supersedes the old session (MAX_SESSIONS_PER_PAIR = 1): its
      // answerer hears it closing now, and nobody hears it again when a party leaves.
      for (const [sid, pair] of sessions)
        if (pair[0] === s.id && pair[1] === s.next) {
          oracle.expect(s.next, `session-closed:${sid}`);
          sessions.delete(sid);
        }
      sessions.set(o.session, [s.id, s.next]);
      oracle.expect(s.next, `offer:${o.session}`);
      if (o.status === 202) {
        offers202++;
        oracle.expect(s.id, `answer:${o.session}`);
      }
      await rec.timed("trickle", () =>
        s.c.trickle(s.room, o.session, FRAG(ufrag, 50_000 + round), { ifMatch: o.etag }),
      );
      trickles++;
      oracle.expect(s.next, `candidates:${o.session}`);
    });
  await offerAll(1);

  // The edge restarts on the same state while polls are parked (and some candidates events are
  // on their way); the polls fail, retry with their cursor, and go on.
  log("restarting the edge mid-run (same persist dir)");
  const retriesBefore = retries;
  const tStop = performance.now();
  const port = edge.port;
  await edge.stop();
  edge = await startLocalEdge({ port, persistTo, vars });
  const restartS = (performance.now() - tStop) / 1000;
  await offerAll(2);

  // Leave one by one in each room (rooms in parallel), each peer once it has everything it
  // should have so far; those still present hear of it, and of its sessions closing.
  let notCaughtUp = 0;
  await Promise.all(
    rooms.map(async (list) => {
      const left = new Set<string>();
      for (const s of list) {
        if (!(await until(() => oracle.caughtUp(s.id), 30_000))) notCaughtUp++;
        s.running = false;
        await rec.timed("leave", () => s.c.leave(s.room, s.id));
        left.add(s.id);
        for (const o of list) {
          if (left.has(o.id)) continue;
          oracle.expect(o.id, `peer-left:${s.id}`);
          for (const [sid, pair] of sessions)
            if (pair.includes(s.id) && pair.includes(o.id))
              oracle.expect(o.id, `session-closed:${sid}`);
        }
      }
    }),
  );
  await Promise.all(peers.map((s) => s.loop));
  return {
    rooms: ROOMS,
    peersPerRoom: PEERS,
    offers,
    offersAnsweredLater: offers202,
    answerErrors,
    trickles,
    edgeRestartSeconds: Math.round(restartS * 10) / 10,
    pollRetriesAcrossRestart: retries - retriesBefore,
    pollRetriesOther: retriesBefore,
    peersNotCaughtUpBeforeLeaving: notCaughtUp,
    delivery: oracle.compare(),
  };
}

// ---------------------------------------------------------------------------------------------
async function rateLimit() {
  const stamp = Date.now();
  const c = await client("load-rl", `hasty-${stamp}`);
  // /v1/ice-servers needs membership; the join counts in the presence bucket, not this one.
  await c.join("load-rl", {});
  // workerd's local limiter counts in windows aligned to the wall clock: count the requests of
  // the window the 429 came in (a burst may straddle two windows).
  const windowOf = () => Math.floor(Date.now() / 60_000);
  let window = windowOf();
  let inWindow = 0;
  let limitedAfter: number | null = null;
  let retryAfterS: number | null = null;
  for (let i = 0; i < 2 * 600 + 1 && limitedAfter === null; i++) {
    if (windowOf() !== window) {
      window = windowOf();
      inWindow = 0;
    }
    try {
      await rec.timed("ice-servers", () => c.iceServers());
      inWindow++;
    } catch (e) {
      if (!(e instanceof ProblemError && e.status === 429)) throw e;
      limitedAfter = inWindow;
      retryAfterS = e.retryAfterS ?? null;
    }
  }
  // The limit is per token subject: someone else is still served.
  const other = await client("load-rl", `calm-${stamp}`);
  await other.join("load-rl", {});
  const otherServed = await rec
    .timed("ice-servers", () => other.iceServers())
    .then(() => true)
    .catch(() => false);
  return { limit: 600, limitedAfter, retryAfterS, otherSubjectServed: otherServed };
}

// ---------------------------------------------------------------------------------------------
function problems(
  parked: Awaited<ReturnType<typeof parkedPolls>>,
  d: Delivery,
  rl: Awaited<ReturnType<typeof rateLimit>>,
): string[] {
  const out: string[] = [];
  if (parked.missing > 0) out.push(`${parked.missing} parked polls never got their event`);
  if (parked.duplicated > 0) out.push(`${parked.duplicated} parked polls got it twice`);
  if (d.lost > 0) out.push(`${d.lost} events lost`);
  if (d.duplicates > 0) out.push(`${d.duplicates} events duplicated`);
  if (d.unexpected > 0) out.push(`${d.unexpected} unexpected events`);
  if (d.outOfOrder > 0) out.push(`${d.outOfOrder} events out of order`);
  if (d.causalViolations > 0) out.push(`${d.causalViolations} candidates before their offer`);
  if (rl.limitedAfter === null) out.push("never rate limited");
  // No request waits for its own check (worker/rate-verdicts.ts): the one that crosses the limit
  // is served, and up to three more while its verdict is on its way (the fourth waits for it).
  else if (rl.limitedAfter > rl.limit + 4) out.push(`rate limited only after ${rl.limitedAfter}`);
  else if (rl.limitedAfter < rl.limit) out.push(`rate limited after ${rl.limitedAfter}`);
  if (rl.limitedAfter !== null && rl.retryAfterS === null) out.push("429 without Retry-After");
  if (!rl.otherSubjectServed) out.push("another subject was limited too");
  return out;
}

/** A human-readable digest on stderr (the JSON on stdout has everything). */
function printSummary(r: Record<string, unknown>): void {
  const lat = r.latencyMs as Record<string, { n: number; median: number; p99: number }>;
  const out = r.outcomesByRoute as Record<string, Record<string, number>>;
  const d = (r.rooms as { delivery: Delivery }).delivery;
  log(`${r.requests} requests in ${r.seconds} s: ${r.requestsPerSecond} requests/s`);
  log("route            n      p50 ms   p99 ms   outcomes");
  for (const [route, l] of Object.entries(lat))
    log(
      `${route.padEnd(16)} ${String(l.n).padEnd(6)} ${String(Math.round(l.median)).padEnd(8)} ${String(Math.round(l.p99)).padEnd(8)} ${JSON.stringify(out[route])}`,
    );
  log(
    `events delivered/expected ${d.delivered}/${d.expected}; lost ${d.lost}, duplicates ${d.duplicates}, unexpected ${d.unexpected}, out of order ${d.outOfOrder}`,
  );
  log(`errors by status ${JSON.stringify(r.errorsByStatus)}`);
}

edge = await startLocalEdge({ persistTo, vars });
const t0 = performance.now();
let result: Record<string, unknown>;
let bad: string[];
try {
  log(`${PARKED} parked long-polls in one room`);
  const parked = await parkedPolls();
  log(`${ROOMS} rooms × ${PEERS} peers: join, offer, answer, trickle, edge restart, leave`);
  const rooms = await roomsAndPeers();
  log("rate limit");
  const rl = await rateLimit();
  const secs = (performance.now() - t0) / 1000;
  bad = problems(parked, rooms.delivery, rl);
  result = {
    date: new Date().toISOString(),
    quick,
    seconds: Math.round(secs),
    requests: rec.requests,
    requestsPerSecond: Math.round(rec.requests / secs),
    errorsByStatus: rec.errorsByStatus(),
    outcomesByRoute: rec.outcomesByRoute(),
    latencyMs: rec.latencyMs(),
    parked,
    rooms,
    rateLimit: rl,
    problems: bad,
  };
} finally {
  await edge.stop();
  await dispatcher.close();
  rmSync(persistTo, { recursive: true, force: true });
}
const dir = join(REPO_ROOT, "bench", "results");
mkdirSync(dir, { recursive: true });
const file = join(
  dir,
  `load-${new Date().toISOString().slice(0, 10)}${quick ? "-quick" : ""}.json`,
);
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
printSummary(result);
log(
  bad.length === 0
    ? `ok: every event exactly once, in order (${file})`
    : `FAILED: ${bad.join("; ")} (${file})`,
);
process.exit(bad.length === 0 ? 0 : 1);
