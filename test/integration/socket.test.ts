/**
 * The local message socket (rover/socket.ts) on real agents through a local edge, werift on
 * loopback: the docs' Python client (docs/examples/roverlink_client.py, run by python3, which CI
 * installs: no python3 fails this file, it is never skipped) sends and receives on `control`
 * exactly once across a forced ICE restart; and the socket's own promises, from Node: 0600 in a
 * 0700 directory, a stale socket replaced and a live one refused, errors as frames, a full outbox
 * answered with an error, not lost.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent } from "../../rover/agent.ts";
import { type LocalEdge, REPO_ROOT, startLocalEdge } from "../../rover/local-edge.ts";
import { MessageSocket, MessageSocketError } from "../../rover/socket.ts";
import { mintToken } from "../../shared/token.ts";

const SECRET = "socket-secret-socket-secret-socket-secret";
const CLIENT = join(REPO_ROOT, "docs/examples/roverlink_client.py");
const DRIVER = join(REPO_ROOT, "test/integration/socket_driver.py");
let edge: LocalEdge;
const dir = mkdtempSync(join(tmpdir(), "rl-socket-"));
const cleanup: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET } });
});

afterAll(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
  await edge?.stop();
  rmSync(dir, { recursive: true, force: true });
});

let roomN = 0;

async function agentWithSocket(
  room: string,
  id: string,
  o: { connect?: string[]; outboxLimits?: { messages?: number } } = {},
): Promise<{ agent: Agent; path: string; sock: MessageSocket }> {
  const log = pino({ level: "silent" });
  const agent = new Agent({
    edge: edge.url,
    room,
    id,
    token: await mintToken({ secret: SECRET, sub: id, room, ttlSeconds: 600 }),
    connect: o.connect ?? [],
    watchNetwork: false,
    logger: log,
    stateDir: join(dir, `state-${room}-${id}`),
    ...(o.outboxLimits ? { outboxLimits: o.outboxLimits } : {}),
  });
  const path = join(dir, "run", room, `${id}.sock`);
  const sock = new MessageSocket({ agent, path, log, defaultPath: true });
  await sock.start();
  cleanup.push(() => agent.stop());
  cleanup.push(() => sock.stop());
  await agent.start();
  return { agent, path, sock };
}

async function linkedPair(o: { outboxLimits?: { messages?: number } } = {}) {
  const room = `sock-${++roomN}`;
  const b = await agentWithSocket(room, "b");
  const a = await agentWithSocket(room, "a", { connect: ["b"], ...o });
  await until(() => a.agent.stats()[0]?.state === "up" && b.agent.stats()[0]?.state === "up");
  return { a, b, room };
}

async function until(cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Start python3; a missing python3 rejects (CI installs Debian's: a failure, never a skip). */
function python(args: string[]): { child: ChildProcess; lines: string[]; exited: Promise<number> } {
  const child = spawn("python3", args, { stdio: ["ignore", "pipe", "pipe"] });
  cleanup.push(() => void child.kill());
  const lines: string[] = [];
  let err = "";
  let buf = "";
  child.stdout?.on("data", (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split("\n");
    buf = parts.pop() ?? "";
    lines.push(...parts.filter(Boolean));
  });
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number>((resolve, reject) => {
    child.once("error", (e) =>
      reject(new Error(`python3 could not run (${e.message}): CI installs it (.ci/run)`)),
    );
    child.once("exit", (code) =>
      code === 0 ? resolve(0) : reject(new Error(`python3 ${args[0]} exited ${code}: ${err}`)),
    );
  });
  exited.catch(() => {}); // a child this file kills at the end; tests that wait on it still see why
  return { child, lines, exited };
}

/** A raw client: write lines, read frames. */
async function raw(path: string): Promise<{ s: Socket; frames: Record<string, unknown>[] }> {
  const s = connect(path);
  await new Promise<void>((r, j) => {
    s.once("connect", r);
    s.once("error", j);
  });
  cleanup.push(() => void s.destroy());
  const frames: Record<string, unknown>[] = [];
  let buf = "";
  s.on("data", (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split("\n");
    buf = parts.pop() ?? "";
    for (const p of parts) frames.push(JSON.parse(p) as Record<string, unknown>);
  });
  return { s, frames };
}

