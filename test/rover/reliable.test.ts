import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  BacklogFullError,
  decodeFrame,
  encodeFrame,
  type Frame,
  FrameError,
  ReliableReceiver,
  ReliableSender,
} from "../../rover/reliable.ts";

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

  it("carries binary payloads", () => {
    const s = new ReliableSender();
    const r = new ReliableReceiver();
    const f = decodeFrame(encodeFrame(s.send(new Uint8Array([0, 1, 255])))) as Frame & { t: "d" };
    expect(r.onData(f)).toEqual([new Uint8Array([0, 1, 255])]);
  });

  it("resends what was not acknowledged after a rebuild, and the receiver drops duplicates", () => {
    const s = new ReliableSender({ stream: "s1" });
    const r = new ReliableReceiver();
    const frames = ["a", "b", "c", "d"].map((m) => s.send(m)) as (Frame & { t: "d" })[];
    expect(r.onData(frames[0]!)).toEqual(["a"]);
    expect(r.onData(frames[1]!)).toEqual(["b"]);
    s.onAck(1);
    // Rebuild: c and d were lost in flight. The receiver says hello: it expects 2.
    const again = s.resendFrom(r.hello().n) as (Frame & { t: "d" })[];
    expect(again.map((f) => f.s)).toEqual([2, 3]);
    expect(r.onData(frames[1]!)).toEqual([]); // a late duplicate
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
