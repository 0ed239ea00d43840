/**
 * patches/werift+0.25.2.patch, SCTP flight size (docs/werift-patches.md, patch 22): flightSize
 * counts each outstanding chunk once, across a retransmission timeout or a path change (patch 3)
 * that marks everything while SACKs sent before it are still on their way. Without it, a forwarded
 * TCP transfer across an ICE restart stopped for good: flightSize stayed at the congestion window
 * with nothing outstanding. Drives a detached werift SCTP association through its real send, SACK
 * and transmit code, with the peer's SACKs written by hand.
 */
import { afterEach, expect, it } from "vitest";
import { detachedSender, fillFlight, type Linked, type SctpSender } from "./sctp-pair.ts";

const pairs: Linked[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.close()));
});

type Sender = SctpSender;
const detached = () => detachedSender(pairs);

const settle = () => new Promise((r) => setTimeout(r, 5));

/** Bytes of the chunks the peer has not acknowledged and that are not waiting to be resent. */
const outstanding = (s: Sender) =>
  s.sentQueue.reduce((n, c) => n + (c.acked || c.retransmit ? 0 : c.bookSize), 0);

/**
 * `n` full-size chunks in flight; the path changes; the peer lost the first `lost` of them and
 * got the rest. Its SACK sent before the change arrives after it (cumulative TSN below the first
 * chunk, one gap block over the rest), then one SACK per retransmission that reaches it.
 */
async function pathChangeWithLateSack(n: number, lost: number) {
  const { sctp, sent } = await detached();
  const first = await fillFlight(sctp, sent, n);
  expect(sent).toHaveLength(n);
  expect(sctp.flightSize).toBe(n * sctp.maxPayloadSize);
  sent.length = 0;

  sctp.pathChanged();
  await settle();
  const sack = (cum: number, gaps: [number, number][]) =>
    sctp.receiveSackChunk({
      cumulativeTsn: cum >>> 0,
      advertisedRwnd: 1 << 20,
      gaps,
      duplicates: [],
    });
  const gapAcked = new Set<number>();
  for (let i = lost; i < n; i++) gapAcked.add((first + i) >>> 0);
  await sack(first - 1, [[lost + 1, n]]);
  await settle();
  const afterGapSack = { flight: sctp.flightSize, outstanding: outstanding(sctp) };
  // The retransmissions of the lost chunks arrive one by one; the last one completes the lot.
  const flights: [number, number][] = [];
  for (let i = 0; i < lost; i++) {
    await sack(first + (i === lost - 1 ? n - 1 : i), i === lost - 1 ? [] : [[lost - i, n - 1 - i]]);
    await settle();
    flights.push([sctp.flightSize, outstanding(sctp)]);
  }
  return { sctp, sent, gapAcked, afterGapSack, flights };
}

it("does not resend a chunk that a gap block acknowledged after a path change marked it", async () => {
  const { sctp, sent, gapAcked } = await pathChangeWithLateSack(40, 6);
  sctp.timer3Cancel();
  // Without patch 22: resent what the peer already had (and counted it in flight for good).
  expect(sent.filter((t) => gapAcked.has(t))).toEqual([]);
});

it("keeps flightSize equal to what is outstanding through the late SACKs", async () => {
  const { sctp, afterGapSack, flights } = await pathChangeWithLateSack(40, 6);
  sctp.timer3Cancel();
  // Without patch 22: subtracted chunks it no longer counted (clamped at 0), kept resent ones.
  expect(afterGapSack.flight).toBe(afterGapSack.outstanding);
  for (const [flight, out] of flights) expect(flight).toBe(out);
});

it("has nothing in flight once everything is acknowledged, and sends the next message at once", async () => {
  const { sctp, sent } = await pathChangeWithLateSack(40, 6);
  expect(sctp.sentQueue).toHaveLength(0);
  // Nothing outstanding, so no timer runs and no SACK will come: the next message must go now.
  sent.length = 0;
  const delivered = sctp.send(1, 53, Buffer.alloc(100));
  await settle();
  sctp.timer3Cancel();
  // Without patch 22: resent gap-acknowledged chunks stay in flightSize; once they reach the
  // window, nothing is sent again (no timer runs, no SACK comes): the forward test's stall.
  expect({ sent: sent.length, flightSize: sctp.flightSize }).toEqual({ sent: 1, flightSize: 100 });
  await delivered;
});
