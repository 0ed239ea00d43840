/**
 * Large messages and files between two rover agents through a real local edge (workerd via
 * wrangler dev) and real werift on loopback UDP: a 16 MiB control message across an ICE restart,
 * files of tens of MiB across an ICE restart (the transfer goes on) and a rebuild (it resumes from
 * the receiver's offset), and a hostile sender's offers and bytes refused.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RTCDataChannel } from "werift";
import type { Agent, AgentMessage } from "../../rover/agent.ts";
import { FileReceiver, type ReceivedFile, sendFile } from "../../rover/file-transfer.ts";
import { type LocalEdge, startLocalEdge } from "../../rover/local-edge.ts";
import { testAgent } from "./agents.ts";

const SECRET = "integration-secret-integration-secret";
const MiB = 1024 * 1024;
let edge: LocalEdge;
const agents: Agent[] = [];
const receivers: FileReceiver[] = [];
const quiet = { info() {}, warn() {} };

beforeAll(async () => {
  edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET } });
});

afterAll(async () => {
  for (const r of receivers) r.stop();
  await Promise.all(agents.splice(0).map((a) => a.stop()));
  await edge?.stop();
});

let roomN = 0;
async function agent(room: string, id: string, connect: string[] = []): Promise<Agent> {
  const a = await testAgent(SECRET, { edge: edge.url, room, id, connect });
  agents.push(a);
  await a.start();
  return a;
}

function waitFor<T>(
  emitter: NodeJS.EventEmitter,
  event: string,
  pred: (...a: unknown[]) => boolean = () => true,
  ms = 60_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for ${event}`)), ms);
    const on = (...args: unknown[]) => {
      if (!pred(...args)) return;
      clearTimeout(t);
      emitter.off(event, on);
      resolve(args[0] as T);
    };
    emitter.on(event, on);
  });
}

async function pair(): Promise<{
  a: Agent;
  b: Agent;
  room: string;
  dir: string;
  rx: FileReceiver;
}> {
  const room = `files-${++roomN}`;
  const b = await agent(room, "b");
  const a = await agent(room, "a", ["b"]);
  await waitFor(a, "link-up");
  const dir = mkdtempSync(join(tmpdir(), "rl-receive-"));
  const rx = new FileReceiver({ agent: b, dir, log: quiet });
  rx.start();
  receivers.push(rx);
  return { a, b, room, dir, rx };
}

/** A file channel to b driven by hand, and b's answers on it. */
async function rawFileChannel(a: Agent, label: string) {
  const dc = a.openChannel("b", label, { ordered: true });
  const got: string[] = [];
  dc.onMessage.subscribe((m) => got.push(String(m)));
  await new Promise<void>((r) => {
    if (dc.readyState === "open") r();
    else dc.stateChanged.subscribe((s) => s === "open" && r());
  });
  return {
    dc,
    /** b's answers so far. */
    got,
    /** b's `i`th answer on this channel, once it came (rejects after 20 s). */
    async answer(i: number): Promise<string> {
      const end = Date.now() + 20_000;
      while (got[i] === undefined && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      if (got[i] === undefined) throw new Error(`no answer ${i} on ${label}`);
      return got[i];
    },
  };
}

function randomFile(bytes: number): { path: string; data: Buffer } {
  const data = randomBytes(bytes);
  const path = join(mkdtempSync(join(tmpdir(), "rl-send-")), "map.bin");
  writeFileSync(path, data);
  return { path, data };
}

describe("large messages on control", () => {
  it("a 16 MiB message arrives whole and once, in order with small ones, across an ICE restart", async () => {
    const { a, b } = await pair();
    const got: (string | number)[] = [];
    let big: Uint8Array | null = null;
    b.on("message", (m: AgentMessage) => {
      if (m.channel !== "control") return;
      if (typeof m.data === "string") got.push(m.data);
      else {
        got.push(m.data.byteLength);
        big = m.data;
      }
    });
    const msg = randomBytes(16 * MiB);
    a.send("b", "control", "before");
    // Flow control: the link takes it but asks the caller to wait (werift never gets 16 MiB at once).
    expect(a.send("b", "control", msg)).toBe(false);
    const link = a.links().get("b");
    expect(link?.sender.backlog().messages).toBeGreaterThan(300);
    a.send("b", "control", "after");
    // The forced restart's handover (a loaded machine may also switch paths on silence first).
    const restarted = waitFor<{ kind: string }>(
      a,
      "handover",
      (h) => (h as { kind: string }).kind === "restart",
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(got.length).toBeLessThan(2); // the large message is still on its way
    void a.restart("b");
    expect((await restarted).kind).toBe("restart");
    const end = Date.now() + 120_000;
    while (got.length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    expect(got).toEqual(["before", 16 * MiB, "after"]);
    expect(Buffer.from(big as unknown as Uint8Array).equals(msg)).toBe(true);
  }, 180_000);

  it("a 16 MiB message survives a rebuild of the PeerConnection mid-way: whole, once, in order", async () => {
    const { a, b, room } = await pair();
    const got: (string | number)[] = [];
    let big: Uint8Array | null = null;
    b.on("message", (m: AgentMessage) => {
      if (m.channel !== "control") return;
      if (typeof m.data === "string") got.push(m.data);
      else {
        got.push(m.data.byteLength);
        big = m.data;
      }
    });
    const msg = randomBytes(16 * MiB);
    a.send("b", "control", "before");
    a.send("b", "control", msg);
    a.send("b", "control", "after");
    // Rebuild once part of it is in: the receiver holds fragments, none acknowledged yet.
    const link = b.links().get("a");
    const end0 = Date.now() + 60_000;
    while ((link?.receiver.reassembling() ?? 0) < 2 * MiB && Date.now() < end0)
      await new Promise((r) => setTimeout(r, 20));
    expect(link?.receiver.reassembling()).toBeGreaterThan(0);
    const rebuilt = waitFor(a, "handover", (h) => (h as { kind: string }).kind === "rebuild");
    const session = a.links().get("b")?.session;
    if (session) await b.client.closeSession(room, session);
    await rebuilt;
    const end = Date.now() + 120_000;
    while (got.length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    expect(got).toEqual(["before", 16 * MiB, "after"]);
    expect(Buffer.from(big as unknown as Uint8Array).equals(msg)).toBe(true);
  }, 180_000);
});

describe("files", () => {
  it("a 32 MiB file arrives byte-identical across an ICE restart in the middle, without starting over", async () => {
    const { a, dir, rx } = await pair();
    const { path, data } = randomFile(32 * MiB);
    const out = sendFile(a, "b", path);
    let written = 0;
    rx.on("progress", (p: { written: number }) => {
      written = p.written;
    });
    const received = waitFor<ReceivedFile>(rx, "received", () => true, 240_000);
    // Restart once a quarter has arrived.
    await waitFor(rx, "progress", (p) => (p as { written: number }).written > 8 * MiB);
    // The forced restart's handover (a loaded machine may also switch paths on silence first).
    const handover = waitFor<{ kind: string }>(
      a,
      "handover",
      (h) => (h as { kind: string }).kind === "restart",
    );
    void a.restart("b");
    const h = await handover;
    const writtenAtHandover = written;
    expect(h.kind).toBe("restart");
    const sent = await out.done;
    const r = await received;
    // The transfer was mid-way when the restart completed, and went on from there.
    expect(writtenAtHandover).toBeGreaterThan(8 * MiB);
    expect(writtenAtHandover).toBeLessThan(data.length);
    expect(sent.resumedFrom).toEqual([]); // one channel, one accept at 0: never started over
    expect(sent.sentBytes).toBe(data.length); // no byte sent twice
    expect(r.resumedFrom).toEqual([]);
    expect(readFileSync(join(dir, "map.bin")).equals(data)).toBe(true);
    expect(readdirSync(dir)).toEqual(["map.bin"]); // no temp file left
    console.info(
      `file ICE restart: ${writtenAtHandover} of ${data.length} bytes in at the handover`,
    );
  }, 300_000);

  it("a file survives a rebuild of the PeerConnection: resumed from the receiver's offset (> 0), byte-identical", async () => {
    const { a, b, room, dir, rx } = await pair();
    const { path, data } = randomFile(24 * MiB);
    const out = sendFile(a, "b", path);
    const received = waitFor<ReceivedFile>(rx, "received", () => true, 240_000);
    await waitFor(rx, "progress", (p) => (p as { written: number }).written > 6 * MiB);
    const session = a.links().get("b")?.session;
    const rebuilt = waitFor<{ kind: string }>(
      a,
      "handover",
      (h) => (h as { kind: string }).kind === "rebuild",
    );
    if (session) await b.client.closeSession(room, session);
    await rebuilt;
    const sent = await out.done;
    const r = await received;
    expect(sent.resumedFrom.length).toBeGreaterThanOrEqual(1);
    expect(sent.resumedFrom[0]).toBeGreaterThan(6 * MiB);
    expect(r.resumedFrom).toEqual(sent.resumedFrom);
    // Only what was in flight at the rebuild went twice.
    expect(sent.sentBytes - data.length).toBeLessThan(4 * MiB);
    expect(readFileSync(join(dir, "map.bin")).equals(data)).toBe(true);
    console.info(
      `file rebuild: resumed at ${sent.resumedFrom.join(", ")} of ${data.length}; resent ${sent.sentBytes - data.length} bytes`,
    );
  }, 300_000);

  it("a hostile sender: traversal names, oversized declarations, bytes out of turn and past the size are refused", async () => {
    const { a, b, dir, rx } = await pair();
    rx.limits.maxFileBytes = 1 * MiB;
    const violations: string[] = [];
    b.on("violation", (_p: string, kind: string) => violations.push(kind));
    const answers = async (
      label: string,
      steps: (dc: RTCDataChannel) => void,
    ): Promise<string[]> => {
      const { dc, got } = await rawFileChannel(a, label);
      steps(dc);
      await new Promise((r) => setTimeout(r, 700));
      return got;
    };
    const sha = "0".repeat(64);
    const offer = (name: string, size: number) =>
      JSON.stringify({ t: "offer", name, size, sha256: sha });
    for (const name of ["../x", "a/b", "..", ".hidden", "x\u0000y", "c:\\x"]) {
      const got = await answers(`rlfile/t${violations.length}${name.length}`, (dc) =>
        dc.send(offer(name, 10)),
      );
      expect(got[0]).toMatch(/"t":"refuse"/);
    }
    expect((await answers("rlfile/big", (dc) => dc.send(offer("big.bin", 2 * MiB))))[0]).toMatch(
      /larger than the limit of 1048576/,
    );
    expect((await answers("rlfile/early", (dc) => dc.send(Buffer.alloc(10))))[0]).toMatch(
      /bytes before an accepted offer/,
    );
    expect((await answers("rlfile/junk", (dc) => dc.send("{not json")))[0]).toMatch(
      /not valid JSON/,
    );
    const past = await answers("rlfile/past", (dc) => {
      dc.send(offer("past.bin", 4));
      dc.send(Buffer.alloc(8));
    });
    expect(past.join("\n")).toMatch(/bytes past the declared size of 4/);
    expect(readdirSync(dir)).toEqual([]); // nothing written, no temp file left
    expect(violations.filter((v) => v === "bad-transfer").length).toBeGreaterThanOrEqual(3);
  }, 120_000);

  it("a peer that takes no files refuses at once, with the reason", async () => {
    const room = `files-${++roomN}`;
    await agent(room, "b");
    const a = await agent(room, "a", ["b"]);
    await waitFor(a, "link-up");
    const { path } = randomFile(1024);
    await expect(sendFile(a, "b", path).done).rejects.toThrow(
      /b refused the file: this peer takes no files \(no --receive-dir\)/,
    );
  }, 60_000);

  it("a transfer ends when its agent stops, and one to a peer not in the room fails at once", async () => {
    const { a } = await pair();
    const { path } = randomFile(24 * MiB);
    await expect(sendFile(a, "nobody", path).done).rejects.toThrow(/no peer "nobody" in the room/);
    const t = sendFile(a, "b", path);
    await waitFor(t, "progress");
    const stopped = a.stop();
    // Settled by the stop itself, not by the idle timeout (120 s) that kept a process alive.
    await expect(t.done).rejects.toThrow(/the agent stopped \(\d+ of 25165824 bytes delivered\)/);
    await stopped;
  }, 60_000);

  it("a sender that gives up says so: the receiver drops its part and the peer's slot at once", async () => {
    const { a, dir, rx } = await pair();
    const { path } = randomFile(24 * MiB);
    const t = sendFile(a, "b", path);
    await waitFor(rx, "progress");
    const failed = waitFor<{ reason: string }>(rx, "failed");
    t.cancel("cancelled by the test");
    await expect(t.done).rejects.toThrow("cancelled by the test");
    // Not after its 10-minute resume window: now.
    expect((await failed).reason).toBe("the sender gave up: cancelled by the test");
    expect(rx.active("a")).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
  }, 60_000);

  it("partial files an earlier run left (a receiver killed mid-transfer) are removed when it starts", () => {
    const dir = mkdtempSync(join(tmpdir(), "rl-receive-"));
    writeFileSync(join(dir, ".rlpart-send-1-abc"), Buffer.alloc(4096));
    writeFileSync(join(dir, "kept.bin"), "a file of the user's");
    const warned: object[] = [];
    const agentLike = { on() {}, off() {}, openChannel: () => null as unknown as RTCDataChannel };
    const rx = new FileReceiver({
      agent: agentLike,
      dir,
      log: { info() {}, warn: (o: object) => warned.push(o) },
    });
    rx.start();
    rx.stop();
    expect(readdirSync(dir)).toEqual(["kept.bin"]);
    expect(warned).toEqual([{ dir, files: 1, bytes: 4096 }]);
  });

  it("free space counts what transfers under way still need: an offer that fits the disk only if they were done is refused", async () => {
    const { a, dir, rx } = await pair();
    rx.limits.maxFileBytes = Number.MAX_SAFE_INTEGER;
    const fs = statfsSync(dir);
    const free = fs.bavail * fs.bsize;
    // Each alone fits the disk; the two together do not. Nothing is written: declared sizes only.
    const size = Math.floor(free * 0.6);
    const offer = (name: string) =>
      JSON.stringify({ t: "offer", name, size, sha256: "0".repeat(64) });
    const first = await rawFileChannel(a, "rlfile/reserve1");
    first.dc.send(offer("first.bin"));
    expect(await first.answer(0)).toBe('{"t":"accept","offset":0}');
    const second = await rawFileChannel(a, "rlfile/reserve2");
    second.dc.send(offer("second.bin"));
    const answer = await second.answer(0);
    const refused =
      /^\{"t":"refuse","reason":"not enough free space for (\d+) bytes \((\d+) free\)"\}$/.exec(
        answer,
      );
    expect(refused, `the second offer was answered ${answer}`).not.toBeNull();
    expect(Number(refused?.[1])).toBe(size);
    // What it says is free is what the disk has less the first transfer's yet-to-come bytes.
    expect(Number(refused?.[2])).toBeLessThan(free - size + 0.1 * free);
    // Once the first transfer ends, its bytes are free again: the same offer is taken.
    const failed = waitFor<{ reason: string }>(rx, "failed");
    first.dc.send(JSON.stringify({ t: "fail", reason: "the test gives up" }));
    expect((await failed).reason).toBe("the sender gave up: the test gives up");
    const third = await rawFileChannel(a, "rlfile/reserve3");
    third.dc.send(offer("second.bin"));
    expect(await third.answer(0)).toBe('{"t":"accept","offset":0}');
    third.dc.send(JSON.stringify({ t: "fail", reason: "done with it" }));
  }, 60_000);

  it("a sha256 mismatch leaves nothing under the name", async () => {
    const { a, dir } = await pair();
    const dc = a.openChannel("b", "rlfile/badsum", { ordered: true });
    const got: string[] = [];
    dc.onMessage.subscribe((m) => got.push(String(m)));
    await new Promise<void>((r) => dc.stateChanged.subscribe((s) => s === "open" && r()));
    dc.send(JSON.stringify({ t: "offer", name: "x.bin", size: 3, sha256: "f".repeat(64) }));
    dc.send(Buffer.from("abc"));
    await new Promise((r) => setTimeout(r, 700));
    expect(got.join("\n")).toMatch(/sha256 mismatch/);
    expect(readdirSync(dir)).toEqual([]);
  }, 60_000);
});
