/**
 * Stopping while the edge is unreachable (an outage, a dead uplink): SIGINT must end
 * `roverlink rover` before a supervisor gives up on it (here, as systemd would, 3 s later
 * a SIGKILL), with its --stats-json written. The edge is "unreachable" the way a dead uplink is:
 * a TCP proxy that accepts and then never answers (nothing refuses, everything just hangs).
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, type LocalEdge, REPO_ROOT, startLocalEdge } from "../../rover/local-edge.ts";
import { decodeTokenUnverified, mintToken } from "../../shared/token.ts";
import { spawnRover } from "./rover-process.ts";
import { tcpProxy } from "./tcp-proxy.ts";

const SECRET = "stop-test-secret-stop-test-secret-xx";
/** What a supervisor gives a stopped service before it kills it (the contract under test). */
const SUPERVISOR_GRACE_MS = 3_000;

function rover(args: string[]) {
  const r = spawnRover(args, { ROVERLINK_SECRET: SECRET });
  return {
    ...r,
    /** SIGINT, then SIGKILL if it is still running after the supervisor's grace period. */
    async stopLikeASupervisor() {
      r.child.kill("SIGINT");
      const killer = setTimeout(() => r.child.kill("SIGKILL"), SUPERVISOR_GRACE_MS);
      const out = await r.exited;
      clearTimeout(killer);
      return out;
    },
  };
}

describe("SIGINT while the edge is unreachable", () => {
  it("never answered from the start: the rover stops (exit 0), stats written", async () => {
    const hole = await tcpProxy(null);
    const dir = mkdtempSync(join(tmpdir(), "roverlink-stop-"));
    const stats = join(dir, "stats.json");
    try {
      const r = rover(
        ["--edge", hole.url, "--room", "yard", "--id", "solo", "--log-level", "info"].concat([
          "--stats-json",
          stats,
        ]),
      );
      // Its join is in flight and hanging (the proxy accepted it) before we stop it.
      const end = Date.now() + 30_000;
      while (Date.now() < end && hole.accepted === 0) await new Promise((x) => setTimeout(x, 50));
      expect(hole.accepted).toBeGreaterThan(0);
      const out = await r.stopLikeASupervisor();
      expect(out, r.stderr()).toEqual({ code: 0, signal: null });
      expect(existsSync(stats)).toBe(true);
      expect(JSON.parse(readFileSync(stats, "utf8"))).toMatchObject({ sent: 0 });
    } finally {
      await hole.close();
    }
  }, 60_000);

  describe("joined, linked, then the edge goes dark", () => {
    let edge: LocalEdge;
    beforeAll(async () => {
      edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET } });
    }, 120_000);
    afterAll(async () => {
      await edge?.stop();
    });

    it("the rover stops (exit 0) with its figures written; its leave is bounded", async () => {
      const proxy = await tcpProxy(edge.port);
      const dir = mkdtempSync(join(tmpdir(), "roverlink-stop-"));
      const stats = join(dir, "stats.json");
      const common = ["--room", "dark", "--log-level", "info"];
      const bravo = rover(["--edge", edge.url, ...common, "--id", "bravo", "--echo"]);
      try {
        await bravo.waitFor(/"msg":"joined"/);
        const alpha = rover([
          ...["--edge", proxy.url, ...common, "--id", "alpha", "--connect", "bravo"],
          ...["--probe", "10", "--stats-json", stats],
        ]);
        await alpha.waitFor(/"msg":"link up"/);
        await new Promise((r) => setTimeout(r, 500)); // a few probes out and back
        proxy.goDark();
        const out = await alpha.stopLikeASupervisor();
        expect(out, alpha.stderr()).toEqual({ code: 0, signal: null });
        const f = JSON.parse(readFileSync(stats, "utf8")) as { sent: number; received: number };
        expect(f.sent).toBeGreaterThan(0);
        expect(f.received).toBeGreaterThan(0);
        // It did try to leave, and said it could not confirm it.
        expect(alpha.stderr()).toMatch(/"msg":"leave not confirmed; presence expires by itself"/);
      } finally {
        bravo.child.kill("SIGINT");
        await bravo.exited;
        await proxy.close();
      }
    }, 120_000);

    it("refused while it waits to try the edge again: SIGINT still ends it at once", async () => {
      // The edge refuses connections for a while: the agent's waits between tries grow to 5 s.
      // A stop during one used to wait it out (the auditor saw 3.8-5 s after `stopped`).
      const proxy = await tcpProxy(edge.port);
      const r = rover([
        "--edge",
        proxy.url,
        "--room",
        "dark",
        "--id",
        "waiter",
        "--log-level",
        "info",
      ]);
      try {
        await r.waitFor(/"msg":"joined"/);
        proxy.cut();
        // A wait of at least 4 s has just begun: longer than what is left of the grace period.
        await r.waitFor(
          /"retryInMs":(4\d{3}|5000)\b[^\n]*"msg":"events poll failed"|"msg":"events poll failed"[^\n]*"retryInMs":(4\d{3}|5000)\b/,
          60_000,
        );
        const out = await r.stopLikeASupervisor();
        expect(out, r.stderr()).toEqual({ code: 0, signal: null });
      } finally {
        await proxy.close();
      }
    }, 120_000);

    it("its metrics say when the edge stops answering and when it answers again, and when the token expires", async () => {
      const proxy = await tcpProxy(edge.port);
      const port = await freePort();
      const token = await mintToken({
        secret: SECRET,
        sub: "watched",
        room: "dark",
        ttlSeconds: 3600,
      });
      const exp = (decodeTokenUnverified(token).claims.exp as number).toString();
      const r = spawnRover(
        ["--edge", proxy.url, "--room", "dark", "--id", "watched", "--metrics-port", String(port)],
        { ROVERLINK_TOKEN: token },
      );
      const metric = async (name: string) => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return text.match(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, "m"))?.slice(1) ?? null;
      };
      try {
        await r.waitFor(/"msg":"joined"/);
        expect(await metric("roverlink_edge_reachable")).toEqual([undefined, "1"]);
        expect(await metric("roverlink_token_expiry_timestamp_seconds")).toEqual([undefined, exp]);
        const { version } = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8"));
        expect((await metric("roverlink_build_info"))?.[0]).toBe(
          `{version="${version}",node="${process.versions.node}"}`,
        );
        const since = Number(
          (await metric("roverlink_edge_reachable_changed_timestamp_seconds"))?.[1],
        );
        proxy.cut(); // the stream dropped, connections refused: as an edge outage
        await expect
          .poll(() => metric("roverlink_edge_reachable"), { timeout: 20_000 })
          .toEqual([undefined, "0"]);
        const changed = Number(
          (await metric("roverlink_edge_reachable_changed_timestamp_seconds"))?.[1],
        );
        expect(changed).toBeGreaterThan(since);
        proxy.mend();
        await expect
          .poll(() => metric("roverlink_edge_reachable"), { timeout: 20_000 })
          .toEqual([undefined, "1"]);
      } finally {
        r.child.kill("SIGINT");
        await r.exited;
        await proxy.close();
      }
    }, 120_000);
  });
});
