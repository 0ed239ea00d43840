/**
 * patches/werift+0.25.2.patch, patch 24 (docs/werift-patches.md): SCTP's outbound queue takes
 * chunks from its head in O(1) at any depth. Stock werift kept it in an Array and took each chunk
 * with shift(); V8 shifts an Array whose backing store is past ~16 K elements by moving every
 * element, so a deep queue (20 000 small messages, or 300 messages of 256 KiB: 65 000 chunks) cost
 * O(depth) per chunk sent. Real PeerConnections on loopback UDP.
 */
import { afterEach, expect, it } from "vitest";
import { type Linked, linkedPair, messages, sctpOf, until } from "./sctp-pair.ts";

const pairs: Linked[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.close()));
});

/** Where V8 stops shifting an Array in place (measured: ~0.05 µs per shift below, 13–40 µs above). */
const DEEP = 16_384;

it("drains a 20 000-chunk outbound queue without shifting a deep Array, in order", async () => {
  const p = await linkedPair();
  pairs.push(p);
  const sctp = sctpOf(p.a);
  const sent = messages(20_000, 1024);
  let deepShifts = 0;
  let deepest = 0;
  const shift = Array.prototype.shift;
  // Counts, for the length of this test, every shift() of an Array deeper than V8 shifts in place.
  Array.prototype.shift = function (this: unknown[]) {
    if (this.length > DEEP) deepShifts++;
    return shift.call(this);
  };
  try {
    for (const m of sent) p.dc.send(m);
    expect(await until(() => sctp.outboundQueue.length > DEEP, 5_000)).toBe(true);
    const sample = setInterval(() => {
      deepest = Math.max(deepest, sctp.outboundQueue.length);
    }, 1);
    try {
      expect(await until(() => p.received.length === sent.length, 90_000)).toBe(true);
    } finally {
      clearInterval(sample);
    }
  } finally {
    Array.prototype.shift = shift;
  }
  // The premise: the queue was deep while it drained.
  expect(deepest).toBeGreaterThan(DEEP);
  expect(deepShifts).toBe(0);
  expect(p.received).toEqual(sent);
}, 120_000);
