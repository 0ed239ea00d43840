/**
 * patches/werift+0.25.2.patch, TURN part: after an ICE restart selects a pair, the TURN
 * allocations of the old ICE session are released on the server (Refresh with LIFETIME 0) instead
 * of lingering until their lifetime runs out. Real coturn on loopback; relay-only PeerConnections.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RTCPeerConnection } from "werift";
import { freePort } from "../../rover/local-edge.ts";

const hasCoturn = spawnSync("sh", ["-c", "command -v turnserver"]).status === 0;
const SECRET = "turn-release-secret";
let turn: ChildProcess;
let log = "";
let port = 0;

function cred(id: string) {
  const username = `${Math.floor(Date.now() / 1000) + 600}:${id}`;
  return { username, credential: createHmac("sha1", SECRET).update(username).digest("base64") };
}

type Conn = {
  protocols: { type: string }[];
  nominated?: { remoteCandidate: { ufrag?: string } };
  remoteUsername: string;
};
const conn = (pc: RTCPeerConnection) =>
  (pc as unknown as { iceTransports: { connection: Conn }[] }).iceTransports[0]?.connection as Conn;

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

describe.skipIf(!hasCoturn && !process.env.CI)(
  "werift TURN allocations across an ICE restart (patched)",
  () => {
    beforeAll(async () => {
      expect(hasCoturn, "coturn (turnserver) is needed: apt-get install coturn").toBe(true);
      port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), "roverlink-turn-"));
      turn = spawn("turnserver", [
        "-n",
        "--no-cli",
        "--no-tls",
        "--no-dtls",
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        `--listening-port=${port}`,
        "--min-port=49160",
        "--max-port=49400",
        "--use-auth-secret",
        `--static-auth-secret=${SECRET}`,
        "--realm=roverlink.test",
        "--allow-loopback-peers",
        "--log-file=stdout",
        "--verbose",
        `--pidfile=${dir}/pid`,
        `--userdb=${dir}/db`,
      ]);
      turn.stdout?.on("data", (d: Buffer) => (log += d.toString()));
      turn.stderr?.on("data", (d: Buffer) => (log += d.toString()));
      expect((await until(() => log.includes("Total"), 5_000)) || log.length > 0).toBe(true);
    });
    afterAll(() => {
      turn?.kill();
    });

    it("releases the old session's allocations once the restarted session selects a pair", async () => {
      const mk = (id: string) =>
        new RTCPeerConnection({
          iceServers: [{ urls: `turn:127.0.0.1:${port}?transport=udp`, ...cred(id) }],
          iceTransportPolicy: "relay",
          iceUseIpv6: false,
        });
      const a = mk("a");
      const b = mk("b");
      try {
        // A candidate for a replaced description is refused; the checks decide, not this.
        a.onIceCandidate.subscribe((c) => void (c && b.addIceCandidate(c).catch(() => undefined)));
        b.onIceCandidate.subscribe((c) => void (c && a.addIceCandidate(c).catch(() => undefined)));
        const dc = a.createDataChannel("x");
        const negotiate = async (restart: boolean) => {
          await a.setLocalDescription(
            await a.createOffer(restart ? { iceRestart: true } : undefined),
          );
          await b.setRemoteDescription(
            a.localDescription as NonNullable<typeof a.localDescription>,
          );
          await b.setLocalDescription(await b.createAnswer());
          await a.setRemoteDescription(
            b.localDescription as NonNullable<typeof b.localDescription>,
          );
        };
        await negotiate(false);
        expect(await until(() => dc.readyState === "open", 10_000)).toBe(true);
        await negotiate(true);
        const selected = (pc: RTCPeerConnection) =>
          conn(pc).nominated?.remoteCandidate.ufrag === conn(pc).remoteUsername;
        expect(await until(() => selected(a) && selected(b), 10_000)).toBe(true);
        // One allocation per side is left; the other was deleted on the server.
        expect(
          await until(() => conn(a).protocols.filter((p) => p.type === "turn").length === 1, 5_000),
        ).toBe(true);
        expect(conn(b).protocols.filter((p) => p.type === "turn")).toHaveLength(1);
        expect(await until(() => (log.match(/lifetime=0/g) ?? []).length >= 2, 5_000)).toBe(true);
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    });
  },
);
