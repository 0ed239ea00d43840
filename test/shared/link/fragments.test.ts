/**
 * Large messages on `control` (shared/link/reliable.ts): split to the peer's max-message-size,
 * reassembled in order, acknowledged only as whole messages (so a resend after a rebuild or a
 * crash never loses nor repeats one), and a hostile sender's fragments refused with a clear kind.
 */
import { describe, expect, it } from "vitest";
import {
  type DataFrame,
  decodeFrame,
  encodeFrame,
  type FragmentError,
  FrameError,
  MessageTooLargeError,
  type Payload,
  ReliableReceiver,
  ReliableSender,
  splitMessage,
} from "../../../shared/link/reliable.ts";

const MiB = 1024 * 1024;

function bytes(n: number, seed = 1): Uint8Array {
  const u = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    u[i] = x >>> 24;
  }
  return u;
}

/** Frames through their wire form, as the peer sees them. */
const wire = (f: DataFrame) => decodeFrame(encodeFrame(f)) as DataFrame;

function collectErrors(r: ReliableReceiver): FragmentError[] {
  const errors: FragmentError[] = [];
  r.onFragmentError = (e) => errors.push(e);
  return errors;
}

describe("large messages", () => {
  it("a 16 MiB binary message goes in frames that each fit the peer's max-message-size and arrives whole", () => {
    const s = new ReliableSender();
    const r = new ReliableReceiver();
    const msg = bytes(16 * MiB);
    const frames = s.sendFrames(msg);
    expect(frames.length).toBeGreaterThan(300);
    for (const f of frames) expect(Buffer.byteLength(encodeFrame(f))).toBeLessThanOrEqual(65_536);
    const out: Payload[] = [];
    for (const f of frames) out.push(...r.onData(wire(f)));
    expect(out).toHaveLength(1);
    expect(Buffer.from(out[0] as Uint8Array).equals(Buffer.from(msg))).toBe(true);
  });

  it("a large text message with multi-byte characters and JSON escapes arrives as the same string", () => {
    const s = new ReliableSender();
    s.maxFrameBytes = 4096;
    const r = new ReliableReceiver();
    const text = 'ü€😀"\\\n\u0001x'.repeat(20_000);
    const frames = s.sendFrames(text);
    expect(frames.length).toBeGreaterThan(1);
    for (const f of frames) expect(Buffer.byteLength(encodeFrame(f))).toBeLessThanOrEqual(4096);
    const out = frames.flatMap((f) => r.onData(wire(f)));
    expect(out).toEqual([text]);
  });

  it("a message that fits stays one frame, unchanged on the wire", () => {
    expect(splitMessage("hello", 65_536)).toEqual([{ p: "hello" }]);
    expect(new ReliableSender().sendFrames(bytes(1000))).toHaveLength(1);
  });

  it("a string goes as itself exactly when its JSON frame fits: longer than the room, under a sixth of it, and in between", () => {
    const max = 4096;
    const room = max - 256; // FRAME_OVERHEAD
    const frameOf = (p: string) =>
      Buffer.byteLength(encodeFrame({ rl: 1, t: "d", st: "x".repeat(16), s: 1e15, p }));
    // As itself: one frame, the string unchanged; else its UTF-8 bytes in fragments.
    const asItself = (text: string) => {
      const parts = splitMessage(text, max);
      return parts.length === 1 && parts[0]?.p === text;
    };
    // Longer than the room in code units: never as itself, whatever its bytes.
    expect(asItself("a".repeat(room + 1))).toBe(false);
    // In between, decided by its escaped UTF-8 length (quotes included): ASCII fits, escapes and
    // multi-byte characters do not.
    const ascii = "a".repeat(room - 2);
    expect(asItself(ascii)).toBe(true);
    expect(frameOf(ascii)).toBeLessThanOrEqual(max);
    expect(asItself(`${ascii}a`)).toBe(false);
    expect(asItself("\u0001".repeat(room / 2))).toBe(false);
    expect(asItself("€".repeat(room / 2))).toBe(false);
    expect(asItself("€".repeat(Math.floor(room / 3) - 1))).toBe(true);
    // Under a sixth: as itself even if every code unit needs an escape.
    const worst = "\u0001".repeat(Math.floor(room / 6));
    expect(asItself(worst)).toBe(true);
    expect(frameOf(worst)).toBeLessThanOrEqual(max);
  });

  it("the receiver acknowledges only whole messages; a resend after a lost association delivers each once", () => {
    const s = new ReliableSender();
    s.maxFrameBytes = 1024;
    const r = new ReliableReceiver({ minFragmentBytes: 256 });
    const small = s.sendFrames("before");
    const big = s.sendFrames(bytes(10_000));
    const after = s.sendFrames("after");
    const got: Payload[] = [];
    for (const f of small) got.push(...r.onData(wire(f)));
    // Half the large message arrives, then the PeerConnection is rebuilt.
    for (const f of big.slice(0, 5)) got.push(...r.onData(wire(f)));
    expect(r.ack().n).toBe(1); // only "before" is delivered
    expect(r.reassembling()).toBeGreaterThan(0);
    // The new `control`: the receiver says hello from its last whole message; the sender resends.
    const resent = s.resendFrom(r.hello().n);
    expect(resent[0]?.s).toBe(big[0]?.s);
    for (const f of resent) got.push(...r.onData(wire(f)));
    expect(got.map((p) => (typeof p === "string" ? p : p.byteLength))).toEqual([
      "before",
      10_000,
      "after",
    ]);
    expect(r.ack().n).toBe(after[0]?.s !== undefined ? after[0].s + 1 : -1);
    expect(s.onAck(r.ack().n)).toBe(true);
    expect(s.backlog().messages).toBe(0);
  });

  it("a receiver that lost its state mid-message (crash) gets the whole message again", () => {
    const s = new ReliableSender();
    s.maxFrameBytes = 1024;
    const msg = bytes(5000);
    const frames = s.sendFrames(msg);
    const r1 = new ReliableReceiver();
    for (const f of frames.slice(0, 3)) r1.onData(wire(f));
    const r2 = new ReliableReceiver(); // restarted: no partial, no mark
    const out = s.resendFrom(r2.hello().n).flatMap((f) => r2.onData(wire(f)));
    expect(out).toHaveLength(1);
    expect(Buffer.from(out[0] as Uint8Array).equals(Buffer.from(msg))).toBe(true);
  });

  it("a message whose TTL passed mid-way is dropped whole and counted once", () => {
    let now = 0;
    const s = new ReliableSender({ clock: () => now });
    s.maxFrameBytes = 1024;
    const r = new ReliableReceiver();
    const frames = s.sendFrames(bytes(5000), { ttlMs: 100 });
    for (const f of frames.slice(0, 2)) r.onData(wire(f));
    now = 200;
    const rest = s.resendFrom(r.hello().n).slice(2);
    const out = rest.flatMap((f) => r.onData(wire(f)));
    expect(out).toEqual([]);
    expect(r.expired).toBe(1);
    expect(s.stats().expired).toBe(1);
    expect(r.onData(wire(s.send("next")))).toEqual(["next"]);
  });

  it("a message past the sender's bound is refused before anything is kept", () => {
    const s = new ReliableSender({ maxMessageBytes: 1000 });
    expect(() => s.sendFrames(bytes(1001))).toThrow(MessageTooLargeError);
    expect(s.backlog().messages).toBe(0);
  });

  it("text is bounded in UTF-8 bytes, as the receiver counts it", () => {
    // 600 characters, 1200 bytes: the receiver refuses past 1000, so the sender must too.
    const s = new ReliableSender({ maxMessageBytes: 1000 });
    expect(() => s.sendFrames("é".repeat(600))).toThrow(/1200 bytes/);
    expect(s.backlog().messages).toBe(0);
    // 500 characters, 1000 bytes: fits, and arrives whole.
    s.maxFrameBytes = 256;
    // (Frames this small cut 3-byte pieces: allowed here, as the sender's own size.)
    const r = new ReliableReceiver({ maxMessageBytes: 1000, minFragmentBytes: 1 });
    const got = s.sendFrames("é".repeat(500)).flatMap((f) => r.onData(wire(f)));
    expect(got).toEqual(["é".repeat(500)]);
    expect(r.badFragments).toBe(0);
  });

  it("a message that needs more frames than the backlog has room for is refused whole", () => {
    const s = new ReliableSender({ maxBacklog: 10 });
    s.maxFrameBytes = 1024;
    expect(() => s.sendFrames(bytes(20_000))).toThrow(/needs \d+/);
    expect(s.backlog().messages).toBe(0);
  });
});

