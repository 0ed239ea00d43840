/**
 * Flow control on `control` (rover/link-channels.ts with shared/link/outbox.ts): a burst never goes
 * into werift all at once; `send` says when to wait and `drained` when to go on; everything still
 * arrives once, in order; a due acknowledgement rides with a reply. Two real werift
 * PeerConnections on loopback UDP, negotiated in memory.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, expect, it } from "vitest";
import type { RTCDataChannel } from "werift";
import type { LinkChannels } from "../../rover/link-channels.ts";
import { Outbox } from "../../rover/outbox.ts";
import type { Payload } from "../../shared/link/reliable.ts";
import { ReliableSender } from "../../shared/link/reliable.ts";
import { channels, cleanup, linked, until } from "./link-channels-pair.ts";

afterEach(cleanup);

it("sends a due acknowledgement with the reply, not alone when its timer fires", async () => {
  const replies: Payload[] = [];
  let cbRef: LinkChannels | undefined;
  const [ca, cb] = await linked(
    (a) => channels(a, { message: (ch, d) => ch === "control" && replies.push(d) }),
    (b) =>
      channels(b, {
        // b answers every message from its handler, as a request/response protocol does.
        message: (ch, d) => ch === "control" && cbRef?.send("control", `re ${String(d)}`),
      }),
  );
  cbRef = cb;
  ca.hello();
  cb.hello();
  expect(await until(() => ca.controlResumed() && cb.controlResumed(), 10_000)).toBe(true);
  // What b hands to `control`, and whether it went in the same tick as a data frame.
  const control = cb.get("control") as RTCDataChannel;
  const send = control.send.bind(control);
  let tick = 0;
  let bumping = false;
  const frames: { t: string; tick: number }[] = [];
  control.send = (d) => {
    frames.push({ t: String(d).slice(0, 20).includes('"t":"a"') ? "a" : "d", tick });
    if (!bumping) {
      bumping = true;
      queueMicrotask(() => {
        tick++;
        bumping = false;
      });
    }
    return send(d);
  };
  for (let i = 0; i < 30; i++) {
    ca.send("control", `q${i}`);
    expect(await until(() => replies.length === i + 1, 5000)).toBe(true);
    await new Promise((r) => setTimeout(r, 15));
  }
  const dataTicks = new Set(frames.filter((f) => f.t === "d").map((f) => f.tick));
  const acks = frames.filter((f) => f.t === "a");
  const alone = acks.filter((f) => !dataTicks.has(f.tick)).length;
  // Acknowledgements still flow (here one per two replies: one rides once it has waited 10 ms)...
  expect(acks.length).toBeGreaterThanOrEqual(10);
  // ...in the replies' ticks, so werift bundles them into the replies' packets. Before: every ack
  // went alone, 50 ms after the message it covered.
  expect(alone).toBeLessThanOrEqual(1);
});

it("an acknowledgement says how long it was held: a lone one its timer's wait, a riding one less", async () => {
  const delays: (number | undefined)[] = [];
  let cbRef: LinkChannels | undefined;
  let reply = false;
  let heldMs = -1;
  const [ca, cb] = await linked(
    (a) => channels(a, { reliableAcked: (_n, _now, d) => delays.push(d) }),
    (b) =>
      channels(b, {
        // Once told to, b answers 12 ms after each message: its pending ack rides (10 ms due).
        message: (ch, d) => {
          if (ch !== "control" || !reply) return;
          const got = performance.now();
          setTimeout(() => {
            heldMs = performance.now() - got;
            cbRef?.send("control", `re ${String(d)}`);
          }, 12);
        },
      }),
  );
  cbRef = cb;
  ca.hello();
  cb.hello();
  expect(await until(() => ca.controlResumed() && cb.controlResumed(), 10_000)).toBe(true);
  // No reply: the ack waits for its 50 ms timer, and says so.
  ca.send("control", "lone");
  expect(await until(() => delays.length === 1, 5000)).toBe(true);
  expect(delays[0]).toBeGreaterThanOrEqual(45);
  // A reply 12 ms later carries it: held about that long, well under the timer's wait.
  reply = true;
  ca.send("control", "asked");
  expect(await until(() => delays.length === 2, 5000)).toBe(true);
  expect(heldMs).toBeGreaterThanOrEqual(10);
  expect(Math.abs((delays[1] as number) - heldMs)).toBeLessThanOrEqual(2);
});

it("keeps werift's buffer under the high-water mark, signals drain, and delivers all in order", async () => {
  const highWater = 64 * 1024;
  let drains = 0;
  const got: Payload[] = [];
  const [ca, cb] = await linked(
    (a) => channels(a, { drained: () => drains++ }, { highWater, lowWater: 16 * 1024 }),
    (b) => channels(b, { message: (ch, d) => ch === "control" && got.push(d) }),
  );
  // What the link does on each opening: say where our receiver is.
  ca.hello();
  cb.hello();
  expect(await until(() => ca.controlResumed() && cb.controlResumed(), 10_000)).toBe(true);

  const control = ca.get("control") as RTCDataChannel;
  let maxBuffered = 0;
  const sample = setInterval(() => {
    maxBuffered = Math.max(maxBuffered, control.bufferedAmount);
  }, 1);
  const sent = Array.from(
    { length: 3000 },
    (_, i) => `${String(i).padStart(6, "0")}${"x".repeat(1018)}`,
  );
  let refused = 0;
  try {
    for (const m of sent) {
      if (!ca.send("control", m)) refused++;
      maxBuffered = Math.max(maxBuffered, control.bufferedAmount);
    }
    // The burst waits in the outbox, not in werift.
    expect(ca.controlPending().frames).toBeGreaterThan(2000);
    expect(ca.controlWritable()).toBe(false);
    expect(await until(() => got.length === sent.length, 60_000)).toBe(true);
  } finally {
    clearInterval(sample);
  }
  expect(got).toEqual(sent);
  expect(refused).toBeGreaterThan(0);
  expect(drains).toBe(1);
  expect(ca.controlWritable()).toBe(true);
  // A frame is ~1.1 KB: werift never held more than the high-water mark plus one frame.
  expect(maxBuffered).toBeLessThanOrEqual(highWater + 2048);
});

it("a durable outbox holds the caller back too: send says wait, drained says go on, all arrive in order", async () => {
  // Frames not yet on disk (committed at the end of the turn) are not in the outbox yet; before,
  // send() said true for every one of them, so a caller honouring it was never held back.
  const dir = mkdtempSync(join(tmpdir(), "flow-durable-"));
  const disk = new Outbox(join(dir, "a.sqlite"));
  const highWater = 64 * 1024;
  let drains = 0;
  const got: Payload[] = [];
  try {
    const sender = new ReliableSender({ store: disk.senderStore("b") });
    const [ca, cb] = await linked(
      (a) => channels(a, { drained: () => drains++ }, { highWater, lowWater: 16 * 1024 }, sender),
      (b) => channels(b, { message: (ch, d) => ch === "control" && got.push(d) }),
    );
    ca.hello();
    cb.hello();
    expect(await until(() => ca.controlResumed() && cb.controlResumed(), 10_000)).toBe(true);
    const sent = Array.from(
      { length: 600 },
      (_, i) => `${String(i).padStart(6, "0")}${"x".repeat(1018)}`,
    );
    // As a well-behaved caller: send until told to wait, then wait for drained.
    let waits = 0;
    for (const m of sent) {
      if (!ca.send("control", m)) {
        waits++;
        const before = drains;
        expect(await until(() => drains > before, 20_000)).toBe(true);
      }
    }
    expect(await until(() => got.length === sent.length, 60_000)).toBe(true);
    expect(got).toEqual(sent);
    // 600 KB through a 64 KiB high-water mark: told to wait several times.
    expect(waits).toBeGreaterThanOrEqual(4);
  } finally {
    disk.close();
  }
});

it("a new message waits for the peer's hello: after a long outage nothing goes out past the peer's window", async () => {
  // A backlog longer than the receiver's window (1024) built up while there was no channel, as
  // during an outage or while the peer's process was dead.
  const sender = new ReliableSender();
  const backlog = Array.from({ length: 1_500 }, (_, i) => `m${i}`);
  for (const m of backlog) sender.send(m);
  const got: Payload[] = [];
  const violations: string[] = [];
  const [ca, cb] = await linked(
    (a) => channels(a, {}, {}, sender),
    (b) =>
      channels(b, {
        message: (ch, d) => ch === "control" && got.push(d),
        violation: (kind) => violations.push(kind),
      }),
  );
  // The application sends as soon as `control` is open, before the peer's hello arrived.
  ca.hello();
  expect(ca.controlResumed()).toBe(false);
  ca.send("control", "new");
  await new Promise((r) => setTimeout(r, 300)); // time for a frame sent too early to land
  expect(violations).toEqual([]);
  expect(got).toEqual([]);
  cb.hello(); // the peer says it expects 0: the whole backlog goes, in order, then "new"
  expect(await until(() => got.length === backlog.length + 1, 20_000)).toBe(true);
  expect(got).toEqual([...backlog, "new"]);
  expect(violations).toEqual([]);
});

it("a message handler that throws: the link goes on, and a silent logger still leaves a trace", async () => {
  const got: string[] = [];
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on("warning", onWarning);
  try {
    const [ca, cb] = await linked(
      (a) => channels(a, {}),
      (b) =>
        channels(
          b,
          {
            message: (_ch, d) => {
              got.push(String(d));
              throw new TypeError(`bad ${String(d)}`);
            },
          },
          {},
          undefined,
          undefined,
          pino({ level: "silent" }),
        ),
    );
    ca.hello();
    cb.hello();
    expect(await until(() => ca.controlResumed() && cb.controlResumed(), 10_000)).toBe(true);
    for (const m of ["m1", "m2", "m3"]) ca.send("control", m);
    expect(await until(() => got.length === 3, 10_000)).toBe(true);
    expect(got).toEqual(["m1", "m2", "m3"]);
    await until(() => warnings.length > 0, 2_000);
    const ours = warnings.filter(
      (w) => (w as Error & { code?: string }).code === "ROVERLINK_HANDLER_THREW",
    );
    // Once per process, not once per message.
    expect(ours.map((w) => w.message)).toEqual([
      'a "message" handler threw on control from p: bad m1 (the message counts as delivered; later throws go only to the agent\'s logger)',
    ]);
  } finally {
    process.off("warning", onWarning);
  }
});
