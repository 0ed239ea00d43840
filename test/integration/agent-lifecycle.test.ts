/**
 * The library's lifecycle as a developer meets it (found by a library audit): bad options fail in
 * the constructor, start() and stop() are once each, and a sendAsync() waiting for room settles
 * when the agent stops. Real agents, a local edge, loopback.
 */
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent } from "../../rover/agent.ts";
import { type LocalEdge, startLocalEdge } from "../../rover/local-edge.ts";
import { RoverlinkClient } from "../../shared/client.ts";
import { ClientInputError } from "../../shared/errors.ts";
import { mintToken } from "../../shared/token.ts";
import { nextEvent, testAgent } from "./agents.ts";

const SECRET = "lifecycle-secret-lifecycle-secret-xx";
let edge: LocalEdge;
const agents: Agent[] = [];

beforeAll(async () => {
  edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET } });
}, 120_000);
afterAll(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
  await edge?.stop();
});

const tokenFor = (sub: string, room: string) =>
  mintToken({ secret: SECRET, sub, room, ttlSeconds: 600 });

async function make(room: string, id: string, connect: string[] = []) {
  const a = await testAgent(SECRET, { edge: edge.url, room, id, connect });
  agents.push(a);
  return a;
}

async function linkedPair(room: string) {
  const b = await make(room, "b");
  await b.start();
  const a = await make(room, "a", ["b"]);
  const up = new Promise<void>((r) => a.once("link-up", () => r()));
  await a.start();
  await up;
  return { a, b };
}

