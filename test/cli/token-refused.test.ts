/**
 * A rover whose token the edge will not take must say so and exit non-zero, never run deaf: with
 * another peer's token (the edge would seat that peer) it stops before joining; refused for good
 * while running (the edge's key rotated: here a switch to an edge with another secret), it stops
 * with its figures written. Before, both ran on with "events poll failed" warnings and exit 0.
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalEdge, startLocalEdge } from "../../rover/local-edge.ts";
import { mintToken } from "../../shared/token.ts";
import { type RoverProcess, spawnRover } from "./rover-process.ts";
import { tcpProxy } from "./tcp-proxy.ts";

const SECRET = "refused-test-secret-refused-test-xx";
const ROTATED = "rotated-test-secret-rotated-test-xx";

/** Exit within `ms`, or the test fails (and the process is killed). */
async function exitWithin(r: RoverProcess, ms: number): Promise<number | null> {
  const timer = setTimeout(() => r.child.kill("SIGKILL"), ms);
  const { code } = await r.exited;
  clearTimeout(timer);
  return code;
}

const rover = (args: string[], token: string) => spawnRover(args, { ROVERLINK_TOKEN: token });

describe("a token the edge will not take", () => {
  let edge: LocalEdge;
  let rotated: LocalEdge;
  beforeAll(async () => {
    [edge, rotated] = await Promise.all([
      startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET } }),
      startLocalEdge({ vars: { ROVERLINK_SECRET: ROTATED } }),
    ]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([edge?.stop(), rotated?.stop()]);
  });

  it("another peer's token: one line and exit 1 before joining; that peer is not seated", async () => {
    const token = await mintToken({ secret: SECRET, sub: "r2", room: "mix", ttlSeconds: 600 });
    const r = rover(["--edge", edge.url, "--room", "mix", "--id", "r1", "--in-memory"], token);
    const code = await exitWithin(r, 20_000);
    expect(code, r.stderr()).toBe(1);
    const lines = r.stderr().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(
      'roverlink: the token acts as "r2", not "r1": use a token for "r1", or run as "r2"',
    );
    const look = await mintToken({ secret: SECRET, sub: "r3", room: "mix", ttlSeconds: 60 });
    const peers = (await (
      await fetch(`${edge.url}/v1/rooms/mix/peers`, {
        headers: { Authorization: `Bearer ${look}` },
      })
    ).json()) as { peers: { id: string }[] };
    expect(peers.peers.map((p) => p.id)).not.toContain("r2");
  }, 60_000);

  it("refused while running (the edge's key rotated): exit 1 with one line, figures written", async () => {
    const proxy = await tcpProxy(edge.port);
    const dir = mkdtempSync(join(tmpdir(), "roverlink-refused-"));
    const stats = join(dir, "stats.json");
    try {
      const token = await mintToken({ secret: SECRET, sub: "r1", room: "rot", ttlSeconds: 600 });
      const r = rover(
        [
          ...["--edge", proxy.url, "--room", "rot", "--id", "r1", "--in-memory"],
          ...["--log-level", "info", "--stats-json", stats],
        ],
        token,
      );
      await r.waitFor(/"msg":"joined"/);
      // Its event stream now reaches an edge that does not know the token's key.
      proxy.switchTo(rotated.port);
      const code = await exitWithin(r, 30_000);
      expect(code, r.stderr()).toBe(1);
      expect(r.stderr()).toMatch(/"msg":"the edge refuses our token: no more events"/);
      const last = r.stderr().trim().split("\n").pop() ?? "";
      expect(last).toMatch(/^roverlink: token refused by the edge: /);
      expect(existsSync(stats)).toBe(true);
      expect(JSON.parse(readFileSync(stats, "utf8"))).toHaveProperty("sent");
    } finally {
      await proxy.close();
    }
  }, 90_000);
});
