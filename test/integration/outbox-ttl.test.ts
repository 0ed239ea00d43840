/**
 * Time to live through the real stack: two durable agents through a local edge; while the peer
 * is gone, a message with a TTL waits in the sender's outbox past it. When the peer comes back
 * the message is dropped and counted (outbox stats, the `roverlink_outbox_expired` metric's
 * source), never delivered; what was sent after it still arrives.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Agent, type AgentMessage } from "../../rover/agent.ts";
import { type LocalEdge, startLocalEdge } from "../../rover/local-edge.ts";
import { mintToken } from "../../shared/token.ts";
import { until } from "./outbox-rover.ts";

const SECRET = "outbox-ttl-secret-outbox-ttl-secret";
const ROOM = "ttl";
let edge: LocalEdge;
let dir: string;

beforeAll(async () => {
  edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET } });
  dir = mkdtempSync(join(tmpdir(), "outbox-ttl-"));
});
afterAll(async () => {
  await edge?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function agent(id: string, connect: string[]): Promise<Agent> {
  const a = new Agent({
    edge: edge.url,
    room: ROOM,
    id,
    token: await mintToken({ secret: SECRET, sub: id, room: ROOM, ttlSeconds: 600 }),
    connect,
    watchNetwork: false,
    stateDir: join(dir, id),
  });
  await a.start();
  return a;
}

it("a message whose TTL passed while the peer was gone is dropped and counted, never delivered", async () => {
  const a = await agent("a", ["b"]);
  let b = await agent("b", []);
  const got: string[] = [];
  const collect = (m: AgentMessage) => m.channel === "control" && got.push(String(m.data));
  try {
    b.on("message", collect);
    await until("the link", () => a.stats().some((s) => s.peer === "b" && s.state === "up"));
    a.send("b", "control", "before");
    await until("the first message", () => got.includes("before"));

    await b.stop(); // the peer is gone
    await until("a to see it gone", () => !a.stats().some((s) => s.peer === "b"));
    const sentAt = Date.now();
    a.send("b", "control", "forward", { ttlMs: 1_000 }); // a teleop command: stale after 1 s
    a.send("b", "control", "status"); // no TTL
    await a.outbox?.committed();
    await new Promise((r) => setTimeout(r, 1_500));

    b = await agent("b", []); // the peer returns, on its state
    b.on("message", collect);
    await until("the message sent after it", () => got.includes("status"));
    // The premise: the TTL had passed before anything could be delivered again.
    expect(Date.now() - sentAt).toBeGreaterThan(1_000);
    expect(got).toEqual(["before", "status"]);
    const stats = () => a.outboxStats().find((s) => s.peer === "b");
    // Acknowledged, placeholder included: nothing left waiting.
    await until("the acknowledgement", () => stats()?.messages === 0);
    expect(stats()?.expired).toBe(1);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
}, 120_000);
