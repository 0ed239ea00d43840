/**
 * shared/link/liveness.ts Outstanding: the unacknowledged `control` messages the health policy
 * waits on (docs/link-health.md). Pure: sequence numbers and a clock in.
 */
import { expect, it } from "vitest";
import { Outstanding } from "../../../shared/link/liveness.ts";

it("gives an RTT sample from the newest message an ack covers, unless it was resent", () => {
  const o = new Outstanding();
  o.sent(0, 100);
  o.sent(1, 110);
  o.sent(2, 120);
  expect(o.oldest()).toBe(100);
  expect(o.acked(2, 150)).toBe(40); // covers 0 and 1: the newest is 1, sent at 110
  expect(o.size).toBe(1);
  expect(o.oldest()).toBe(120);
  o.sent(2, 200); // resent: no sample from it (Karn)
  expect(o.acked(3, 230)).toBeNull();
  expect(o.size).toBe(0);
  expect(o.oldest()).toBeNull();
});

it("ignores acks that go backwards and resends below the floor", () => {
  const o = new Outstanding();
  o.sent(0, 0);
  o.sent(1, 0);
  expect(o.acked(1, 10)).toBe(10);
  expect(o.acked(1, 20)).toBeNull();
  expect(o.acked(0, 20)).toBeNull();
  o.sent(0, 30); // already acknowledged
  expect(o.size).toBe(1);
  expect(o.oldest()).toBe(0);
});

it("keeps sequence order when a message is reported out of order", () => {
  const o = new Outstanding();
  o.sent(5, 50);
  o.sent(7, 70);
  o.sent(6, 60);
  expect(o.oldest()).toBe(50);
  expect(o.acked(6, 100)).toBe(50);
  expect(o.oldest()).toBe(60);
  expect(o.acked(7, 100)).toBe(40);
  expect(o.oldest()).toBe(70);
});

it("holds 50 000 messages acked a few at a time without losing track (the deque compacts)", () => {
  const o = new Outstanding();
  for (let s = 0; s < 50_000; s++) o.sent(s, s);
  for (let next = 3; next <= 50_000; next += 3) {
    expect(o.acked(next, next + 5)).toBe(6); // newest covered: next - 1, sent at next - 1
    expect(o.oldest()).toBe(next < 50_000 ? next : null);
    expect(o.size).toBe(50_000 - next);
  }
  expect(o.acked(50_000, 0)).toBe(-49_999);
  expect(o.size).toBe(0);
});

it("after a hello, what went again is outstanding under its new numbers, none a sample", () => {
  const o = new Outstanding();
  o.sent(10, 0);
  o.sent(11, 0);
  o.resent([0, 1, 2], 500);
  expect(o.size).toBe(3);
  expect(o.oldest()).toBe(500);
  expect(o.acked(3, 600)).toBeNull();
  expect(o.size).toBe(0);
});
