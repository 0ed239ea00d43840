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

it("resends every lost chunk when a SACK shifts the sent queue during the walk", async () => {
  const { sctp, sent } = await detachedSender(pairs);
  const first = await fillFlight(sctp, sent, 23);
  const tsn = (i: number) => (first + i) >>> 0;
  // Chunks 2, 4 and 6 lost: three SACKs, each acknowledging a later chunk by a gap block, mark
  // them (three miss indications, RFC 9260 §7.2.4). Gap offsets count from the cumulative TSN.
  const sack = (cumulative: number, gaps: [number, number][]) =>
    sctp.receiveSackChunk({
      cumulativeTsn: tsn(cumulative),
      advertisedRwnd: RWND,
      gaps,
      duplicates: [],
    });
  // While the first resend (chunk 2) awaits its send, a SACK arrives that acknowledges chunks 2
  // and 3 cumulatively (the originals came late) and shifts them off the queue's front.
  const resent: number[] = [];
  const send = sctp.sendChunk.bind(sctp);
  let late: Promise<void> | undefined;
  sctp.sendChunk = async (c) => {
    for (const x of (Array.isArray(c) ? c : [c]) as SentChunk[]) {
      if (x.type !== 0) continue;
      resent.push(x.tsn);
      if (x.tsn === tsn(2) && !late)
        late = sack(3, [
          [2, 2],
          [4, 19],
        ]);
    }
    await send(c);
    await new Promise((r) => setImmediate(r)); // a DTLS record's send yields, as the real one does
  };
  await sack(1, [
    [2, 2],
    [4, 4],
    [6, 19],
  ]);
  await sack(1, [
    [2, 2],
    [4, 4],
    [6, 20],
  ]);
  await sack(1, [
    [2, 2],
    [4, 4],
    [6, 21],
  ]);
  await late;
  await new Promise((r) => setTimeout(r, 50));
  sctp.timer3Cancel();
  // The premise: the late SACK came in the middle of the walk and took chunks off the queue.
  expect(late).toBeDefined();
  expect(sctp.sentQueue[0]?.tsn).toBe(tsn(4));
  // Without the patch the walk's iterator skipped chunk 4 (it waited for a T3 expiry).
  expect(resent).toEqual([tsn(2), tsn(4), tsn(6)]);
});

it("does not resend a marked chunk the peer acknowledged during the walk", async () => {
  const { sctp, sent } = await detachedSender(pairs);
  const first = await fillFlight(sctp, sent, 23);
  const tsn = (i: number) => (first + i) >>> 0;
  const sack = (cumulative: number, gaps: [number, number][]) =>
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
      resent.push(x.tsn);
      // Chunk 4 reaches the peer after all: a gap block acknowledges it before its resend.
      if (x.tsn === tsn(2) && !late)
        late = sack(1, [
          [2, 2],
          [3, 3],
          [4, 4],
          [6, 21],
        ]);
    }
    await send(c);
    await new Promise((r) => setImmediate(r));
  };
  await sack(1, [
    [2, 2],
    [4, 4],
    [6, 19],
  ]);
  await sack(1, [
    [2, 2],
    [4, 4],
    [6, 20],
  ]);
  await sack(1, [
    [2, 2],
    [4, 4],
    [6, 21],
  ]);
  await late;
  await new Promise((r) => setTimeout(r, 50));
  sctp.timer3Cancel();
  expect(resent).toEqual([tsn(2), tsn(6)]);
});
