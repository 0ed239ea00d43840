import { describe, expect, it } from "vitest";
import type { RoomEvent } from "../../shared/protocol.ts";
import { eventsFromPushes } from "../../worker/event-push.ts";
import type { EventPush } from "../../worker/room/room.ts";

const ev = (id: number) =>
  ({ id: String(id), type: "peer-left", peer: "x", reason: "left" }) as RoomEvent;
const push = (prev: number, ...ids: number[]): EventPush => ({ prev, events: ids.map(ev) });
const ids = (r: ReturnType<typeof eventsFromPushes>) => r?.events.map((e) => Number(e.id));

describe("events from pushes", () => {
  it("pushes that continue what was written give their events and the cursor after them", () => {
    const r = eventsFromPushes(5, [push(5, 7, 9), push(9, 12)]);
    expect(ids(r)).toEqual([7, 9, 12]);
    expect(r?.cursor).toBe(12);
  });

  it("a push starting before the cursor (a read overlapped it) gives only what is new", () => {
    // The read wrote up to 9; the push holds 7 and 9 again, then 12.
    expect(ids(eventsFromPushes(9, [push(5, 7, 9, 12)]))).toEqual([12]);
    const none = eventsFromPushes(12, [push(5, 7, 9, 12)]);
    expect(none).toEqual({ events: [], cursor: 12 });
  });

  it("a push that starts past the cursor means one went missing: read (null)", () => {
    expect(eventsFromPushes(5, [push(7, 9)])).toBeNull();
    // Missing in the middle of several: null too, even though the first continued.
    expect(eventsFromPushes(5, [push(5, 7), push(9, 12)])).toBeNull();
  });

  it("a log emptied before the push (prev 0) continues any cursor", () => {
    expect(ids(eventsFromPushes(40, [push(0, 41)]))).toEqual([41]);
  });
});
