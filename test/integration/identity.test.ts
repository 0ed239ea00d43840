/**
 * End-to-end identity (docs/rover.md "Identity"): rover agents with persistent certificates and
 * trust files, real werift on loopback, through a real local edge — and through a rogue edge (an
 * HTTP proxy in front of it that swaps every `a=fingerprint` for an attacker's). A swapped
 * fingerprint is refused, whichever side offers; the right ones link; a restarted rover keeps
 * its fingerprint, so the pins it was given still hold.
 */

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent } from "../../rover/agent.ts";
import { loadOrCreateIdentity, openPeerIdentity } from "../../rover/identity.ts";
import { type LocalEdge, startLocalEdge } from "../../rover/local-edge.ts";
import { AgentMetrics } from "../../rover/metrics.ts";
import { ProblemError } from "../../shared/errors.ts";
import { mintToken } from "../../shared/token.ts";
import { nextEvent, waitFor } from "./agents.ts";

const SECRET = "identity-secret-identity-secret-identity";
let edge: LocalEdge;
const agents: Agent[] = [];
const servers: Server[] = [];
const dir = mkdtempSync(join(tmpdir(), "rl-identity-int-"));

beforeAll(async () => {
  edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET } });
});

afterAll(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  await edge?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A rogue edge: forwards everything to the real one, and, when `swapTo` is set, replaces every
 * sha-256 fingerprint in what it returns (answers, offer and answer events) with `swapTo`.
 */
async function rogueEdge(swapTo: string | null): Promise<{ url: string; swapped: () => number }> {
  let swapped = 0;
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers))
      if (typeof v === "string" && !["host", "connection", "content-length"].includes(k))
        headers.set(k, v);
    try {
      const up = await fetch(new URL(req.url ?? "/", edge.url), {
        method: req.method ?? "GET",
        headers,
        ...(chunks.length ? { body: Buffer.concat(chunks) } : {}),
      });
      let body = await up.text();
      if (swapTo)
        body = body.replace(/a=fingerprint:sha-256 [0-9A-Fa-f:]+/g, () => {
          swapped++;
          return `a=fingerprint:sha-256 ${swapTo}`;
        });
      const out: Record<string, string> = {};
      up.headers.forEach((v, k) => {
        if (!["content-length", "content-encoding", "transfer-encoding"].includes(k)) out[k] = v;
      });
      res.writeHead(up.status, out).end(body);
    } catch {
      res.writeHead(502).end();
    }
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    swapped: () => swapped,
  };
}

interface Rover {
  agent: Agent;
  logs: { msg: string; reason?: string; peer?: string; session?: string; err?: string }[];
  metrics: AgentMetrics;
}

async function rover(
  room: string,
  id: string,
  o: {
    edge?: string;
    trust?: string;
    connect?: string[];
    identityFile?: string;
    token?: string;
  } = {},
): Promise<Rover> {
  const logs: Rover["logs"] = [];
  const logger = pino(
    { level: "info" },
    { write: (line: string) => logs.push(JSON.parse(line) as Rover["logs"][number]) },
  );
  const { identity } = await openPeerIdentity({
    id,
    identityFile: o.identityFile ?? join(dir, `${id}.pem`),
    ...(o.trust ? { trustFile: o.trust } : {}),
  });
  const agent = new Agent({
    // The rogue edge reads each answer whole to rewrite it, which an event stream never ends:
    // long-polls through it (the agent would fall back to them, but only after a lost stream).
    events: "poll",
    edge: o.edge ?? edge.url,
    room,
    id,
    token: o.token ?? (await mintToken({ secret: SECRET, sub: id, room, ttlSeconds: 600 })),
    connect: o.connect ?? [],
    watchNetwork: false,
    logger,
    identity,
  });
  const metrics = new AgentMetrics(agent);
  agents.push(agent);
  await agent.start();
  return { agent, logs, metrics };
}

