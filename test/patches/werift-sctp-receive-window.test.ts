/**
 * patches/werift+0.25.2.patch, patch 30 (docs/werift-patches.md): a peer's DATA chunks outside
 * the receive window are dropped, and a SACK stays within its format. Stock werift held every
 * DATA chunk it was given: a peer that skipped one TSN (or never ended a message) grew the
 * receiver's memory without bound, and a TSN more than 65535 ahead of the cumulative TSN, or more
 * gaps than a SACK's 16-bit length can carry, made every later SACK throw, so the other end never
 * learned what arrived. The chunks go in where the peer's packets would (the DTLS transport's
 * receiver), with a correct CRC-32c and tag, on a stream no channel uses (9).
 */

import { afterEach, describe, expect, it } from "vitest";
import {
  type Linked,
  linkedPair,
  sctpPacket as packet,
  type SctpSender,
  sctpOf,
  until,
} from "./sctp-pair.ts";

const pairs: Linked[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.close()));
});

/** b's association as the tests see it. */
interface Receiver {
  localVerificationTag: number;
  lastReceivedTsn: number;
  advertisedRwnd: number;
  sackMisOrdered: Set<number>;
  transport: { dtls: { dataReceiver(buf: Buffer): void } };
}

const WINDOW = 1024 * 1024;
const STREAM = 9;

/**
 * A DATA chunk, ordered, on STREAM with stream sequence number `ssn`: one whole message, or
 * (`flags`) a fragment of one (0x02 its first, 0x00 a middle one).
 */
function data(tsn: number, ssn: number, bytes: number, flags = 0x03): Buffer {
  const c = Buffer.alloc(16 + bytes + ((4 - (bytes % 4)) % 4));
  c.writeUInt8(0, 0); // DATA
  c.writeUInt8(flags, 1); // 0x02 beginning, 0x01 end of a message
  c.writeUInt16BE(16 + bytes, 2);
  c.writeUInt32BE(tsn >>> 0, 4);
  c.writeUInt16BE(STREAM, 8);
  c.writeUInt16BE(ssn & 0xffff, 10);
  c.writeUInt32BE(53, 12); // binary
  return c;
}

async function setUp(): Promise<{ p: Linked; b: Receiver; inject(c: Buffer): void }> {
  const p = await linkedPair();
  pairs.push(p);
  const b = sctpOf(p.b) as unknown as Receiver;
  return { p, b, inject: (c) => b.transport.dtls.dataReceiver(packet(b.localVerificationTag, c)) };
}

/** a sends a message; whether b's SACK for it came back (a's sent queue emptied). */
async function sackedAfterSend(p: Linked): Promise<boolean> {
  const a = sctpOf(p.a) as SctpSender;
  p.dc.send("after");
  // The premise: it was sent (it is in a's sent queue until a SACK covers it) and arrived.
  expect(await until(() => p.received.includes("after"), 5_000)).toBe(true);
  return until(() => a.sentQueue.length === 0 && a.flightSize === 0, 5_000);
}

describe("DATA outside the receive window", () => {
  it("a TSN further ahead than a SACK can report is dropped, and SACKs still go out", async () => {
    const { p, b, inject } = await setUp();
    const last = b.lastReceivedTsn;
    inject(data(last + 70_000, 1, 8));
    await new Promise((r) => setTimeout(r, 50));
    expect([...b.sackMisOrdered]).toEqual([]);
    // Stock werift: every SACK threw (a Gap Ack Block offset of 69 999 in 16 bits).
    expect(await sackedAfterSend(p)).toBe(true);
  });

  it("a peer that skips one TSN gets the window held for it, not unbounded memory", async () => {
    const { b, inject } = await setUp();
    const last = b.lastReceivedTsn;
    // 3 MB behind a gap at last + 1: a receive window of 1 MiB, three times over.
    for (let i = 0; i < 3000; i++) inject(data(last + 2 + i, 1 + i, 1000));
    await until(() => b.sackMisOrdered.size > 0, 2_000);
    await new Promise((r) => setTimeout(r, 100));
    expect(b.sackMisOrdered.size).toBeGreaterThan(0); // the premise: data was held for the gap
    // What is held is the window and at most one chunk past it (stock: all 3 MB).
    expect(WINDOW - b.advertisedRwnd).toBeLessThanOrEqual(WINDOW + 1000);
    expect(b.sackMisOrdered.size).toBeLessThan(3000);
  });

  it("a message that never ends is held up to the window, not without bound", async () => {
    const { b, inject } = await setUp();
    const last = b.lastReceivedTsn;
    // 3 MB of one message, in order, its last fragment never sent (found by the hostile-peer
    // audit too: past the window and past b's max-message-size).
    for (let i = 0; i < 3000; i++) inject(data(last + 1 + i, 0, 1000, i === 0 ? 0x02 : 0x00));
    await new Promise((r) => setTimeout(r, 100));
    expect(b.lastReceivedTsn).not.toBe(last); // the premise: the fragments were taken, in order
    expect(WINDOW - b.advertisedRwnd).toBeLessThanOrEqual(WINDOW + 1000);
  });

  it("the chunk that fills the gap is still accepted with the window used up (no deadlock)", async () => {
    const { b, inject } = await setUp();
    const last = b.lastReceivedTsn;
    for (let i = 0; i < 1200; i++) inject(data(last + 2 + i, 1 + i, 1000));
    await new Promise((r) => setTimeout(r, 100));
    expect(b.advertisedRwnd).toBeLessThanOrEqual(0); // the premise: the window is used up
    const held = b.sackMisOrdered.size;
    inject(data(last + 1, 0, 1000));
    // Everything held behind the gap is delivered, and the window is open again.
    expect(await until(() => b.lastReceivedTsn === (last + 1 + held) >>> 0, 2_000)).toBe(true);
    expect(b.advertisedRwnd).toBe(WINDOW);
  });

  it("a SACK reports a bounded number of gaps, so it can always be sent", async () => {
    const { p, b, inject } = await setUp();
    const last = b.lastReceivedTsn;
    // Every other TSN: 16 400 gaps, more than a SACK's 16-bit length could carry (16 380).
    for (let i = 0; i < 16_400; i++) inject(data(last + 2 + 2 * i, 1 + i, 4));
    await new Promise((r) => setTimeout(r, 100));
    expect(b.sackMisOrdered.size).toBe(16_400); // the premise: all held (16 400 × 4 B)
    expect(await sackedAfterSend(p)).toBe(true);
  });
});
