/**
 * patches/werift+0.25.2.patch, SCTP retransmission timer (docs/werift-patches.md, patch 11): a
 * 400 ms floor instead of 1 s (above the peer's 200 ms delayed SACK), backoff on expiry (RFC 9260 §6.3.3 E2), and no retransmission of
 * what the peer acknowledged by a gap block. Drives a detached werift SCTP association.
 */
import { afterEach, expect, it } from "vitest";
import { type Linked, linkedPair, type Sctp, sctpOf } from "./sctp-pair.ts";

const pairs: Linked[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.close()));
});

interface Chunk {
  type: number;
  tsn: number;
  flags: number;
  bookSize: number;
  sentCount: number;
  misses: number;
  acked: boolean;
  retransmit: boolean;
  userData: Buffer;
}
type Timed = Sctp & {
  rto: number;
  remotePort: number;
  sentQueue: Chunk[];
  flightSize: number;
  updateRto(seconds: number): void;
  timer3Expired(): void;
  timer3Cancel(): void;
};

async function detached(): Promise<{ sctp: Timed; sent: Chunk[] }> {
  const p = await linkedPair();
  pairs.push(p);
  const Ctor = sctpOf(p.a).constructor as new (t: object) => Timed;
  const sctp = new Ctor({ send: async () => {} });
  const sent: Chunk[] = [];
  sctp.remotePort = 5000;
  sctp.sendChunk = async (c) => void sent.push(c as unknown as Chunk);
  return { sctp, sent };
}

const chunk = (tsn: number, acked: boolean): Chunk => ({
  type: 0,
  tsn,
  flags: 3,
  bookSize: 100,
  sentCount: 1,
  misses: 0,
  acked,
  retransmit: false,
  userData: Buffer.alloc(100),
});

it("keeps the RTO at 400 ms on a fast path, not 1 s", async () => {
  const { sctp } = await detached();
  for (let i = 0; i < 20; i++) sctp.updateRto(0.001);
  expect(sctp.rto).toBe(0.4);
});

it("doubles the RTO on expiry and resends only what no gap block acknowledged", async () => {
  const { sctp, sent } = await detached();
  sctp.rto = 0.4;
  sctp.sentQueue = [chunk(10, false), chunk(11, true), chunk(12, false)];
  sctp.flightSize = 200;
  sctp.timer3Expired();
  await new Promise((r) => setTimeout(r, 20));
  sctp.timer3Cancel();
  expect(sctp.rto).toBe(0.8);
  expect(sent.map((c) => c.tsn)).toEqual([10, 12]);
});

it("does not time out a lone message waiting for its delayed SACK", async () => {
  const p = await linkedPair();
  pairs.push(p);
  const sctp = sctpOf(p.a) as Timed;
  let expired = 0;
  const original = sctp.timer3Expired;
  sctp.timer3Expired = () => {
    expired++;
    original();
  };
  // One message every 300 ms: each is the only packet in flight, acknowledged after 200 ms.
  for (let i = 0; i < 6; i++) {
    p.dc.send(`lone ${i}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  expect(p.received).toEqual(Array.from({ length: 6 }, (_, i) => `lone ${i}`));
  expect(expired).toBe(0);
});