describe("Agent lifecycle", () => {
  it("bad options fail in the constructor, in one line", () => {
    const base = { edge: "http://127.0.0.1:9", room: "r", id: "a", token: "t" };
    expect(() => new Agent({ ...base, id: "bad id!" })).toThrow(ClientInputError);
    expect(() => new Agent({ ...base, room: ".." })).toThrow(/room id/);
    // The edge takes 0..25: 60 used to start a deaf agent (every poll a 400, retried forever).
    expect(() => new Agent({ ...base, pollWaitS: 60 })).toThrow(
      "pollWaitS must be an integer 0..25, got 60",
    );
    expect(() => new Agent({ ...base, pollWaitS: 25 })).not.toThrow();
  });

  it("start() once: a second start and a start after stop() are refused", async () => {
    const a = await make("life-once", "solo");
    await a.start();
    await expect(a.start()).rejects.toThrow("this agent was started already");
    await a.stop();
    await expect(a.start()).rejects.toThrow("this agent was stopped: make a new Agent");
  });

  it("a sendAsync() waiting for room settles when the agent stops", async () => {
    const { a } = await linkedPair("life-async");
    const big = "x".repeat(256 * 1024);
    let n = 0;
    while (a.send("b", "control", big) && n < 200) n++;
    expect(n).toBeLessThan(200); // the premise: the link asked us to wait
    const waiting = a.sendAsync("b", "control", "last");
    await a.stop();
    const outcome = await Promise.race([
      waiting.then(() => "settled"),
      new Promise((r) => setTimeout(() => r("pending"), 3_000)),
    ]);
    expect(outcome).toBe("settled");
  }, 60_000);

  it("setPosition(): peers see it, rapid values coalesce to the latest, and a rejoin keeps it", async () => {
    const room = "life-position";
    const watcher = await make(room, "watcher");
    await watcher.start();
    const patches: number[] = [];
    const rover = await testAgent(SECRET, {
      edge: edge.url,
      room,
      id: "mover",
      position: { x: 1, y: 2 },
      wrapFetch: (f) => (url, init) => {
        if (init?.method === "PATCH" && String(url).endsWith("/peers/mover"))
          patches.push(Date.now());
        return f(url, init);
      },
    });
    agents.push(rover);
    // A bad reading rejects (a sensor loop's .catch sees it), before or after start; so does a
    // map name the edge would refuse. In the options, it fails the constructor.
    await expect(rover.setPosition({ x: Number.NaN, y: 0 })).rejects.toThrow(
      "position.x: Invalid input: expected number, received NaN",
    );
    await expect(rover.setPosition({ x: 0, y: 0, map: "m".repeat(65) })).rejects.toThrow(
      ClientInputError,
    );
    await expect(
      testAgent(SECRET, {
        edge: edge.url,
        room,
        id: "x",
        position: { x: 1, y: Number.POSITIVE_INFINITY },
      }),
    ).rejects.toThrow("position.y: Invalid input: expected number, received Infinity");
    const joined = nextEvent(watcher, "peer-joined", (p) => p.id === "mover");
    await rover.start();
    expect((await joined)[0].position).toEqual({ x: 1, y: 2 });
    const seen = nextEvent(
      watcher,
      "peer-updated",
      (p) => p.id === "mover" && p.position?.x === 19,
    );
    // Twenty readings at once: one update on its way, the others coalesce into the next.
    const done = Array.from({ length: 20 }, (_, i) => rover.setPosition({ x: i, y: -i }));
    await Promise.all(done);
    // Paced: the second a second after the first (the edge's request budget is the peer's).
    expect(patches).toHaveLength(2);
    expect((patches[1] ?? 0) - (patches[0] ?? 0)).toBeGreaterThanOrEqual(990);
    expect((await seen)[0].position).toEqual({ x: 19, y: -19 });
    const listed = await new RoverlinkClient({
      baseUrl: edge.url,
      token: await tokenFor("watcher", room),
    }).peers(room);
    expect(listed.peers.find((p) => p.id === "mover")?.position).toEqual({ x: 19, y: -19 });
    // A position replaces the last: a map it does not name is gone (a merge patch kept it).
    await rover.setPosition({ x: 3, y: 4, map: "yard" });
    await rover.setPosition({ x: 5, y: 6 });
    const now = await new RoverlinkClient({
      baseUrl: edge.url,
      token: await tokenFor("watcher", room),
    }).peers(room);
    expect(now.peers.find((p) => p.id === "mover")?.position).toEqual({ x: 5, y: 6 });
    // The edge forgets the rover (its presence gone); the rejoin carries the latest position.
    await rover.setPosition(null);
    await rover.setPosition({ x: 7, y: 8, map: "yard" });
    const back = nextEvent(watcher, "peer-joined", (p) => p.id === "mover", 30_000);
    await new RoverlinkClient({ baseUrl: edge.url, token: await tokenFor("mover", room) }).leave(
      room,
      "mover",
    );
    expect((await back)[0].position).toEqual({ x: 7, y: 8, map: "yard" });
  }, 60_000);

  it("stopped while the join's answer is on its way, it still leaves: no ghost in the room", async () => {
    const room = "life-ghost";
    const watcher = await make(room, "watcher");
    await watcher.start();
    // The join reaches the edge; its answer is held back until the start is called off (as a
    // Ctrl-C between the edge seating a rover and the rover hearing so).
    let joinLanded!: () => void;
    const landed = new Promise<void>((r) => {
      joinLanded = r;
    });
    const ghost = await testAgent(SECRET, {
      edge: edge.url,
      room,
      id: "ghost",
      wrapFetch: (f) => async (url, init) => {
        const res = await f(url, init);
        if (init?.method !== "POST" || !String(url).endsWith(`/rooms/${room}/peers`)) return res;
        joinLanded();
        return new Promise<Response>((_, reject) =>
          init.signal?.addEventListener("abort", () => reject(init.signal?.reason)),
        );
      },
    });
    const joined = nextEvent(watcher, "peer-joined", (p) => p.id === "ghost");
    const calledOff = new AbortController();
    const starting = ghost.start(calledOff.signal);
    await landed;
    await joined; // the premise: the edge seated it
    const left = nextEvent(watcher, "peer-left", (id) => id === "ghost", 10_000);
    calledOff.abort(new Error("stopped while joining"));
    await expect(starting).rejects.toThrow("stopped while joining");
    await ghost.stop();
    // Before, nothing was said to the edge: the room listed "ghost" until its presence expired.
    expect((await left)[1]).toBe("left");
  }, 60_000);

  it("a new process in a seat its previous one held hears nothing meant for that one", async () => {
    const room = "life-seat";
    const token = async (id: string) =>
      mintToken({ secret: SECRET, sub: id, room, ttlSeconds: 600 });
    // The previous process: joined, then gone without leaving (killed), its seat still held.
    const old = new RoverlinkClient({ baseUrl: edge.url, token: await token("seat") });
    expect((await old.join(room, { kind: "rover", meta: { incarnation: "old" } })).status).toBe(
      201,
    );
    // Meanwhile the room changes: b comes and goes.
    const b = new RoverlinkClient({ baseUrl: edge.url, token: await token("b") });
    await b.join(room, { kind: "rover" });
    await b.leave(room, "b");
    // The new process takes the seat (the edge answers 200: a resume).
    const seat = await make(room, "seat");
    const heard: string[] = [];
    seat.on("peer-joined", (p) => heard.push(`joined ${p.id}`));
    seat.on("peer-left", (id) => heard.push(`left ${id}`));
    await seat.start();
    // What comes after the join is heard...
    const later = nextEvent(seat, "peer-joined", (p) => p.id === "b2");
    const b2 = new RoverlinkClient({ baseUrl: edge.url, token: await token("b2") });
    await b2.join(room, { kind: "rover" });
    await later;
    // ...and nothing before it: before, "joined b" and "left b" came first, from the old seat's log.
    expect(heard).toEqual(["joined b2"]);
  }, 60_000);
  it("a failed re-join waits as the join's error says (its Retry-After), not as the 404 that prompted it", async () => {
    const room = "life-rejoin";
    const logged: { msg: string; retryInMs?: number }[] = [];
    // The edge limits joins (429, Retry-After 10 s) once the test says so.
    let limited = false;
    let refusedJoins = 0;
    const rover = await testAgent(SECRET, {
      edge: edge.url,
      room,
      id: "rejoiner",
      events: "poll",
      pollWaitS: 1,
      logger: pino({ level: "info" }, { write: (l: string) => void logged.push(JSON.parse(l)) }),
      wrapFetch: (f) => async (url, init) => {
        if (!limited || init?.method !== "POST" || !String(url).endsWith(`/rooms/${room}/peers`))
          return f(url, init);
        refusedJoins++;
        const problem = { type: "about:blank", title: "Too Many Requests", status: 429 };
        return new Response(JSON.stringify({ ...problem, detail: "joins limited by the test" }), {
          status: 429,
          headers: { "content-type": "application/problem+json", "retry-after": "10" },
        });
      },
    });
    agents.push(rover);
    await rover.start();
    limited = true;
    // The edge forgets the rover (as when its presence expired): its next poll is a 404.
    await new RoverlinkClient({
      baseUrl: edge.url,
      token: await tokenFor("rejoiner", room),
    }).leave(room, "rejoiner");
    const end = Date.now() + 30_000;
    while (!logged.some((l) => l.msg === "re-join failed") && Date.now() < end)
      await new Promise((r) => setTimeout(r, 50));
    const failed = logged.find((l) => l.msg === "re-join failed");
    expect(failed, JSON.stringify(logged)).toBeDefined();
    expect(failed?.retryInMs).toBe(10_000);
    // Nothing is tried meanwhile: before, it polled (404) and joined (429) again within 0.25 s,
    // then on the 404's growing backoff, into the limit it had been told to wait out.
    await new Promise((r) => setTimeout(r, 5_000));
    expect(refusedJoins).toBe(1);
    expect(
      logged.filter((l) => l.msg === "the edge forgot us (presence expired): joining again"),
    ).toHaveLength(1);
    // Once the wait is over it joins again.
    limited = false;
    const joined = () => logged.filter((l) => l.msg === "joined").length;
    const back = Date.now() + 30_000;
    while (joined() < 2 && Date.now() < back) await new Promise((r) => setTimeout(r, 100));
    expect(joined()).toBe(2);
    expect(refusedJoins).toBe(1);
  }, 60_000);
});