describe("hostile fragments", () => {
  const st = "hostile";
  const d = (s: number, extra: Partial<DataFrame>): DataFrame => ({
    rl: 1,
    t: "d",
    st,
    s,
    p: Buffer.from("abc").toString("base64"),
    b: 1,
    ...extra,
  });

  it("bad fragment fields do not decode", () => {
    const bad = [
      '{"rl":1,"t":"d","st":"x","s":0,"p":"","m":2}',
      '{"rl":1,"t":"d","st":"x","s":0,"p":"","z":-1}',
      '{"rl":1,"t":"d","st":"x","s":0,"p":"","z":1.5}',
      '{"rl":1,"t":"d","st":"x","s":0,"p":"","u":"yes"}',
    ];
    for (const t of bad) expect(() => decodeFrame(t)).toThrow(FrameError);
  });

  it("a declared size past the limit is refused before anything is kept; the rest is dropped quietly", () => {
    const r = new ReliableReceiver({ maxMessageBytes: 1024 });
    const errors = collectErrors(r);
    expect(r.onData(d(0, { m: 1, z: 1 << 30 }))).toEqual([]);
    expect(r.reassembling()).toBe(0);
    for (let s = 1; s < 100; s++) expect(r.onData(d(s, { m: 1 }))).toEqual([]);
    expect(r.onData(d(100, {}))).toEqual([]);
    expect(errors.map((e) => e.kind)).toEqual(["oversized-message"]);
    expect(errors[0]?.message).toMatch(/1073741824 bytes declared; the largest accepted is 1024/);
    // The stream goes on after it.
    expect(r.onData({ rl: 1, t: "d", st, s: 101, p: "ok" })).toEqual(["ok"]);
  });

  it("fragments past the declared size, a continuation of nothing, a new start mid-message, text in a fragment, a short message", () => {
    const cases: [DataFrame[], RegExp][] = [
      [[d(0, { m: 1, z: 4 }), d(1, {})], /exceed the declared 4 bytes/],
      [[d(0, { m: 1 })], /continues no message/],
      [[d(0, { m: 1, z: 6 }), d(1, { m: 1, z: 6 })], /starts a message while one is incomplete/],
      [[d(0, { m: 1, z: 6 }), { rl: 1, t: "d", st, s: 1, p: "raw" }], /not base64 bytes/],
      [[d(0, { m: 1, z: 100 }), d(1, {})], /ended at 6 of 100 declared bytes/],
    ];
    for (const [frames, re] of cases) {
      const r = new ReliableReceiver();
      const errors = collectErrors(r);
      const out = frames.flatMap((f) => r.onData(f));
      expect(out).toEqual([]);
      expect(errors.map((e) => e.message).join("; ")).toMatch(re);
      expect(errors.every((e) => e.kind === "bad-fragment")).toBe(true);
    }
  });

  it("empty pieces, or more pieces than a 1 KiB average allows, are refused: reassembly memory stays near the declared size", () => {
    // A hostile audit (2026-12-08): a first fragment declaring 16 MiB, then empty fragments
    // forever: each was kept, counted as 0 bytes, and a rover grew to 3.7 GB with no violation.
    const empty = new ReliableReceiver();
    const e1 = collectErrors(empty);
    empty.onData({ rl: 1, t: "d", st, s: 0, p: "AA==", b: 1, m: 1, z: 16 * MiB });
    for (let s = 1; s <= 1_000; s++) empty.onData({ rl: 1, t: "d", st, s, p: "", b: 1, m: 1 });
    expect(e1.map((e) => e.message)).toEqual(["fragment 1 is empty and not the last"]);
    expect(e1[0]?.kind).toBe("bad-fragment");
    // One-byte pieces: at most 16 of them (1 KiB each on average) for a 16-byte message...
    const tiny = new ReliableReceiver();
    const e2 = collectErrors(tiny);
    tiny.onData({ rl: 1, t: "d", st, s: 0, p: "AA==", b: 1, m: 1, z: 17 });
    for (let s = 1; s <= 16; s++) tiny.onData({ rl: 1, t: "d", st, s, p: "AA==", b: 1, m: 1 });
    expect(e2.map((e) => e.message)).toEqual(["more than 16 fragments for 17 declared bytes"]);
    // ...and a message cut the way a sender cuts it (werift's 64 KiB) still arrives whole.
    const s16 = new ReliableSender({ stream: st });
    const whole = bytes(2 * MiB);
    const ok = new ReliableReceiver();
    const e3 = collectErrors(ok);
    const got = s16.sendFrames(whole).flatMap((f) => ok.onData(wire(f)));
    expect(e3).toEqual([]);
    expect(Buffer.from(got[0] as Uint8Array).equals(Buffer.from(whole))).toBe(true);
  });

  it("a closed channel drops what is held past the last whole message; the resend after the hello completes it once", () => {
    const s = new ReliableSender({ stream: st });
    s.maxFrameBytes = 2_000;
    const r = new ReliableReceiver();
    collectErrors(r);
    const first = bytes(5_000, 3);
    const frames = s.sendFrames(first).map(wire);
    expect(frames.length).toBeGreaterThan(2);
    r.onData(frames[0] as DataFrame);
    r.onData(frames[1] as DataFrame);
    expect(r.reassembling()).toBeGreaterThan(0);
    r.dropIncomplete();
    expect(r.reassembling()).toBe(0);
    expect(r.held()).toEqual({ messages: 0, bytes: 0 });
    // The next channel: our hello says where the last whole message ended; everything after it
    // comes again and is delivered once.
    const again = s.resendFrom(r.hello().n).map(wire);
    const out = again.flatMap((f) => r.onData(f));
    expect(out).toHaveLength(1);
    expect(Buffer.from(out[0] as Uint8Array).equals(Buffer.from(first))).toBe(true);
  });

  it("reassembly holds at most one message per peer stream, within its limit", () => {
    const r = new ReliableReceiver({ maxMessageBytes: 64 * 1024 });
    collectErrors(r);
    const chunk = Buffer.alloc(30_000).toString("base64");
    r.onData({ rl: 1, t: "d", st, s: 0, p: chunk, b: 1, m: 1, z: 64 * 1024 });
    r.onData({ rl: 1, t: "d", st, s: 1, p: chunk, b: 1, m: 1 });
    r.onData({ rl: 1, t: "d", st, s: 2, p: chunk, b: 1, m: 1 });
    expect(r.reassembling()).toBeLessThanOrEqual(64 * 1024);
    expect(r.badFragments).toBe(1);
  });
});
