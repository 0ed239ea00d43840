/**
 * A third-party WHIP client, unmodified: medooze's whip-whep 1.2.0 (npm `whip-whep`) on a Node
 * WebRTC stack (@roamhq/wrtc, libwebrtc), publishing to a `roverlink rover --echo` through a
 * local edge: POST offer, trickle PATCHes, an ICE restart by PATCH (If-Match: *), DELETE. The
 * data channel carries messages before and after the restart (the rover echoes them).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import wrtc from "@roamhq/wrtc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WHIPClient } from "whip-whep/whip.js";
import { type LocalEdge, REPO_ROOT, startLocalEdge } from "../../rover/local-edge.ts";
import { mintToken } from "../../shared/token.ts";

const SECRET = "whip-test-secret-whip-test-secret-x";
const ROOM = "whip";
let edge: LocalEdge;
let rover: ChildProcess;
let roverLog = "";

beforeAll(async () => {
  edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET } });
  rover = spawn(
    process.execPath,
    [
      join(REPO_ROOT, "rover/cli.ts"),
      "rover",
      "--edge",
      edge.url,
      "--room",
      ROOM,
      "--id",
      "rover",
    ].concat(["--echo", "--log-level", "info"]),
    { cwd: REPO_ROOT, env: { ...process.env, ROVERLINK_SECRET: SECRET, ROVERLINK_TOKEN: "" } },
  );
  rover.stderr?.on("data", (d: Buffer) => (roverLog += d.toString()));
  rover.stdout?.resume();
  const end = Date.now() + 30_000;
  while (!roverLog.includes('"msg":"joined"') && Date.now() < end)
    await new Promise((r) => setTimeout(r, 100));
  expect(roverLog).toContain('"msg":"joined"');
}, 120_000);

afterAll(async () => {
  rover?.kill("SIGINT");
  await edge?.stop();
});

/** Resolves with the next message on `dc` for which `match` holds. */
function nextMessage(dc: RTCDataChannel, match: (t: string) => boolean, ms = 15_000) {
  return new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no matching message in ${ms} ms`)), ms);
    const on = (e: MessageEvent) => {
      if (typeof e.data === "string" && match(e.data)) {
        clearTimeout(t);
        dc.removeEventListener("message", on);
        resolve(e.data);
      }
    };
    dc.addEventListener("message", on);
  });
}

async function until(cond: () => boolean, what: string, ms = 20_000) {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  if (!cond()) throw new Error(`timed out waiting for ${what}\n${roverLog.slice(-3000)}`);
}

describe("whip-whep 1.2.0 against the edge and a rover", () => {
  it("POST, trickle, ICE restart by PATCH (data flows after it), DELETE", async () => {
    const token = await mintToken({ secret: SECRET, sub: "cam", room: ROOM, ttlSeconds: 600 });
    const auth = { Authorization: `Bearer ${token}` };
    // A WHIP client knows nothing of rooms: the operator joins it once (kind browser: the rover
    // then speaks plain text on `control`).
    const joined = await fetch(`${edge.url}/v1/rooms/${ROOM}/peers`, {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/json" },
      body: JSON.stringify({ kind: "browser" }),
    });
    expect(joined.status).toBe(201);

    const pc = new wrtc.RTCPeerConnection({ iceServers: [] }) as unknown as RTCPeerConnection;
    // whip-whep trickles per transceiver (it reads transceivers[0]): one audio track to send.
    const source = new wrtc.nonstandard.RTCAudioSource();
    const track = source.createTrack();
    pc.addTransceiver(track, { direction: "sendonly" });
    const dc = pc.createDataChannel("control");
    const opened = new Promise<void>((r) => dc.addEventListener("open", () => r(), { once: true }));

    // Count what the client sends, as the edge sees it.
    const seen: { method: string; status: number; type: string | null }[] = [];
    let resource = "";
    let inFlight = 0;
    const realFetch = globalThis.fetch;
    globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
      inFlight++;
      const res = await realFetch(input, init).finally(() => inFlight--);
      const h = new Headers(init?.headers);
      const location = res.headers.get("Location");
      if (init?.method === "POST" && location) resource = location;
      seen.push({ method: init?.method ?? "GET", status: res.status, type: h.get("Content-Type") });
      return res;
    }) as typeof fetch;
    const client = new WHIPClient();
    try {
      await client.publish(pc, `${edge.url}/v1/rooms/${ROOM}/peers/rover/sessions`, token);
      expect(seen[0]).toMatchObject({ method: "POST", status: 201, type: "application/sdp" });
      await opened;
      const echo = nextMessage(dc, (t) => t === "before restart");
      dc.send("before restart");
      expect(await echo).toBe("before restart");
      // whip-whep trickled its candidates by PATCH (204 each).
      await until(() => seen.some((s) => s.method === "PATCH" && s.status === 204), "a trickle");

      const ufragBefore = /a=ice-ufrag:(\S+)/.exec(pc.remoteDescription?.sdp ?? "")?.[1];
      // Typed as void, but it returns the PATCH's promise.
      await (client.restart() as unknown as Promise<void>);
      const restartPatch = seen.find((s) => s.method === "PATCH" && s.status === 200);
      expect(restartPatch).toMatchObject({ type: "application/trickle-ice-sdpfrag" });
      const ufragAfter = /a=ice-ufrag:(\S+)/.exec(pc.remoteDescription?.sdp ?? "")?.[1];
      expect(ufragAfter).toBeDefined();
      expect(ufragAfter).not.toBe(ufragBefore);
      // The rover's log arrives through a pipe: give it a moment.
      await until(() => roverLog.includes("answered an sdpfrag ICE restart"), "the rover's answer");
      // Connected again on the new credentials, and the data flows.
      await until(
        () => pc.iceConnectionState === "connected" || pc.iceConnectionState === "completed",
        "ICE after the restart",
      );
      const echo2 = nextMessage(dc, (t) => t === "after restart");
      dc.send("after restart");
      expect(await echo2).toBe("after restart");

      // whip-whep trickles the restart's candidates in the background (a promise it does not
      // await): a PATCH still in flight when DELETE ends the session comes back 404 and rejects
      // unhandled. Stop once gathering is over and all it had to say has gone out, for 200 ms.
      const c = client as unknown as {
        iceTrickeTimeout?: unknown;
        candidates: unknown[];
        endOfcandidates: boolean;
        restartIce: unknown;
      };
      const quiet = () =>
        pc.iceGatheringState === "complete" &&
        inFlight === 0 &&
        !c.iceTrickeTimeout &&
        c.candidates.length === 0 &&
        !c.endOfcandidates &&
        !c.restartIce;
      let since = 0;
      await until(() => {
        if (!quiet()) since = 0;
        else since ||= Date.now();
        return since > 0 && Date.now() - since >= 200;
      }, "whip-whep's trickle to finish");
      await client.stop();
      expect(seen.at(-1)).toMatchObject({ method: "DELETE", status: 200 });
      // The session is gone on the edge.
      expect((await realFetch(resource, { headers: auth })).status).toBe(404);
    } finally {
      globalThis.fetch = realFetch;
      track.stop();
      pc.close();
    }
  }, 120_000);
});
