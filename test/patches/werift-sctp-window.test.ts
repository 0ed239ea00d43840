/**
 * patches/werift+0.25.2.patch, SCTP sender (docs/werift-patches.md, patches 15 and 16): the
 * congestion window of RFC 9260 §7.2.1 (initial window, slow start from the first packet), and no
 * walk of the sent queue on a transmit pass when nothing in it awaits retransmission. Drives a
 * detached werift SCTP association.
 */
import { afterEach, describe, expect, it } from "vitest";
import { detachedSender, type Linked, type SctpSender } from "./sctp-pair.ts";

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
  sentTime: number;
  misses: number;
  acked: boolean;
  retransmit: boolean;
  userData: Buffer;
}
/** The sender with the fields these tests set up by hand (ssthresh: stock werift leaves it unset). */
type Sender = Omit<SctpSender, "ssthresh" | "sentQueue"> & {
  ssthresh: number | undefined;
  lastSackedTsn: number;
  sentQueue: Chunk[];
  timer3Expired(): void;
};

const detached = async () =>
  (await detachedSender(pairs)) as unknown as { sctp: Sender; sent: number[] };

const chunk = (tsn: number, bytes: number): Chunk => ({
  type: 0,
  tsn,
  flags: 3,
  bookSize: bytes,
  sentCount: 1,
  sentTime: Date.now() / 1000,
  misses: 0,
  acked: false,
  retransmit: false,
  userData: Buffer.alloc(bytes),
});

describe("congestion window per RFC 9260 §7.2.1", () => {
  it("starts at min(4·MTU, max(2·MTU, 4404 B))", async () => {
    const { sctp } = await detached();
    expect(sctp.cwnd).toBe(Math.min(4 * sctp.mtu, Math.max(2 * sctp.mtu, 4404)));
  });

  it("is in slow start from the first packet: a SACK of a full window adds an MTU's payload", async () => {
    const { sctp } = await detached();
    const start = sctp.cwnd;
    // A full window in flight: four chunks, TSN 10-13.
    const size = Math.ceil(start / 4);
    sctp.lastSackedTsn = 9;
    sctp.sentQueue = [10, 11, 12, 13].map((t) => chunk(t, size));
    sctp.flightSize = 4 * size;
    await sctp.receiveSackChunk({
      cumulativeTsn: 11,
      advertisedRwnd: 1 << 20,
      gaps: [],
      duplicates: [],
    });
    sctp.timer3Cancel();
    expect(sctp.ssthresh).toBeGreaterThan(start);
    // Stock werift: ssthresh undefined, so congestion avoidance: no growth until a whole window
    // is acknowledged.
    expect(sctp.cwnd).toBe(start + Math.min(2 * size, sctp.maxPayloadSize));
  });
});

describe("retransmission walk", () => {
  it("does not walk the sent queue when nothing awaits retransmission", async () => {
    const { sctp, sent } = await detached();
    const queue = Array.from({ length: 500 }, (_, i) => chunk(100 + i, 1000));
    let walks = 0;
    // A walk is an iteration (stock werift, patch 16) or a filter of the marked chunks (patch 32).
    const iterate = Array.prototype[Symbol.iterator];
    Object.defineProperty(queue, Symbol.iterator, {
      value(this: Chunk[]) {
        walks++;
        return iterate.call(this);
      },
    });
    const filter = Array.prototype.filter;
    Object.defineProperty(queue, "filter", {
      value(this: Chunk[], ...args: Parameters<Chunk[]["filter"]>) {
        walks++;
        return filter.apply(this, args);
      },
    });
    sctp.sentQueue = queue;
    sctp.flightSize = 500_000;
    sctp.cwnd = 1_000_000;
    for (let i = 0; i < 10; i++) await sctp.transmit();
    expect(walks).toBe(0); // stock werift: one walk per pass
    // A timeout still finds what to resend.
    sctp.timer3Expired();
    await new Promise((r) => setTimeout(r, 20));
    sctp.timer3Cancel();
    expect(walks).toBeGreaterThan(0);
    expect(sent[0]).toBe(100);
  });
});

describe("SACK with gap blocks", () => {
  it("acknowledges by gap block without a set of every TSN the blocks cover", async () => {
    const { sctp } = await detached();
    // 400 chunks in flight (TSN 10-409); the peer lost TSN 10 and gets the rest.
    sctp.lastSackedTsn = 9;
    sctp.sentQueue = Array.from({ length: 400 }, (_, i) => chunk(10 + i, 1000));
    sctp.flightSize = 400_000;
    sctp.cwnd = 1_000_000;
    const add = Set.prototype.add;
    let added = 0;
    Set.prototype.add = function (this: Set<unknown>, v: unknown) {
      added++;
      return add.call(this, v);
    };
    try {
      // Three SACKs, each acknowledging more above the hole.
      for (const end of [200, 300, 400])
        await sctp.receiveSackChunk({
          cumulativeTsn: 9,
          advertisedRwnd: 1 << 20,
          gaps: [[2, end]],
          duplicates: [],
        });
    } finally {
      Set.prototype.add = add;
      sctp.timer3Cancel();
    }
    expect(sctp.sentQueue.filter((c) => c.acked)).toHaveLength(399);
    // Three SACKs missing TSN 10: it is marked for fast retransmission.
    expect(sctp.sentQueue[0]?.acked).toBe(false);
    expect(sctp.sentQueue[0]?.sentCount).toBe(2);
    expect(added).toBeLessThan(10); // stock werift: 199 + 299 + 399
  });
});
