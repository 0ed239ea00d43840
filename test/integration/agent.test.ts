/**
 * Two (and three) rover agents through a real local edge (workerd via wrangler dev), real werift
 * on loopback UDP: linking, both channels both ways, and handovers (ICE restart, full rebuild,
 * glare) in the middle of a 50 msg/s control stream with nothing lost, duplicated or reordered.
 */
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RTCPeerConnection, RTCSctpTransport } from "werift";
import { Agent, type AgentMessage, NoLinkError } from "../../rover/agent.ts";
import { type LocalEdge, REPO_ROOT, startLocalEdge } from "../../rover/local-edge.ts";
import { NetWatch } from "../../rover/netwatch.ts";
import { type FetchFn, RoverlinkClient } from "../../shared/client.ts";
import type { HealthConfig } from "../../shared/link/health.ts";
import { iceCredentials, sdpCandidates, withIceCredentials } from "../../shared/link/sdp-edit.ts";
import {
  buildCandidateFrag,
  fragCandidates,
  fragPwd,
  fragUfrag,
  parseSdpFrag,
} from "../../shared/sdpfrag.ts";
import { mintToken } from "../../shared/token.ts";
import { nextEvent, testAgent, waitFor } from "./agents.ts";

const SECRET = "integration-secret-integration-secret";
/** Spawned rovers keep durable state under $XDG_STATE_HOME: a fresh one per run. */
const STATE_HOME = mkdtempSync(join(tmpdir(), "agent-state-"));
let edge: LocalEdge;
const agents: Agent[] = [];

beforeAll(async () => {
  edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET } });
});

afterAll(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
  await edge?.stop();
});

let roomN = 0;
async function agent(
  room: string,
  id: string,
  connect: string[] = [],
  wrapFetch?: (f: FetchFn) => FetchFn,
  edgeUrl = edge.url,
  pollWaitS?: number,
  health?: Partial<HealthConfig>,
): Promise<Agent> {
  const a = await testAgent(SECRET, {
    ...(wrapFetch ? { wrapFetch } : {}),
    ...(health ? { health } : {}),
    ...(pollWaitS ? { pollWaitS } : {}),
    edge: edgeUrl,
    room,
    id,
    connect,
  });
  agents.push(a);
  await a.start();
  return a;
}

