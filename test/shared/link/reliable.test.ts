import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  BacklogFullError,
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameError,
  MAX_ACK_DELAY_MS,
  ReliableReceiver,
  ReliableSender,
  type SenderStore,
  type StoredFrame,
  type StoreHooks,
  WindowError,
} from "../../../shared/link/reliable.ts";

describe("reliable control layer", () => {
  it("round-trips frames; raw text is not a frame; broken frames throw FrameError", () => {
    const s = new ReliableSender({ stream: "s1" });
    const f = s.send("hello");
    expect(decodeFrame(encodeFrame(f))).toEqual(f);
    expect(decodeFrame("plain text from a browser")).toBeNull();
    expect(decodeFrame('{"type":"chat"}')).toBeNull();
    expect(() => decodeFrame('{"rl":1,"t":"d"')).toThrow(FrameError);
    expect(() => decodeFrame('{"rl":1,"t":"d","st":"x","s":-1,"p":""}')).toThrow(FrameError);
    expect(() => decodeFrame('{"rl":2,"t":"a","n":0}')).toThrow(FrameError);
  });

  it("an ack says how long it was held (whole ms, bounded); a bad delay is a broken frame", () => {
    const held = (at: number, now: number | undefined) => {
      const s = new ReliableSender({ stream: "s1" });
      const r = new ReliableReceiver();
      r.onData(s.send("x") as Frame & { t: "d" }, at);
      return r.ack(now);
    };
    expect(held(1_000, undefined)).toEqual({ rl: 1, t: "a", n: 1 });
    const a = held(1_000, 1_049.6);
    expect(a).toEqual({ rl: 1, t: "a", n: 1, d: 50 });
    expect(decodeFrame(encodeFrame(a))).toEqual(a);
    expect(held(1_000, 997).d).toBe(0);
    expect(held(0, 1e9).d).toBe(MAX_ACK_DELAY_MS);
    for (const d of ["-1", "1.5", '"7"', String(MAX_ACK_DELAY_MS + 1)])
      expect(() => decodeFrame(`{"rl":1,"t":"a","n":1,"d":${d}}`)).toThrow(FrameError);
  });

  it("an ack's delay is from the newest message it acknowledges, not the newest to arrive", () => {
    // A store that commits later (the durable inbox): an ack sent as message 1 arrives covers
    // message 0 only, which came 50 ms earlier. Timed from message 1 it said ~0: the other end
    // then read the whole 50 ms wait as path RTT.
    const attached: StoreHooks[] = [];
    const r = new ReliableReceiver(
      {},
      { load: () => null, delivered: () => false, attach: (h) => attached.push(h) },
    );
    const commit = () => attached[0]?.durable();
    const s = new ReliableSender({ stream: "s1" });
    r.onData(s.send("m0") as Frame & { t: "d" }, 1_000);
    commit();
    r.onData(s.send("m1") as Frame & { t: "d" }, 1_050);
    expect(r.ack(1_051)).toEqual({ rl: 1, t: "a", n: 1, d: 51 });
    commit();
    expect(r.ack(1_060)).toEqual({ rl: 1, t: "a", n: 2, d: 10 });
    // Acknowledged already: a repeat says no delay (it gives the sender no sample anyway).
    expect(r.ack(1_070)).toEqual({ rl: 1, t: "a", n: 2 });
  });

  it("carries binary payloads", () => {
    const s = new ReliableSender();
    const r = new ReliableReceiver();
    const f = decodeFrame(encodeFrame(s.send(new Uint8Array([0, 1, 255])))) as Frame & { t: "d" };
    expect(r.onData(f)).toEqual([new Uint8Array([0, 1, 255])]);
  });

  it("resends what was not acknowledged after a rebuild, and the receiver drops duplicates", () => {
    const s = new ReliableSender({ stream: "s1" });
    const r = new ReliableReceiver();
    const [fa, fb] = ["a", "b", "c", "d"].map((m) => s.send(m)) as (Frame & { t: "d" })[];
    if (!fa || !fb) throw new Error("no frames");
    expect(r.onData(fa)).toEqual(["a"]);
    expect(r.onData(fb)).toEqual(["b"]);
    s.onAck(1);
    // Rebuild: c and d were lost in flight. The receiver says hello: it expects 2.
    const again = s.resendFrom(r.hello().n) as (Frame & { t: "d" })[];
    expect(again.map((f) => f.s)).toEqual([2, 3]);
    expect(r.onData(fb)).toEqual([]); // a late duplicate
    expect(again.flatMap((f) => r.onData(f))).toEqual(["c", "d"]);
    expect(r.duplicates).toBe(1);
  });

  it("a new sender stream (agent restarted) resets the receiver", () => {
    const r = new ReliableReceiver();
    const s1 = new ReliableSender({ stream: "old" });
    r.onData(s1.send("x") as Frame & { t: "d" });
    r.onData(s1.send("y") as Frame & { t: "d" });
    const s2 = new ReliableSender({ stream: "new" });
    expect(r.onData(s2.send("fresh") as Frame & { t: "d" })).toEqual(["fresh"]);
  });

  it("overflow: send throws BacklogFullError and keeps everything already accepted", () => {
    const s = new ReliableSender({ maxBacklog: 3 });
    s.send("1");
    s.send("2");
    s.send("3");
    expect(() => s.send("4")).toThrow(BacklogFullError);
    expect(s.backlog().messages).toBe(3);
    expect(s.stats().rejected).toBe(1);
    s.onAck(2);
    expect(s.backlog().messages).toBe(1);
    expect(() => s.send("4")).not.toThrow();
  });

  it("property: any drops, duplicates and rebuilds deliver exactly the sent sequence, once, in order", () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant("send" as const) }),
      fc.record({ k: fc.constant("deliver" as const), dup: fc.boolean() }),
      fc.record({ k: fc.constant("drop" as const) }),
      fc.record({ k: fc.constant("ack" as const) }),
      fc.record({ k: fc.constant("rebuild" as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const s = new ReliableSender({ stream: "p" });
        const r = new ReliableReceiver();
        let wire: (Frame & { t: "d" })[] = [];
        const got: string[] = [];
        let n = 0;
        for (const o of ops) {
          if (o.k === "send") wire.push(s.send(`m${n++}`) as Frame & { t: "d" });
          if (o.k === "deliver" && wire.length > 0) {
            const f = wire.shift() as Frame & { t: "d" };
            got.push(...(r.onData(f) as string[]));
            if (o.dup) got.push(...(r.onData(f) as string[]));
          }
          if (o.k === "drop") wire.shift();
          if (o.k === "ack") s.onAck(r.ack().n);
          if (o.k === "rebuild") {
            wire = s.resendFrom(r.hello().n) as (Frame & { t: "d" })[];
          }
        }
        // Heal: rebuild and deliver everything.
        for (const f of s.resendFrom(r.hello().n))
          got.push(...(r.onData(f as Frame & { t: "d" }) as string[]));
        expect(got).toEqual(Array.from({ length: n }, (_, i) => `m${i}`));
      }),
    );
  });
});

