/**
 * patches/werift+0.25.2.patch, SCTP receive side (docs/werift-patches.md, patches 9 and 10):
 * delayed SACK per RFC 9260 §6.2, and TSNs ordered as serial numbers (RFC 9260 §1.6) rather than
 * sorted as strings. The SACK test uses real PeerConnections on loopback UDP; the TSN tests drive
 * a detached werift SCTP association directly.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type Linked, linkedPair, messages, type Sctp, sctpOf, until } from "./sctp-pair.ts";

const SACK = 3;
const pairs: Linked[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.close()));
});

it("acknowledges every second packet, not every DATA chunk", async () => {
  const p = await linkedPair();
  pairs.push(p);
  const receiver = sctpOf(p.b);
  let sacks = 0;
  const send = receiver.sendChunk.bind(receiver);
  receiver.sendChunk = (chunk) => {
    if (chunk.type === SACK) sacks++;
    return send(chunk);
  };
  // 1 KiB each: one DATA chunk, so one packet, per message. In rounds of 20, so that no burst
  // overflows the loopback socket buffer (a loss is rightly acknowledged at once).
  const sent = messages(400, 1024);
  for (let i = 0; i < sent.length; i += 20) {
    for (const m of sent.slice(i, i + 20)) p.dc.send(m);
    expect(await until(() => p.received.length === i + 20, 10_000)).toBe(true);
  }
  expect(p.received).toEqual(sent);
  expect(sacks).toBeGreaterThan(0);
  // Stock werift: one per packet (400).
  expect(sacks).toBeLessThanOrEqual(sent.length * 0.6);
});

/** A fresh association of werift's own SCTP class, on a transport that goes nowhere. */
async function detached(): Promise<Sctp & { sent: { gaps?: [number, number][] }[] }> {
  const p = await linkedPair();
  pairs.push(p);
  const Ctor = sctpOf(p.a).constructor as new (t: object) => Sctp;
  const sctp = new Ctor({ send: async () => {} }) as Sctp & {
    sent: { gaps?: [number, number][] }[];
  };
  sctp.sent = [];
  sctp.sendChunk = async (chunk) => void sctp.sent.push(chunk);
  return sctp;
}

describe("TSNs as serial numbers", () => {
  it("moves the cumulative TSN across a power of ten when a chunk arrives late", async () => {
    const s = await detached();
    s.lastReceivedTsn = 98;
    s.markReceived(100);
    s.markReceived(99);
    expect(s.lastReceivedTsn).toBe(100);
    expect([...s.sackMisOrdered]).toEqual([]);
  });

  it("moves the cumulative TSN across the 2^32 wrap", async () => {
    const s = await detached();
    s.lastReceivedTsn = 2 ** 32 - 2;
    s.markReceived(0);
    s.markReceived(2 ** 32 - 1);
    expect(s.lastReceivedTsn).toBe(0);
  });

  it("reports gap blocks in serial order, with offsets modulo 2^32", async () => {
    const s = await detached();
    s.lastReceivedTsn = 95;
    for (const tsn of [100, 99, 97]) s.markReceived(tsn);
    s.sackNeeded = true;
    await s.sendSack();
    expect(s.sent.at(-1)?.gaps).toEqual([
      [2, 2],
      [4, 5],
    ]);

    const w = await detached();
    w.lastReceivedTsn = 2 ** 32 - 2;
    w.markReceived(0);
    w.markReceived(2);
    w.sackNeeded = true;
    await w.sendSack();
    expect(w.sent.at(-1)?.gaps).toEqual([
      [2, 2],
      [4, 4],
    ]);
  });
});
