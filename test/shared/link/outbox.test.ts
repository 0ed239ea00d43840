import { describe, expect, it } from "vitest";
import { Outbox } from "../../../shared/link/outbox.ts";

const frame = (i: number, size = 100) => `${String(i).padStart(6, "0")}${"x".repeat(size - 6)}`;

describe("Outbox", () => {
  it("releases frames in order only while the channel's buffer is under the high-water mark", () => {
    const o = new Outbox({ highWater: 1_000, lowWater: 300 });
    const frames = Array.from({ length: 30 }, (_, i) => frame(i));
    for (const f of frames) o.push(f, 0);
    const first = o.take(0);
    expect(first).toEqual(frames.slice(0, 10));
    // The channel still holds 900 bytes: room for one more frame only.
    expect(o.take(900)).toEqual(frames.slice(10, 11));
    expect(o.take(1_000)).toEqual([]);
    expect(o.pending).toEqual({ frames: 19, bytes: 1_900 });
    expect([...o.take(0), ...o.take(0)]).toEqual(frames.slice(11, 30));
    expect(o.pending).toEqual({ frames: 0, bytes: 0 });
  });

  it("asks the caller to wait past the high-water mark, and says drained once below low water", () => {
    const o = new Outbox({ highWater: 1_000, lowWater: 300 });
    const oks = Array.from({ length: 12 }, (_, i) => o.push(frame(i), 0));
    expect(oks.slice(0, 9).every(Boolean)).toBe(true);
    expect(oks.slice(9)).toEqual([false, false, false]);
    expect(o.writable(0)).toBe(false);
    o.take(0); // 10 frames out, 2 left
    expect(o.drained(1_000)).toBe(false);
    o.take(200);
    expect(o.drained(500)).toBe(false); // the channel is still above low water
    expect(o.drained(300)).toBe(true);
    expect(o.drained(0)).toBe(false); // once
    expect(o.writable(0)).toBe(true);
  });

  it("replaces what waits with a resend, and forgets it on clear", () => {
    const o = new Outbox({ highWater: 1_000, lowWater: 300 });
    for (let i = 0; i < 5; i++) o.push(frame(i), 0);
    o.replace([frame(3), frame(4), frame(5)]);
    expect(o.take(0)).toEqual([frame(3), frame(4), frame(5)]);
    o.push(frame(6), 0);
    o.clear();
    expect(o.take(0)).toEqual([]);
  });

  it("refuses limits with low water not below high water", () => {
    expect(() => new Outbox({ highWater: 100, lowWater: 100 })).toThrow(RangeError);
  });
});