describe("reliable control layer against a hostile sender", () => {
  const data = (st: string, s: number, p = "x"): Frame & { t: "d" } => ({
    rl: 1,
    t: "d",
    st,
    s,
    p,
  });

  it("refuses a frame too far ahead of the next expected one, holding nothing", () => {
    const r = new ReliableReceiver({ maxAhead: 100 });
    expect(r.onData(data("s", 0))).toEqual(["x"]);
    expect(() => r.onData(data("s", 102))).toThrow(WindowError);
    expect(r.held()).toEqual({ messages: 0, bytes: 0 });
    // Within the window it is held until the gap fills.
    expect(r.onData(data("s", 101))).toEqual([]);
    expect(r.held().messages).toBe(1);
  });

  it("holds at most maxAheadBytes ahead of a gap, and frees them once the gap fills", () => {
    const r = new ReliableReceiver({ maxAheadBytes: 10_000 });
    const big = "y".repeat(1_000);
    for (let s = 1; s <= 10; s++) r.onData(data("s", s, big));
    expect(r.held()).toEqual({ messages: 10, bytes: 10_000 });
    let err: unknown;
    try {
      r.onData(data("s", 11, big));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WindowError);
    expect((err as WindowError).kind).toBe("reorder-overflow");
    expect(r.onData(data("s", 0))).toHaveLength(11);
    expect(r.held()).toEqual({ messages: 0, bytes: 0 });
  });

  it("under any sequence of frames, what is held never passes the bounds", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ s: fc.nat(3_000), len: fc.nat(5_000), st: fc.constantFrom("a", "b") }),
          {
            maxLength: 300,
          },
        ),
        (frames) => {
          const r = new ReliableReceiver({ maxAhead: 500, maxAheadBytes: 50_000 });
          for (const f of frames) {
            try {
              r.onData(data(f.st, f.s, "z".repeat(f.len)));
            } catch (e) {
              if (!(e instanceof WindowError)) throw e;
            }
            expect(r.held().messages).toBeLessThanOrEqual(501);
            expect(r.held().bytes).toBeLessThanOrEqual(50_000);
          }
        },
      ),
    );
  });

  it("ignores an acknowledgement of messages never sent", () => {
    const s = new ReliableSender();
    s.send("a");
    s.send("b");
    expect(s.onAck(5)).toBe(false);
    expect(s.backlog().messages).toBe(2);
    expect(s.onAck(1)).toBe(true);
    expect(s.backlog().messages).toBe(1);
    expect(s.nextSeq).toBe(2);
  });

  it("bounds the backlog in bytes too", () => {
    const s = new ReliableSender({ maxBacklogBytes: 100 });
    s.send("x".repeat(60));
    s.send("x".repeat(60));
    expect(() => s.send("x")).toThrow(BacklogFullError);
    expect(s.stats().rejected).toBe(1);
  });
});

