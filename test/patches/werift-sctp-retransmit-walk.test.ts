/**
 * patches/werift+0.25.2.patch, the retransmission walk (docs/werift-patches.md, patch 32): every
 * chunk marked for retransmission is resent in the pass that finds it, even when a SACK handled
 * while a resend awaits its send shifts acknowledged chunks off the sent queue. Drives a detached
 * werift SCTP association: its packets go nowhere, the peer's SACKs are written by hand.
 */
import { afterEach, expect, it } from "vitest";
import { detachedSender, fillFlight, type Linked, type SentChunk } from "./sctp-pair.ts";

const pairs: Linked[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.close()));
});

const RWND = 1 << 20;
type Gaps = [number, number][];

/**
 * 23 chunks in flight; chunks 2, 4 and 6 lost: three SACKs, each acknowledging a later chunk by a
 * gap block, mark them (three miss indications, RFC 9260 §7.2.4). While the first resend (chunk
 * 2) awaits its send, the SACK `during` (cumulative chunk, gap offsets from it) is handled. Chunk
 * numbers are offsets from the first TSN; so are the TSNs returned.
 */
async function walkWithSackDuring(during: { cumulative: number; gaps: Gaps }) {
  const { sctp, sent } = await detachedSender(pairs);
  const first = await fillFlight(sctp, sent, 23);
  const tsn = (i: number) => (first + i) >>> 0;
  const sack = (cumulative: number, gaps: Gaps) =>
    sctp.receiveSackChunk({
      cumulativeTsn: tsn(cumulative),
      advertisedRwnd: RWND,
      gaps,
      duplicates: [],
    });
  const resent: number[] = [];
  const send = sctp.sendChunk.bind(sctp);
  let late: Promise<void> | undefined;
  sctp.sendChunk = async (c) => {
    for (const x of (Array.isArray(c) ? c : [c]) as SentChunk[]) {
      if (x.type !== 0) continue;
      resent.push((x.tsn - first) >>> 0);
      if (x.tsn === tsn(2) && !late) late = sack(during.cumulative, during.gaps);
    }
    await send(c);
    await new Promise((r) => setImmediate(r)); // a DTLS record's send yields, as over TCP
  };
  for (const last of [19, 20, 21])
    await sack(1, [
      [2, 2],
      [4, 4],
      [6, last],
    ]);
  await late;
  await new Promise((r) => setTimeout(r, 50));
  sctp.timer3Cancel();
  // The premise: the SACK came in the middle of the walk.
  expect(late).toBeDefined();
  return { resent, front: ((sctp.sentQueue[0]?.tsn ?? first) - first) >>> 0 };
}

it("resends every lost chunk when a SACK shifts the sent queue during the walk", async () => {
  // Chunks 2 and 3 acknowledged cumulatively (the originals came late): shifted off the front.
  const { resent, front } = await walkWithSackDuring({
    cumulative: 3,
    gaps: [
      [2, 2],
      [4, 19],
    ],
  });
  expect(front).toBe(4);
  // Without the patch the walk's iterator skipped chunk 4 (it waited for a T3 expiry).
  expect(resent).toEqual([2, 4, 6]);
});

it("does not resend a marked chunk the peer acknowledged during the walk", async () => {
  // Chunk 4 reaches the peer after all: a gap block acknowledges it before its resend.
  const { resent } = await walkWithSackDuring({
    cumulative: 1,
    gaps: [
      [2, 2],
      [3, 3],
      [4, 4],
      [6, 21],
    ],
  });
  expect(resent).toEqual([2, 6]);
});
