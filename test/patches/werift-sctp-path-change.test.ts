/**
 * patches/werift+0.25.2.patch, SCTP path change (docs/werift-patches.md, patch 23): when an ICE
 * restart or a switch to a backup pair moves the association to a new path, what is outstanding
 * goes out at once with the RTO of the measured RTT and the initial window (RFC 9260 §7.2.1, as
 * for a new destination), not as a retransmission timeout: no doubled RTO, no one-packet window,
 * no halved ssthresh. A second report of the same change (werift's `connect()` and the link both
 * report a restart) resends nothing twice. Drives a detached werift SCTP association through its
 * real send, transmit and SACK code.
 */
import { afterEach, expect, it } from "vitest";
import { detachedSender, fillFlight, type Linked, type SctpSender } from "./sctp-pair.ts";

const pairs: Linked[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.close()));
});

const settle = () => new Promise((r) => setTimeout(r, 5));

/** RFC 9260 §7.2.1's initial window for the association's MTU. */
const initialWindow = (s: SctpSender) => Math.min(4 * s.mtu, Math.max(2 * s.mtu, 4404));

/** A sender with an RTT sample (RTO at its floor) and `n` full chunks in flight. */
async function inFlight(n: number): Promise<{ sctp: SctpSender; sent: number[]; first: number }> {
  const { sctp, sent } = await detachedSender(pairs);
  sctp.updateRto(0.01);
  const first = await fillFlight(sctp, sent, n);
  sent.length = 0;
  return { sctp, sent, first };
}

it("resends at once with the measured RTO and the initial window, not a timeout's", async () => {
  const { sctp, sent, first } = await inFlight(20);
  const measured = sctp.rto;
  const ssthresh = sctp.ssthresh;
  // The dead path's timer had backed off twice before the new path was found.
  sctp.rto = measured * 4;
  sctp.pathChanged();
  await settle();
  sctp.timer3Cancel();
  // Without patch 23 (a T3 expiry): RTO doubled again, one-packet window, ssthresh halved.
  expect({ rto: sctp.rto, cwnd: sctp.cwnd, ssthresh: sctp.ssthresh }).toEqual({
    rto: measured,
    cwnd: initialWindow(sctp),
    ssthresh,
  });
  // A window's worth goes at once, oldest first (without the patch: one chunk).
  expect(sent.length).toBeGreaterThanOrEqual(Math.floor(initialWindow(sctp) / sctp.maxPayloadSize));
  expect(sent[0]).toBe(first);
});

it("resends each outstanding chunk once when the same change is reported twice", async () => {
  const { sctp, sent, first } = await inFlight(3);
  const measured = sctp.rto;
  sctp.pathChanged();
  sctp.pathChanged();
  await settle();
  sctp.timer3Cancel();
  // Without patch 23: the second report marked the first one's resends again (each TSN twice)
  // and doubled the RTO twice.
  expect(sent).toEqual([first, first + 1, first + 2].map((t) => t >>> 0));
  expect(sctp.rto).toBe(measured);
});

it("a change after the peer acknowledged the previous one's resends is a new change", async () => {
  const { sctp, sent, first } = await inFlight(3);
  sctp.pathChanged();
  await settle();
  // The peer got the first resend only; then the path changes again.
  await sctp.receiveSackChunk({
    cumulativeTsn: first >>> 0,
    advertisedRwnd: 1 << 20,
    gaps: [],
    duplicates: [],
  });
  sent.length = 0;
  sctp.pathChanged();
  await settle();
  sctp.timer3Cancel();
  expect(sent).toEqual([first + 1, first + 2].map((t) => t >>> 0));
});