describe("reliable control layer on a batching store", () => {
  /** A store that keeps rows in a Map and commits when told, as a disk store would. */
  function batchingStore() {
    let hooks: StoreHooks | undefined;
    const rows = new Map<number, StoredFrame>();
    let pending: StoredFrame[] = [];
    const store: SenderStore = {
      load: () => null,
      reset: () => true,
      append: (f) => {
        pending.push(f);
        return false;
      },
      ack: () => {},
      attach: (h) => {
        hooks = h;
      },
    };
    return {
      store,
      rows,
      commit: () => {
        for (const f of pending) rows.set(f.s, f);
        pending = [];
        hooks?.durable();
      },
      fail: () => {
        pending = [];
        hooks?.failed(new Error("disk full"));
      },
    };
  }

  it("frames go out only once durable; a failed batch is not accepted and its numbers are reused", () => {
    const b = batchingStore();
    const s = new ReliableSender({ stream: "s", store: b.store });
    const out: unknown[] = [];
    s.onDurable((fs) => out.push(...fs.map((f) => f.p)));
    const f = s.send("a");
    expect(s.isDurable(f)).toBe(false);
    expect(s.resendFrom(0)).toEqual([]);
    b.commit();
    expect(out).toEqual(["a"]);
    s.send("b");
    s.send("c");
    b.fail();
    expect(s.lastFailure?.lost).toBe(2);
    expect(s.backlog().messages).toBe(1);
    expect(s.send("d").s).toBe(1); // no gap in the stream
    b.commit();
    expect(out).toEqual(["a", "d"]);
    expect([...b.rows.values()].map((r) => r.p)).toEqual(["a", "d"]);
  });

  it("in memory, a TTL-expired message becomes a placeholder the receiver counts and skips", () => {
    let now = 0;
    const s = new ReliableSender({ stream: "s", clock: () => now });
    const r = new ReliableReceiver();
    s.send("old", { ttlMs: 100 });
    s.send("new");
    now = 101;
    const frames = s.resendFrom(0);
    expect(frames[0]).toMatchObject({ s: 0, p: "", e: 1 });
    expect(decodeFrame(encodeFrame(frames[0] as Frame))).toEqual(frames[0]);
    expect(frames.flatMap((f) => r.onData(f))).toEqual(["new"]);
    expect(r.expired).toBe(1);
    expect(s.stats().expired).toBe(1);
  });
});