async function refusedCount(r: Rover, peer: string): Promise<number> {
  const m = await r.metrics.linksRefused.get();
  return m.values.find((v) => v.labels.peer === peer)?.value ?? 0;
}

/** A trust file pinning each id to the fingerprint of its identity file in `dir`. */
async function trustFile(name: string, ids: string[]): Promise<string> {
  const lines = await Promise.all(
    ids.map(
      async (id) =>
        `${id} sha-256 ${(await loadOrCreateIdentity(join(dir, `${id}.pem`))).fingerprint}`,
    ),
  );
  const file = join(dir, name);
  writeFileSync(file, `${lines.join("\n")}\n`, { mode: 0o644 });
  return file;
}

let roomN = 0;

describe("end-to-end identity through a local edge", () => {
  it("links when every fingerprint is the pinned one, even through the proxy", async () => {
    const room = `id-${++roomN}`;
    const trust = await trustFile("trust-ok", ["ok-a", "ok-b"]);
    const honest = await rogueEdge(null);
    const b = await rover(room, "ok-b", { trust, edge: honest.url });
    const a = await rover(room, "ok-a", { trust, connect: ["ok-b"] });
    await Promise.all([waitFor(a.agent, "link-up"), waitFor(b.agent, "link-up")]);
    const got = new Promise((r) => b.agent.once("message", r));
    a.agent.send("ok-b", "control", "hello");
    expect(await got).toMatchObject({ peer: "ok-a", channel: "control", data: "hello" });
    expect(await refusedCount(a, "ok-b")).toBe(0);
    expect(await refusedCount(b, "ok-a")).toBe(0);
  });

  it("refuses an offer whose fingerprint the edge swapped: not applied, logged, counted, session closed", async () => {
    const room = `id-${++roomN}`;
    const trust = await trustFile("trust-swap-1", ["sw1-a", "sw1-b"]);
    const attacker = await loadOrCreateIdentity(join(dir, "attacker.pem"));
    const rogue = await rogueEdge(attacker.fingerprint);
    const b = await rover(room, "sw1-b", { trust, edge: rogue.url });
    const refused = nextEvent(b.agent, "link-refused");
    let upAtB = false;
    b.agent.on("link-up", () => {
      upAtB = true;
    });
    const a = await rover(room, "sw1-a", { trust, connect: ["sw1-b"] });
    const [peer, reason] = await refused;
    expect(peer).toBe("sw1-a");
    expect(reason).toBe(`fingerprint sha-256 ${attacker.fingerprint} is not the pinned one`);
    expect(rogue.swapped()).toBeGreaterThan(0);
    const lines = b.logs.filter((l) => l.msg === "link refused: untrusted DTLS fingerprint");
    expect(lines[0]).toMatchObject({ peer: "sw1-a", reason });
    expect(await refusedCount(b, "sw1-a")).toBeGreaterThanOrEqual(1);
    // The refused session is gone at the edge, and b keeps no link to a.
    const session = lines[0]?.session;
    expect(session).toBeTruthy();
    const gone = await a.agent.client.getSession(room, session ?? "").catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(ProblemError);
    expect((gone as ProblemError).status).toBe(404);
    expect(upAtB).toBe(false);
    expect(b.agent.links().get("sw1-a")?.up ?? false).toBe(false);
  });

  it("refuses an answer whose fingerprint the edge swapped (the rover behind it offers)", async () => {
    const room = `id-${++roomN}`;
    const trust = await trustFile("trust-swap-2", ["sw2-a", "sw2-b"]);
    const attacker = await loadOrCreateIdentity(join(dir, "attacker.pem"));
    const rogue = await rogueEdge(attacker.fingerprint);
    const a = await rover(room, "sw2-a", { trust });
    const b = await rover(room, "sw2-b", { trust, edge: rogue.url, connect: ["sw2-a"] });
    const [peer, reason] = await nextEvent(b.agent, "link-refused");
    expect(peer).toBe("sw2-a");
    expect(reason).toMatch(/is not the pinned one/);
    expect(b.logs.some((l) => l.msg === "link refused: untrusted DTLS fingerprint")).toBe(true);
    expect(await refusedCount(b, "sw2-a")).toBeGreaterThanOrEqual(1);
    expect(b.agent.links().has("sw2-a")).toBe(false);
    expect(a.agent.links().get("sw2-b")?.up ?? false).toBe(false);
  });

  it("refuses an impostor: a peer with a victim's id (a token for it) and its own certificate", async () => {
    const room = `id-${++roomN}`;
    const trust = await trustFile("trust-impostor", ["imp-a", "imp-victim"]);
    const a = await rover(room, "imp-a", { trust });
    const refused = nextEvent(a.agent, "link-refused");
    // Whoever holds ROVERLINK_SECRET or an admin token can act as "imp-victim" at the edge.
    await rover(room, "imp-victim", {
      identityFile: join(dir, "impostor.pem"),
      connect: ["imp-a"],
    });
    const [peer, reason] = await refused;
    expect(peer).toBe("imp-victim");
    expect(reason).toMatch(/is not the pinned one/);
    expect(a.agent.links().has("imp-victim")).toBe(false);
  });

  it("keeps the certificate across restarts: the pins given once still hold", async () => {
    const room = `id-${++roomN}`;
    const file = join(dir, "persist-b.pem");
    rmSync(file, { force: true });
    const first = await openPeerIdentity({ id: "persist-b", identityFile: file });
    expect(first.created).toBe(true);
    const trust = join(dir, "trust-persist");
    writeFileSync(
      trust,
      `persist-b sha-256 ${first.fingerprint}\npersist-a sha-256 ${(await loadOrCreateIdentity(join(dir, "persist-a.pem"))).fingerprint}\n`,
      { mode: 0o644 },
    );
    const a = await rover(room, "persist-a", { trust });
    const b1 = await rover(room, "persist-b", { identityFile: file, connect: ["persist-a"] });
    await waitFor(a.agent, "link-up");
    await b1.agent.stop();
    const again = await openPeerIdentity({ id: "persist-b", identityFile: file });
    expect(again.created).toBe(false);
    expect(again.fingerprint).toBe(first.fingerprint);
    const up = waitFor(a.agent, "link-up", undefined, 30_000);
    await rover(room, "persist-b", { identityFile: file, connect: ["persist-a"] });
    await up;
    expect(await refusedCount(a, "persist-b")).toBe(0);
  });

  it("a token bound (cnf) to a rover's certificate links from it, and is refused by the edge elsewhere", async () => {
    const room = `id-${++roomN}`;
    const own = await loadOrCreateIdentity(join(dir, "cnf-a.pem"));
    const token = await mintToken({
      secret: SECRET,
      sub: "cnf-a",
      room,
      ttlSeconds: 600,
      cnf: own.fingerprint,
    });
    const b = await rover(room, "cnf-b");
    const a = await rover(room, "cnf-a", { token, connect: ["cnf-b"] });
    await Promise.all([waitFor(a.agent, "link-up"), waitFor(b.agent, "link-up")]);
    await a.agent.stop();
    // The same token on another machine (another certificate): the edge refuses its offers.
    const thief = await rover(room, "cnf-a", {
      token,
      identityFile: join(dir, "cnf-thief.pem"),
      connect: ["cnf-b"],
    });
    const end = Date.now() + 20_000;
    const refusedByEdge = () =>
      thief.logs.find(
        (l) => l.msg === "link step failed" && /bound to another certificate/.test(l.err ?? ""),
      );
    while (!refusedByEdge() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    expect(refusedByEdge()?.err).toMatch(/403.*this token is bound to another certificate \(cnf\)/);
    expect(b.agent.links().get("cnf-a")?.up ?? false).toBe(false);
  });
});
