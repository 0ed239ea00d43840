/**
 * The library's lifecycle as a developer meets it (found by a library audit): bad options fail in
 * the constructor, start() and stop() are once each, and a sendAsync() waiting for room settles
 * when the agent stops. Real agents, a local edge, loopback.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent } from "../../rover/agent.ts";
import { type LocalEdge, startLocalEdge } from "../../rover/local-edge.ts";
import { ClientInputError } from "../../shared/errors.ts";
import { testAgent } from "./agents.ts";

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
});