async function until(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * `roverlink rover --echo` as a process of its own, so that SIGKILL is a crash, not a stop;
 * durable under this run's state home unless `extra` says `--in-memory`.
 */
function echoRover(room: string, id: string, extra: string[] = []): ReturnType<typeof spawn> {
  return spawn(
    process.execPath,
    [
      join(REPO_ROOT, "rover", "cli.ts"),
      "rover",
      ...["--edge", edge.url, "--room", room, "--id", id, "--echo", "--log-level", "warn"],
      ...extra,
    ],
    {
      env: { ...process.env, ROVERLINK_SECRET: SECRET, XDG_STATE_HOME: STATE_HOME },
      stdio: "ignore",
    },
  );
}

/** `a` in `room`, linked to the echoing rover `b`, and what comes back; "before" went round. */
async function echoedBy(room: string): Promise<{ a: Agent; echoes: string[] }> {
  const a = await agent(room, "a", ["b"]);
  await waitFor(a, "link-up", () => true, 30_000);
  const echoes: string[] = [];
  a.on("message", (m: AgentMessage) => echoes.push(String(m.data)));
  a.send("b", "control", "before");
  await until(() => echoes.includes("before"));
  return { a, echoes };
}

/** b echoes control messages back; returns what a got back. */
function echo(b: Agent): void {
  b.on("message", (m: AgentMessage) => {
    if (m.channel === "control") b.send(m.peer, "control", m.data);
  });
}

async function stream(
  a: Agent,
  to: string,
  n: number,
  hz: number,
  during?: (i: number) => void,
): Promise<string[]> {
  const got: string[] = [];
  a.on("message", (m: AgentMessage) => {
    if (m.channel === "control" && m.peer === to) got.push(String(m.data));
  });
  for (let i = 0; i < n; i++) {
    a.send(to, "control", `m${i}`);
    during?.(i);
    await new Promise((r) => setTimeout(r, 1000 / hz));
  }
  // A timeout is not the verdict: the caller compares what arrived with what was sent.
  await until(() => got.length >= n, 20_000).catch(() => undefined);
  return got;
}

const expected = (n: number) => Array.from({ length: n }, (_, i) => `m${i}`);

/**
 * Until `restore()`, an SCTP association that stops sends no ABORT: the peer is not told, as
 * when the packet is lost or the network is already gone.
 */
function withoutSctpAbort(): { restore(): void } {
  const proto = RTCSctpTransport.prototype as unknown as { stop(): Promise<void> };
  const stop = proto.stop;
  proto.stop = async function (this: { sctp: { abort(): Promise<void> } }) {
    this.sctp.abort = async () => {};
    return stop.call(this);
  };
  return {
    restore: () => {
      proto.stop = stop;
    },
  };
}

describe("rover agents through the local edge", () => {
  it("link and exchange messages both ways on control and telemetry", async () => {
    const room = `int-${++roomN}`;
    const b = await agent(room, "b");
    const a = await agent(room, "a", ["b"]);
    await Promise.all([waitFor(a, "link-up"), waitFor(b, "link-up")]);
    // A peer with no link is a typed error to catch, naming the peer.
    expect(() => a.send("nobody", "telemetry", "x")).toThrow(NoLinkError);
    expect(() => a.openChannel("nobody", "app", { ordered: true })).toThrow(/no link to "nobody"/);
    await expect(a.restart("nobody")).rejects.toMatchObject({
      name: "NoLinkError",
      peer: "nobody",
    });
    const atB: AgentMessage[] = [];
    const atA: AgentMessage[] = [];
    b.on("message", (m: AgentMessage) => atB.push(m));
    a.on("message", (m: AgentMessage) => atA.push(m));
    a.send("b", "control", "hello b");
    b.send("a", "control", "hello a");
    a.send("b", "telemetry", "t-ab");
    b.send("a", "telemetry", "t-ba");
    await until(() => atB.length >= 2 && atA.length >= 2).catch((e) => {
      console.error(JSON.stringify({ atA, atB, sa: a.stats(), sb: b.stats() }));
      throw e;
    });
    expect(atB.map((m) => `${m.channel}:${m.data}`).sort()).toEqual([
      "control:hello b",
      "telemetry:t-ab",
    ]);
    expect(atA.map((m) => `${m.channel}:${m.data}`).sort()).toEqual([
      "control:hello a",
      "telemetry:t-ba",
    ]);
    expect(a.stats()[0]).toMatchObject({ peer: "b", state: "up", path: "direct" });
  });

  it("telemetry one way on a link with a backup path is not silence: no switch for it, no restart", async () => {
    // Seen by a library user: telemetry at 2 msg/s and nothing back switched a healthy loopback
    // link to its backup every ~2.5 s ("silence"), each a handover event.
    const room = `int-${++roomN}`;
    const mk = async (id: string, connect: string[] = []) => {
      const x = await testAgent(SECRET, { edge: edge.url, room, id, connect, watchNetwork: true });
      agents.push(x);
      await x.start();
      return x;
    };
    const b = await mk("b");
    const a = await mk("a", ["b"]);
    await Promise.all([waitFor(a, "link-up"), waitFor(b, "link-up")]);
    const handovers: string[] = [];
    a.on("handover", (h) => handovers.push(`a→${h.peer} ${h.kind} ${h.reason}`));
    b.on("handover", (h) => handovers.push(`b→${h.peer} ${h.kind} ${h.reason}`));
    const backups = () => a.links().get("b")?.health.snapshot(Date.now()).backups ?? 0;
    // The premise: a validated backup to switch to (else no switch could happen either way).
    await until(() => backups() > 0);
    const got: string[] = [];
    b.on("message", (m: AgentMessage) => got.push(String(m.data)));
    for (let i = 0; i < 24; i++) {
      a.send("b", "telemetry", `t${i}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(got.length).toBeGreaterThan(20);
    // What one-way traffic must not cause: a move for silence (or a pair that delivered nothing),
    // or a restart. Following the peer onto another of its pairs (`peer-moved`) is not that: one
    // CI run of the whole suite saw one such follow here, on a loaded machine, never reproduced
    // since (15 runs of this test, 3 of them with its whole file, under two busy loops).
    expect(handovers.filter((h) => !h.endsWith(" switch peer-moved"))).toEqual([]);
    expect(backups()).toBeGreaterThan(0);
  }, 30_000);

  it("applications open more channels on demand; nothing sent before they open is lost", async () => {
    const room = `int-${++roomN}`;
    const b = await agent(room, "b");
    const a = await agent(room, "a", ["b"]);
    await waitFor(a, "link-up");
    const atB: string[] = [];
    const atA: string[] = [];
    b.on("message", (m: AgentMessage) => {
      if (m.channel !== "app") return;
      atB.push(String(m.data));
      b.send("a", "app", `re:${m.data}`); // b answers on the channel a opened
    });
    a.on("message", (m: AgentMessage) => {
      if (m.channel === "app") atA.push(String(m.data));
    });
    // Sent at once, while the new channel is still opening.
    for (const t of ["x1", "x2", "x3"]) a.send("b", "app", t);
    await until(() => atA.length === 3);
    expect(atB).toEqual(["x1", "x2", "x3"]);
    expect(atA).toEqual(["re:x1", "re:x2", "re:x3"]);
  });

  it("an ICE restart in the middle of a 50 msg/s stream loses, duplicates and reorders nothing", async () => {
    const room = `int-${++roomN}`;
    const b = await agent(room, "b");
    const a = await agent(room, "a", ["b"]);
    await waitFor(a, "link-up");
    echo(b);
    // The restarts' handovers (a loaded machine may also switch paths on silence first).
    const isRestart = (h: unknown) => (h as { kind: string }).kind === "restart";
    const handover = waitFor(a, "handover", isRestart);
    const answered = waitFor(b, "handover", isRestart);
    const got = await stream(a, "b", 150, 50, (i) => {
      if (i === 50) void a.restart("b");
    });
    expect(got).toEqual(expected(150));
    const h = await handover;
    expect(h).toMatchObject({ kind: "restart", reason: "manual" });
    expect(await answered).toMatchObject({ kind: "restart", reason: "peer-restart" });
    console.info(`ICE restart handover gap: ${h.gapMs} ms`);
  });

  it("a local network change hands over at once: a switch to a validated backup (else an ICE restart), fresh poll, nothing lost", async () => {
    const room = `int-${++roomN}`;
    const b = await agent(room, "b");
    // The real NetWatch, reading a made-up interface list: wlan0 goes away mid-stream.
    let addrs = "wlan0=192.168.1.5,wwan0=10.64.0.7";
    const net = new NetWatch({ addresses: () => addrs, routes: () => "", addressEveryMs: 20 });
    let polls = 0;
    const countPolls =
      (f: FetchFn): FetchFn =>
      (url, init) => {
        if (new URL(url).pathname.endsWith("/events")) polls++;
        return f(url, init);
      };
    const a = new Agent({
      edge: edge.url,
      room,
      id: "a",
      token: await mintToken({ secret: SECRET, sub: "a", room, ttlSeconds: 600 }),
      connect: ["b"],
      netWatch: net,
      wrapFetch: countPolls,
    });
    agents.push(a);
    await a.start();
    await waitFor(a, "link-up");
    echo(b);
    // The network change's handover: a loaded machine may see another first (b switching on
    // silence, and a following it: peer-moved), and the change must still be acted on after it.
    let changed = false;
    const handover = waitFor(
      a,
      "handover",
      (h) => changed && (h as { reason: string }).reason === "network-change",
    );
    let pollsBefore = 0;
    const got = await stream(a, "b", 100, 50, (i) => {
      if (i !== 30) return;
      pollsBefore = polls;
      addrs = "wwan0=10.64.0.7";
      changed = true;
    });
    expect(got).toEqual(expected(100));
    // The peer's other host address gives a validated backup pair here (rover/backup-paths.ts),
    // so the link switches without the edge; a machine without one restarts ICE.
    const h = await handover;
    expect(["switch", "restart"]).toContain(h.kind);
    // The parked poll (or event stream) was dropped with its pooled connection and sent again on
    // a new one: after the old pool's 1 s grace (rover/http.ts), so it may come after the stream.
    await expect.poll(() => polls, { timeout: 5_000 }).toBeGreaterThan(pollsBefore);
  });

  it("a full rebuild of the PeerConnection loses nothing on control", async () => {
    const room = `int-${++roomN}`;
    const b = await agent(room, "b");
    const a = await agent(room, "a", ["b"]);
    await waitFor(a, "link-up");
    echo(b);
    const first = a.links().get("b")?.session;
    const rebuilt = waitFor(a, "handover", (h) => (h as { kind: string }).kind === "rebuild");
    const got = await stream(a, "b", 100, 50, (i) => {
      // Close the session under the link: the offerer rebuilds with a new PeerConnection and
      // session, and the reliable layer resends what the old association had not delivered.
      if (i === 40 && first) void b.client.closeSession(room, first);
    });
    expect(got).toEqual(expected(100));
    const h = await rebuilt;
    expect(h.reason).toBe("session-closed");
    expect(a.links().get("b")?.session).not.toBe(first);
    console.info(`rebuild handover gap: ${h.gapMs} ms`);
  });

  it("glare: both sides restart at once and the link comes back", async () => {
    const room = `int-${++roomN}`;
    let rePosts = 0;
    const countRestartOffers =
      (f: FetchFn): FetchFn =>
      (url, init) => {
        if (init.method === "POST" && /\/sessions\/[^/]+$/.test(new URL(url).pathname)) rePosts++;
        return f(url, init);
      };
    const b = await agent(room, "b", [], countRestartOffers);
    const a = await agent(room, "a", ["b"], countRestartOffers);
    await waitFor(a, "link-up");
    echo(b);
    const handovers = Promise.all(
      [a, b].map((x) =>
        waitFor(x, "handover", (h) => {
          return (h as { kind: string }).kind === "restart";
        }),
      ),
    );
    const got = await stream(a, "b", 100, 50, (i) => {
      if (i === 30) {
        void a.restart("b");
        void b.restart("a");
      }
    });
    expect(got).toEqual(expected(100));
    // Both sides finish the one handover that won (the loser answered it): no retry was needed.
    const gaps = (await handovers).map((h) => h.gapMs);
    expect(rePosts).toBe(2);
    console.info(`glare handover gaps: ${gaps.join(" ms, ")} ms`);
  });

  it("two agents told to connect to each other make one link, without a rebuild", async () => {
    const room = `int-${++roomN}`;
    const a = await agent(room, "a", ["b"]);
    const upA = waitFor(a, "link-up");
    // b offers at once on start, while a offers on b's peer-joined: both offers cross.
    const b = await agent(room, "b", ["a"]);
    await Promise.all([upA, waitFor(b, "link-up")]);
    const sa = a.links().get("b")?.session;
    expect(sa).toBeTruthy();
    expect(b.links().get("a")?.session).toBe(sa);
    // The smaller id's offer won; the loser yielded instead of both waiting for a rebuild.
    expect(a.links().get("b")?.role).toBe("offerer");
    expect([...a.stats(), ...b.stats()].map((s) => s.rebuilds)).toEqual([0, 0]);
  });

  it("a restart answered by a new PeerConnection (the peer had dropped its link) rebuilds at once; control stays exactly-once", async () => {
    const room = `int-${++roomN}`;
    let rePosts = 0;
    const countRestartOffers =
      (f: FetchFn): FetchFn =>
      (url, init) => {
        if (init.method === "POST" && /\/sessions\/[^/]+$/.test(new URL(url).pathname)) rePosts++;
        return f(url, init);
      };
    const b = await agent(room, "b");
    const a = await agent(room, "a", ["b"], countRestartOffers);
    await waitFor(a, "link-up");
    echo(b);
    const rebuilt = waitFor(a, "handover", (h) => (h as { kind: string }).kind !== "switch");
    const got = await stream(a, "b", 100, 50, (i) => {
      if (i !== 30) return;
      // b forgets its link (as after its sweep) and a does not notice: the SCTP ABORT of b's
      // closing PeerConnection is lost on the way (a peer close that arrives rebuilds at once by
      // itself: the next test).
      const abortless = withoutSctpAbort();
      void b.disconnect("a", { hangUp: false }).finally(abortless.restore);
      void a.restart("b");
    });
    expect(got).toEqual(expected(100));
    expect(await rebuilt).toMatchObject({ kind: "rebuild", reason: "manual" });
    // One restart offer, answered by b's new PeerConnection: no futile retries before the rebuild.
    expect(rePosts).toBe(1);
  });

  it("an idle link whose peer closes its PeerConnection without a word to the edge rebuilds at once", async () => {
    const room = `int-${++roomN}`;
    const b = await agent(room, "b");
    const a = await agent(room, "a", ["b"]);
    await waitFor(a, "link-up");
    echo(b);
    expect(await stream(a, "b", 10, 50)).toEqual(expected(10));
    const rebuilt = waitFor(a, "handover", (h) => (h as { kind: string }).kind !== "switch");
    // b drops its link and tells nobody (no hang-up): its pc.close() sends an SCTP ABORT. On an
    // idle link nothing else would show it before the keepalive misses (~25 s).
    void b.disconnect("a", { hangUp: false });
    expect(await rebuilt).toMatchObject({ kind: "rebuild", reason: "peer-closed" });
    await until(() => a.stats()[0]?.state === "up");
    // The rebuilt link carries control both ways.
    expect(await stream(a, "b", 20, 50)).toEqual(expected(20));
  });

  it("links() is a snapshot that changes nothing in the agent; disconnect() drops a link", async () => {
    const room = `int-${++roomN}`;
    const b = await agent(room, "b");
    const a = await agent(room, "a", ["b"]);
    await Promise.all([waitFor(a, "link-up"), waitFor(b, "link-up")]);
    const snapshot = b.links();
    expect([...snapshot.keys()]).toEqual(["a"]);
    expect(snapshot.get("a")).toBe(b.link("a"));
    // Before, this was the agent's own map: deleting from it dropped the link behind its back
    // (it kept running, unreachable by send, restart or stop).
    (snapshot as Map<string, unknown>).delete("a");
    expect(b.hasLink("a")).toBe(true);
    expect(b.links().has("a")).toBe(true);
    expect(b.links()).not.toBe(b.links());
    // The way to drop one: the agent's own, which closes it and says so.
    const down = waitFor(b, "link-down", (p, reason) => p === "a" && reason === "disconnected");
    const gone = b.disconnect("a");
    expect(b.hasLink("a")).toBe(false);
    expect(b.link("a")).toBeUndefined();
    await gone;
    expect(await down).toBe("a");
    await expect(b.disconnect("nobody")).rejects.toMatchObject({
      name: "NoLinkError",
      peer: "nobody",
    });
  });

  it("three agents make a mesh", async () => {
    const room = `int-${++roomN}`;
    const c = await agent(room, "c");
    const b = await agent(room, "b", ["c"]);
    const a = await agent(room, "a", ["b", "c"]);
    await until(
      () =>
        a.stats().filter((s) => s.state === "up").length === 2 &&
        b.stats().length === 2 &&
        c.stats().length === 2,
    );
    const atC: AgentMessage[] = [];
    c.on("message", (m: AgentMessage) => atC.push(m));
    a.send("c", "control", "from a");
    b.send("c", "control", "from b");
    await until(() => atC.length === 2);
    expect(atC.map((m) => `${m.peer}:${m.data}`).sort()).toEqual(["a:from a", "b:from b"]);
  });

  it("a first offer that fails is offered again", async () => {
    const room = `int-${++roomN}`;
    const b = await agent(room, "b");
    let offers = 0;
    // The first offer POST dies on the way (the edge was briefly unreachable).
    const failFirstOffer =
      (f: FetchFn): FetchFn =>
      async (url, init) => {
        if (init.method === "POST" && /\/peers\/b\/sessions$/.test(new URL(url).pathname)) {
          offers++;
          if (offers === 1) throw new TypeError("fetch failed: connection refused (injected)");
        }
        return f(url, init);
      };
    const a = await agent(room, "a", ["b"], failFirstOffer);
    await Promise.all([waitFor(a, "link-up"), waitFor(b, "link-up")]);
    expect(offers).toBe(2);
  });

  it("a restart offer lost in transit is recovered by the retry", async () => {
    const room = `int-${++roomN}`;
    const b = await agent(room, "b");
    let rePosts = 0;
    // The first ICE-restart re-POST never reaches the edge (the uplink ate it).
    const dropFirstRestart =
      (f: FetchFn): FetchFn =>
      async (url, init) => {
        if (init.method === "POST" && /\/sessions\/[^/]+$/.test(new URL(url).pathname)) {
          rePosts++;
          if (rePosts === 1) throw new TypeError("fetch failed: connection reset (injected)");
        }
        return f(url, init);
      };
    const a = await agent(room, "a", ["b"], dropFirstRestart);
    await waitFor(a, "link-up");
    echo(b);
    const handover = waitFor(a, "handover");
    const got = await stream(a, "b", 200, 50, (i) => {
      if (i === 30) void a.restart("b");
    });
    expect(got).toEqual(expected(200));
    await handover;
    expect(rePosts).toBeGreaterThanOrEqual(2);
  });

  it("answers a WHIP-style ICE restart by PATCH (sdpfrag) and carries data on the new ICE session", async () => {
    const room = `int-${++roomN}`;
    const b = await agent(room, "b");
    // x: a bare WHIP-style client (werift + the HTTP client), not an agent.
    const x = new RoverlinkClient({
      baseUrl: edge.url,
      token: await mintToken({ secret: SECRET, sub: "x", room, ttlSeconds: 600 }),
    });
    await x.join(room, { kind: "tool" });
    const pc = new RTCPeerConnection({
      iceServers: [],
      iceUseIpv6: false,
      iceAdditionalHostAddresses: ["127.0.0.1"],
    });
    try {
      pc.createDataChannel("control", { ordered: true });
      pc.createDataChannel("telemetry", { ordered: false, maxRetransmits: 0 });
      const app = pc.createDataChannel("app", { ordered: true });
      const got: string[] = [];
      app.onMessage.subscribe((m) => got.push(String(m)));
      b.on("message", (m: AgentMessage) => {
        if (m.channel === "app") b.send(m.peer, "app", m.data);
      });
      await pc.setLocalDescription(await pc.createOffer());
      const offered = await x.offer(room, "b", pc.localDescription?.sdp ?? "", { waitS: 10 });
      expect(offered.status).toBe(201);
      await pc.setRemoteDescription({ type: "answer", sdp: offered.answer ?? "" });
      await until(() => app.readyState === "open");
      app.send("before");
      await until(() => got.includes("before"));

      const handover = waitFor(b, "handover", (h) => (h as { kind: string }).kind !== "switch");
      await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
      const local = pc.localDescription?.sdp ?? "";
      const creds = iceCredentials(local);
      if (!creds) throw new Error("no ICE credentials in werift's offer");
      const restarted = await x.restartFrag(
        room,
        offered.session,
        buildCandidateFrag({ ...creds, candidates: sdpCandidates(local), end: true }),
        { ifMatch: offered.etag, waitS: 10 },
      );
      expect(restarted.status).toBe(200);
      expect(restarted.etag).not.toBe(offered.etag);
      const reply = parseSdpFrag(restarted.frag ?? "");
      const ufrag = fragUfrag(reply);
      const pwd = fragPwd(reply);
      const before = iceCredentials(offered.answer ?? "");
      // b answered with a new ICE generation and its candidates.
      expect(ufrag).toBeDefined();
      expect(ufrag).not.toBe(before?.ufrag);
      expect(fragCandidates(reply).length).toBeGreaterThan(0);
      const remote = pc.remoteDescription?.sdp ?? "";
      await pc.setRemoteDescription({
        type: "answer",
        sdp: withIceCredentials(remote, { ufrag: ufrag ?? "", pwd: pwd ?? "" }),
      });
      for (const c of fragCandidates(reply)) await pc.addIceCandidate(c);
      // The new ICE session selects a pair with b's new ufrag (not the old pair kept alive).
      const conn = (
        pc as unknown as {
          iceTransports: { connection: { remoteUsername: string; nominated?: unknown } }[];
        }
      ).iceTransports[0]?.connection;
      await until(() => conn?.remoteUsername === ufrag && conn?.nominated !== undefined);
      expect((await handover).kind).toBe("restart");
      app.send("after");
      await until(() => got.includes("after"));
      expect(got).toEqual(["before", "after"]);
    } finally {
      await pc.close();
      // Clean-up only: the room expires x anyway, and the test's verdict is above.
      await x.leave(room, "x").catch(() => undefined);
    }
  });

  it("a live link outlasts an agent's presence expiring at the edge, and nothing is lost", async () => {
    const short = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET, PRESENCE_TTL_S: "2" } });
    try {
      const room = `int-${++roomN}`;
      // a loses the edge (not b): its event polls fail until unblocked, and the parked one ends.
      let blocked = false;
      const parked = new Set<AbortController>();
      const cutPolls =
        (f: FetchFn): FetchFn =>
        async (url, init) => {
          if (!new URL(url).pathname.endsWith("/events")) return f(url, init);
          if (blocked) {
            await new Promise((r) => setTimeout(r, 100));
            throw new TypeError("fetch failed: edge unreachable (injected)");
          }
          const ac = new AbortController();
          init.signal?.addEventListener("abort", () => ac.abort(init.signal?.reason));
          parked.add(ac);
          try {
            return await f(url, { ...init, signal: ac.signal });
          } finally {
            parked.delete(ac);
          }
        };
      const b = await agent(room, "b", [], undefined, short.url);
      // Short polls: a parked poll keeps a present at the edge until it ends.
      const a = await agent(room, "a", ["b"], cutPolls, short.url, 1);
      await waitFor(a, "link-up");
      echo(b);
      const downs: string[] = [];
      for (const x of [a, b]) x.on("link-down", (p: string, r: string) => downs.push(`${p}:${r}`));
      const expired = waitFor(b, "peer-left", (p, reason) => p === "a" && reason === "expired");
      const back = waitFor(b, "peer-joined", (p) => (p as { id: string }).id === "a");
      // Not a switch on silence (a loaded machine): the restart or rebuild the test is about.
      const handover = waitFor(a, "handover", (h) => (h as { kind: string }).kind !== "switch");
      let downsAcrossExpiry: string[] | null = null;
      let phase: Promise<void> = Promise.resolve();
      const got = await stream(a, "b", 250, 50, (i) => {
        if (i !== 10) return;
        phase = (async () => {
          blocked = true;
          for (const ac of parked) ac.abort(new Error("injected"));
          await expired;
          blocked = false;
          await back;
          downsAcrossExpiry = [...downs];
          // The edge closed the old session: the handover restarts ICE in a new one.
          await a.restart("b");
        })();
      });
      await phase;
      expect(got).toEqual(expected(250));
      expect(downsAcrossExpiry).toEqual([]);
      // Same PeerConnections on both sides: a restart, not a rebuild, and never down.
      expect((await handover).kind).toBe("restart");
      expect(downs).toEqual([]);
      expect([...a.stats(), ...b.stats()].map((x) => x.rebuilds)).toEqual([0, 0]);
      expect(a.links().get("b")?.session).toBe(b.links().get("a")?.session);
      expect(a.stats()[0]).toMatchObject({ peer: "b", state: "up" });
    } finally {
      await Promise.all(agents.splice(0).map((x) => x.stop()));
      await short.stop();
    }
  });

  it("killing and restarting an agent process resumes its links", async () => {
    const room = `int-${++roomN}`;
    const startB = () => echoRover(room, "b");
    let b = startB();
    try {
      const { a, echoes } = await echoedBy(room);
      // Killed: no goodbye; the edge still lists b until its presence expires.
      b.kill("SIGKILL");
      await new Promise((r) => setTimeout(r, 500));
      b = startB();
      await waitFor(a, "link-up", () => true, 30_000);
      // The new process announced a new incarnation; a rebuilt its link, and it carries data.
      a.send("b", "control", "after");
      await until(() => echoes.includes("after"), 20_000);
      expect(echoes).toContain("after");
    } finally {
      b.kill("SIGKILL");
    }
  });

  it("a second agent with the same id: the first is told its seat was taken, reads no more and does not leave; the second links", async () => {
    const room = `int-${++roomN}`;
    const b = await agent(room, "b");
    const a1 = await agent(room, "a", ["b"]);
    await waitFor(a1, "link-up");
    const taken = nextEvent(a1, "seat-taken", () => true, 10_000);
    let secondTold = false;
    const a2 = await agent(room, "a", ["b"]);
    a2.on("seat-taken", () => {
      secondTold = true;
    });
    const [incarnation] = await taken;
    expect(typeof incarnation).toBe("string");
    // b follows the new process (a new incarnation): its link is to a2 now.
    await waitFor(a2, "link-up", () => true, 30_000);
    await a1.stop();
    // a1 did not leave: the seat is a2's, which b still lists and still hears.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(b.peers().map((p) => p.id)).toContain("a");
    const got = nextEvent(b, "message", (m) => m.data === "from a2");
    a2.send("b", "control", "from a2");
    await got;
    expect(secondTold).toBe(false);
  });

  it("messages sent while the peer's process was dead reach its next process (in memory), with peer-state-lost", async () => {
    const room = `int-${++roomN}`;
    const startB = () => echoRover(room, "b", ["--in-memory"]);
    let b = startB();
    try {
      // No stateDir: a's streams are in memory.
      const { a, echoes } = await echoedBy(room);
      // Acknowledged too: the new process then needs a new stream (with nothing acknowledged
      // yet, the old one from 0 would do, and nothing is lost to say).
      await until(() => a.links().get("b")?.sender.stats().acked === 1);
      const lost = waitFor(a, "peer-state-lost", (_p, side) => side === "receiver", 30_000);
      b.kill("SIGKILL");
      await new Promise((r) => setTimeout(r, 300));
      // Taken by send() while nobody is there to acknowledge them.
      const sent = Array.from({ length: 20 }, (_, i) => `while-down-${i}`);
      for (const m of sent) a.send("b", "control", m);
      b = startB();
      expect(await lost).toBe("b");
      await until(() => sent.every((m) => echoes.includes(m)), 20_000);
      // In order, each once (b echoes what its process got).
      expect(echoes).toEqual(["before", ...sent]);
    } finally {
      b.kill("SIGKILL");
    }
  });

  it("a peer killed for good: link-down once per cause, not once per failed attempt", async () => {
    const room = `int-${++roomN}`;
    const b = echoRover(room, "b", ["--in-memory"]);
    try {
      const lines: string[] = [];
      const a = await testAgent(SECRET, {
        edge: edge.url,
        room,
        id: "a",
        connect: ["b"],
        logger: pino({ level: "warn" }, { write: (l: string) => void lines.push(l) }),
      });
      agents.push(a);
      await a.start();
      await waitFor(a, "link-up", () => true, 30_000);
      const downs: string[] = [];
      a.on("link-down", (_p, reason) => downs.push(reason));
      const gone = waitFor(a, "peer-left", (p) => p === "b", 60_000);
      b.kill("SIGKILL");
      // Until its presence expires (30 s) the link tries again and again; then it is dropped.
      await gone;
      await until(() => !a.hasLink("b"), 30_000);
      await new Promise((r) => setTimeout(r, 2_000));
      const attempts = lines.filter((l) => l.includes("rebuilding the PeerConnection")).length;
      expect(attempts).toBeGreaterThanOrEqual(2); // the premise: several failed attempts
      // Each failed attempt's control channel closing said channel-closed again.
      expect(downs).toEqual([...new Set(downs)]);
      expect(downs).toContain("channel-closed");
    } finally {
      b.kill("SIGKILL");
    }
  }, 120_000);

  it("an edge that comes back without its state: links to peers that left meanwhile are dropped, not rebuilt forever", async () => {
    const first = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET } });
    const port = first.port;
    const room = `int-${++roomN}`;
    let second: LocalEdge | null = null;
    try {
      const b = await agent(room, "b", [], undefined, first.url, 2);
      const a = await agent(room, "a", ["b"], undefined, first.url, 2);
      await waitFor(b, "link-up", () => true, 30_000);
      await first.stop();
      // a goes while the edge is down: its goodbye reaches nobody.
      await a.stop(500);
      await until(() => b.links().get("a")?.up === false, 30_000);
      second = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET }, port });
      // b's events get 404 (a fresh edge knows nobody): b joins again, alone.
      const gone = waitFor(b, "peer-left", (p) => p === "a", 30_000);
      expect(await gone).toBe("a");
      await until(() => !b.hasLink("a"), 30_000);
      // And it stays so (before: a rebuild every 10 s, for as long as b ran).
      await new Promise((r) => setTimeout(r, 3_000));
      expect(b.hasLink("a")).toBe(false);
    } finally {
      await Promise.all(agents.splice(0).map((x) => x.stop(500)));
      await second?.stop();
      await first.stop();
    }
  }, 120_000);

  it("killing and restarting the offering agent's process: the answerer links afresh both ways", async () => {
    const room = `int-${++roomN}`;
    const startA = () => echoRover(room, "a", ["--connect", "b"]);
    const b = await agent(room, "b");
    let a = startA();
    try {
      await waitFor(b, "link-up", () => true, 30_000);
      const echoes: string[] = [];
      b.on("message", (m: AgentMessage) => echoes.push(String(m.data)));
      b.send("a", "control", "before");
      await until(() => echoes.includes("before"));
      a.kill("SIGKILL");
      await new Promise((r) => setTimeout(r, 500));
      a = startA();
      // b (which only answers) must not carry its old reliable stream over to the new process:
      // the new process would wait for sequence numbers that went to the old one.
      await waitFor(b, "link-up", () => true, 30_000);
      b.send("a", "control", "after");
      await until(() => echoes.includes("after"), 20_000);
      expect(echoes).toEqual(["before", "after"]);
    } finally {
      a.kill("SIGKILL");
    }
  });
});

describe("the health policy is the only decider, and production feeds it every event", () => {
  it("every event LinkHealth defines is fed by the link over a life with failures, a handover and a hang-up", async () => {
    const room = `int-${++roomN}`;
    // The shortest keepalive period RFC 7675 allows, so that a keepalive comes within the test.
    const quick = { keepaliveMs: 4_000 };
    const b = await agent(room, "b", [], undefined, edge.url, undefined, quick);
    let offers = 0;
    let rePosts = 0;
    // The first offer and the first restart re-POST die on the way (the edge briefly unreachable).
    const faults =
      (f: FetchFn): FetchFn =>
      async (url, init) => {
        const path = new URL(url).pathname;
        if (init.method === "POST" && /\/peers\/b\/sessions$/.test(path) && ++offers === 1)
          throw new TypeError("fetch failed: connection refused (injected)");
        if (init.method === "POST" && /\/sessions\/[^/]+$/.test(path) && ++rePosts === 1)
          throw new TypeError("fetch failed: connection reset (injected)");
        return f(url, init);
      };
    const a = await agent(room, "a", ["b"], faults, edge.url, undefined, quick);
    await Promise.all([waitFor(a, "link-up"), waitFor(b, "link-up")]);
    const la = a.links().get("b");
    const lb = b.links().get("a");
    if (!la || !lb) throw new Error("no links");
    echo(b);
    const got = await stream(a, "b", 20, 50);
    expect(got).toEqual(expected(20));
    // A handover whose first attempt fails, then a local network change.
    const handover = waitFor(a, "handover");
    void a.restart("b");
    await handover;
    la.networkChanged();
    await waitFor(a, "handover");
    // b hangs up: a is told the session closed, and offers a new one.
    const session = lb.session;
    if (!session) throw new Error("b has no session");
    await b.client.closeSession(room, session);
    await until(
      () => la.health.inputs().onSessionClosed !== undefined && a.stats()[0]?.state === "up",
    );
    // The keepalive: a's consent check answered, b's side sees it arrive.
    await until(
      () => (la.health.inputs().onKeepalive ?? 0) + (lb.health.inputs().onKeepalive ?? 0) > 0,
    );
    await a.stop();
    // a's stop closed its PeerConnection: b hears the SCTP ABORT (the peer closed).
    await until(() => (lb.health.inputs().onPeerClosed ?? 0) > 0);
    // Every input of the policy (its on* methods and requestRestart), fed on one side or the other.
    const events = Object.getOwnPropertyNames(Object.getPrototypeOf(la.health)).filter(
      (n) => /^on[A-Z]/.test(n) || n === "requestRestart",
    );
    expect(events.length).toBeGreaterThanOrEqual(19);
    const fed = (n: string) => (la.health.inputs()[n] ?? 0) + (lb.health.inputs()[n] ?? 0);
    // The backup-path inputs need a second uplink, which this machine lacks: the adapter that
    // feeds them in production (rover/backup-paths.ts) is tested with two loopback "uplinks" in
    // test/rover/backup-paths.test.ts. onUplinks is fed here too (every link that comes up).
    const elsewhere = ["onBackup", "onPeerMoved", "onSwitched"];
    expect(events.filter((n) => fed(n) === 0 && !elsewhere.includes(n))).toEqual([]);
    expect(fed("onUplinks")).toBeGreaterThan(0);
    // The failures took the policy's paths, not fixed waits in the link.
    expect(la.health.inputs()).toMatchObject({ onOfferFailed: 1, onRestartFailed: 1 });
    expect(lb.health.inputs().onRemoteRestart).toBeGreaterThan(0);
  });
});

describe("backpressure on control", () => {
  it("sendAsync waits for the link to drain: 3000 x 1 KiB arrive once, in order", async () => {
    const room = `int-${++roomN}`;
    const b = await agent(room, "b");
    const a = await agent(room, "a", ["b"]);
    await Promise.all([waitFor(a, "link-up"), waitFor(b, "link-up")]);
    const got: string[] = [];
    b.on("message", (m: AgentMessage) => {
      if (m.channel === "control") got.push(String(m.data).slice(0, 8));
    });
    let drains = 0;
    a.on("drain", () => drains++);
    const pad = "x".repeat(1024);
    const ids = Array.from({ length: 3000 }, (_, i) => `m${String(i).padStart(7, "0")}`);
    for (const id of ids) await a.sendAsync("b", "control", `${id}${pad}`);
    await until(() => got.length >= ids.length, 60_000);
    expect(got).toEqual(ids.map((id) => id.slice(0, 8)));
    // The premise: werift filled up and the sender had to wait at least once.
    expect(drains).toBeGreaterThan(0);
  });
});