describe("the message socket", () => {
  it("the Python client sends and receives on control exactly once across a forced ICE restart", async () => {
    const { a, b } = await linkedPair();
    // b's program: the docs' client in echo mode (every control message goes back to its sender).
    const echo = python([CLIENT, "--socket", b.path, "echo"]);
    await until(() => echo.lines.length > 0); // its hello line: attached
    expect(JSON.parse(echo.lines[0] ?? "{}")).toMatchObject({ t: "hello", v: 1, self: "b" });
    const count = 600;
    const driver = python([DRIVER, a.path, "b", String(count), "150"]);
    // Mid-stream: once a sixth of the messages came back, a forced ICE restart.
    await until(() => driver.lines.some((l) => l === '{"received": 100}'), 60_000);
    // The forced restart's handover (a loaded machine may also switch paths on silence first).
    const handover = new Promise<{ kind: string }>((r) => {
      const on = (h: { kind: string }) => {
        if (h.kind !== "restart") return;
        a.agent.off("handover", on);
        r(h);
      };
      a.agent.on("handover", on);
    });
    await a.agent.restart("b");
    expect((await handover).kind).toBe("restart");
    await driver.exited;
    const r = JSON.parse(driver.lines.at(-1) ?? "{}") as {
      sent: number;
      oks: number;
      received: number;
      duplicated: number;
      reordered: number;
      corrupted: number;
      okDuplicated: number;
      errors: unknown[];
      handovers: { kind: string; receivedBefore: number }[];
      rttFrames: number;
    };
    console.info(
      `socket: ${r.received}/${r.sent} echoed via two Python clients, ${r.duplicated} duplicated, ${r.reordered} reordered, handover after ${r.handovers[0]?.receivedBefore} received`,
    );
    expect(r).toMatchObject({
      sent: count,
      oks: count,
      received: count,
      duplicated: 0,
      reordered: 0,
      corrupted: 0,
      okDuplicated: 0,
      errors: [],
    });
    // The premise: the restart came while messages were still flowing, and the client heard of it.
    // (A loaded machine can add another handover, a switch on silence: what matters is that the
    // clients heard of the restart mid-stream and lost nothing.)
    const restart = r.handovers.find((h) => h.kind === "restart");
    expect(restart, JSON.stringify(r.handovers)).toBeDefined();
    expect(restart?.receivedBefore).toBeGreaterThan(0);
    expect(restart?.receivedBefore).toBeLessThan(count);
    expect(r.rttFrames).toBeGreaterThan(0);
  });

  it("only the local user: the socket is 0600 in a 0700 directory", async () => {
    const { a } = await linkedPair();
    expect(statSync(a.path).mode & 0o777).toBe(0o600);
    expect(statSync(join(a.path, "..")).mode & 0o777).toBe(0o700);
  });

  it("a stale socket file is replaced; a live socket, another file or a long path is refused", async () => {
    const agent = new Agent({ edge: edge.url, room: "x", id: "x", token: "t" });
    const log = pino({ level: "silent" });
    const d = join(dir, "stale");
    mkdirSync(d, { recursive: true });
    // A socket file nobody listens on (its agent died): bound, never listened, left behind.
    const stale = join(d, "stale.sock");
    await python([
      "-c",
      "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])",
      stale,
    ]).exited;
    expect(statSync(stale).isSocket()).toBe(true);
    writeFileSync(join(d, "file.sock"), "");
    const s1 = new MessageSocket({ agent, path: stale, log });
    await s1.start();
    // Now live: a second agent on the same path is refused.
    await expect(new MessageSocket({ agent, path: stale, log }).start()).rejects.toThrow(
      /another agent is listening there/,
    );
    await s1.stop();
    await expect(
      new MessageSocket({ agent, path: join(d, "file.sock"), log }).start(),
    ).rejects.toThrow(/exists and is not a socket/);
    await expect(
      new MessageSocket({ agent, path: join(d, "x".repeat(120)), log }).start(),
    ).rejects.toThrow(MessageSocketError);
  });

  it("errors are frames: hello first, bad frames, unknown peers, too big; large control messages go whole; an unknown version closes", async () => {
    const { a, b } = await linkedPair();
    const c = await raw(a.path);
    c.s.write('{"t":"send","peer":"b","channel":"control","text":"x","id":1}\n');
    c.s.write('{"t":"hello","v":1,"name":"t"}\n');
    c.s.write("not json\n");
    c.s.write('{"t":"send","peer":"b","channel":"video","text":"x","id":2}\n');
    c.s.write('{"t":"send","peer":"nobody","channel":"telemetry","text":"x","id":3}\n');
    c.s.write('{"t":"send","peer":"nobody","channel":"control","text":"x","id":4}\n');
    c.s.write('{"t":"send","peer":"b","channel":"telemetry","data":"AAEC","id":5}\n');
    const tooBig = Buffer.alloc(1024 * 1024 + 1).toString("base64"); // over 1 MiB
    c.s.write(`{"t":"send","peer":"b","channel":"control","data":"${tooBig}","id":6}\n`);
    c.s.write(
      `{"t":"send","peer":"b","channel":"telemetry","text":"${"t".repeat(64_001)}","id":7}\n`,
    );
    // Over one data-channel message, under 1 MiB: control fragments it; it arrives whole.
    const b0 = await raw(b.path);
    b0.s.write('{"t":"hello","v":1}\n');
    const large = Buffer.alloc(300 * 1024, 7);
    large[0] = 1;
    const data = large.toString("base64");
    c.s.write(`{"t":"send","peer":"b","channel":"control","data":"${data}","id":8}\n`);
    await until(() => c.frames.length >= 10);
    expect(c.frames.map((f) => [f.t, f.code ?? null, f.id ?? null])).toEqual([
      ["error", "hello-first", 1],
      ["hello", null, null],
      ["error", "bad-frame", null],
      ["error", "bad-frame", 2],
      ["error", "no-link", 3],
      ["error", "no-link", 4],
      ["ok", null, 5],
      ["error", "too-big", 6],
      ["error", "too-big", 7],
      ["ok", null, 8],
    ]);
    expect(c.frames[8]?.message).toBe(
      "not sent: 64001 bytes, at most 64000 on telemetry (split it)",
    );
    await until(() => b0.frames.some((f) => f.t === "message"));
    expect(b0.frames.find((f) => f.t === "message")).toMatchObject({
      peer: "a",
      channel: "control",
      data,
    });
    expect(c.frames[1]).toMatchObject({ self: "a", links: [{ peer: "b", state: "up" }] });
    const v2 = await raw(a.path);
    const closed = new Promise<void>((r) => v2.s.once("close", () => r()));
    v2.s.write('{"t":"hello","v":2}\n');
    await closed;
    expect(v2.frames).toMatchObject([{ t: "error", code: "version" }]);
  });

  it("a local program publishes the rover's position (the docs' Python client): the peers see it, the id is answered", async () => {
    const { a, b } = await linkedPair();
    const seen = new Promise<unknown>((r) =>
      b.agent.on("peer-updated", (p) => {
        if (p.id === "a" && p.position?.x === 12.5) r(p.position);
      }),
    );
    const py = python([
      "-c",
      [
        "import json, sys",
        `sys.path.insert(0, ${JSON.stringify(dirname(CLIENT))})`,
        "from roverlink_client import Client",
        `c = Client(${JSON.stringify(a.path)}, name="nav")`,
        "try:",
        '    c.position(float("nan"), 0, id="p0")',
        "except ValueError:",
        '    print(json.dumps("nan refused"))',
        'c.position(12.5, 40, map="yard", id="p1")',
        // Its answer, past the rtt and link frames every client gets meanwhile (the ok comes
        // once the edge took the position, up to a second later: an rtt frame came first once).
        "f = c.recv()",
        'while f.get("t") in ("rtt", "link"):',
        "    f = c.recv()",
        "print(json.dumps(f))",
      ].join("\n"),
    ]);
    await py.exited;
    // A NaN is refused in Python (it is not JSON: the agent could not have answered its id).
    expect(py.lines.map((l) => JSON.parse(l))).toEqual(["nan refused", { t: "ok", id: "p1" }]);
    expect(await seen).toEqual({ x: 12.5, y: 40, map: "yard" });
    // Half a position is refused as a frame, with its id.
    const c = await raw(a.path);
    c.s.write('{"t":"hello","v":1}\n{"t":"position","x":12.5,"id":"p2"}\n');
    await until(() => c.frames.length >= 2);
    expect(c.frames[1]).toMatchObject({ t: "error", code: "bad-frame", id: "p2" });
  });

  it("control messages that come while no client is attached go to the next one; a line too long closes", async () => {
    const { a, b } = await linkedPair();
    for (let i = 0; i < 5; i++) b.agent.send("a", "control", `held ${i}`);
    b.agent.send("a", "telemetry", "not held");
    await new Promise((r) => setTimeout(r, 1000)); // delivered to a's agent meanwhile
    const c = await raw(a.path);
    c.s.write('{"t":"hello","v":1}\n');
    await until(() => c.frames.filter((f) => f.t === "message").length === 5);
    await new Promise((r) => setTimeout(r, 300));
    expect(c.frames.filter((f) => f.t === "message").map((f) => f.text)).toEqual(
      Array.from({ length: 5 }, (_, i) => `held ${i}`),
    );
    const closed = new Promise<void>((r) => c.s.once("close", () => r()));
    c.s.write("x".repeat(1_600_000));
    await closed;
    expect(c.frames.at(-1)).toMatchObject({ t: "error", code: "too-long" });
  });

  it("held messages outlive the agent: acknowledged to the sender once on disk, given to a client after a restart", async () => {
    const { a, b, room } = await linkedPair();
    for (let i = 0; i < 5; i++) b.agent.send("a", "control", `kept ${i}`);
    b.agent.send("a", "control", new Uint8Array([1, 2, 3]));
    // The sender forgot them: a acknowledged them (held, no client attached).
    await until(() => b.agent.outboxStats().every((s) => s.messages === 0));
    expect(b.agent.outboxStats().find((s) => s.peer === "a")).toBeDefined();
    await a.sock.stop();
    await a.agent.stop();
    // The same rover again (its state dir), and a client: it gets what the last process held.
    const again = await agentWithSocket(room, "a", { connect: ["b"] });
    const c = await raw(again.path);
    c.s.write('{"t":"hello","v":1}\n');
    await until(() => c.frames.filter((f) => f.t === "message").length === 6);
    await new Promise((r) => setTimeout(r, 300));
    const got = c.frames.filter((f) => f.t === "message");
    expect(got.slice(0, 5).map((f) => f.text)).toEqual(
      Array.from({ length: 5 }, (_, i) => `kept ${i}`),
    );
    expect(got[5]).toMatchObject({ peer: "b", channel: "control", data: "AQID" });
    // Given once: a second client gets none of them again.
    const d = await raw(again.path);
    d.s.write('{"t":"hello","v":1}\n');
    await new Promise((r) => setTimeout(r, 500));
    expect(d.frames.filter((f) => f.t === "message")).toEqual([]);
  });

  it("backpressure: a client writing faster than the link carries is not read from until it drains, and nothing is lost", async () => {
    const { a, b } = await linkedPair();
    const got: Buffer[] = [];
    b.agent.on("message", (m: { channel: string; data: unknown }) => {
      if (m.channel === "control") got.push(Buffer.from(m.data as Uint8Array));
    });
    const c = await raw(a.path);
    c.s.write('{"t":"hello","v":1}\n');
    // 300 × 32 KiB (9.4 MiB) at once: far past the 1 MiB werift may hold for a peer.
    const sent = Array.from({ length: 300 }, (_, i) => Buffer.alloc(32 * 1024, i));
    for (const [i, d] of sent.entries())
      c.s.write(
        `{"t":"send","peer":"b","channel":"control","data":"${d.toString("base64")}","id":${i}}\n`,
      );
    await until(() => got.length === sent.length, 60_000);
    expect(Buffer.concat(got).equals(Buffer.concat(sent))).toBe(true);
    await until(() => c.frames.filter((f) => f.t === "ok").length === sent.length);
    expect(c.frames.filter((f) => f.t === "error")).toEqual([]);
    // The premise: the socket was held back at least once.
    expect(a.sock.drainWaits).toBeGreaterThan(0);
  });

  it("a full outbox answers each message it cannot take with an error frame, never drops one silently", async () => {
    const { a, b } = await linkedPair({ outboxLimits: { messages: 20 } });
    const got: string[] = [];
    b.agent.on("message", (m: { channel: string; data: unknown }) => {
      if (m.channel === "control") got.push(String(m.data));
    });
    const c = await raw(a.path);
    c.s.write('{"t":"hello","v":1}\n');
    // 200 in one write: read in one turn, faster than any acknowledgement comes back.
    c.s.write(
      Array.from(
        { length: 200 },
        (_, i) => `{"t":"send","peer":"b","channel":"control","text":"m${i}","id":${i}}\n`,
      ).join(""),
    );
    await until(() => c.frames.filter((f) => f.t === "ok" || f.t === "error").length === 200);
    const oks = c.frames.filter((f) => f.t === "ok").map((f) => f.id as number);
    const full = c.frames.filter((f) => f.t === "error");
    expect(full.length).toBeGreaterThan(0);
    expect(full.every((f) => f.code === "outbox-full")).toBe(true);
    // Exactly what was acknowledged arrives, once each, in order.
    await until(() => got.length === oks.length);
    await new Promise((r) => setTimeout(r, 500));
    expect(got).toEqual(oks.map((i) => `m${i}`));
  });
});
