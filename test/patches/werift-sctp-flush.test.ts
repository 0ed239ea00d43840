/**
 * patches/werift+0.25.2.patch, SCTP send path (docs/werift-patches.md, patch 8): one flush loop
 * hands data-channel messages to SCTP, each SCTP send resolves when its own chunks are on the
 * wire, and bufferedAmount falls as they go. Stock werift made every queued message wait for the
 * whole outbound queue (one `flush` waiter each, removed by Array.filter: O(N^2)) and lowered
 * bufferedAmount only once everything was sent. Real PeerConnections on loopback UDP.
 */
import { afterEach, expect, it } from "vitest";
import { type Linked, linkedPair, messages, sctpOf, sleep, until } from "./sctp-pair.ts";

const pairs: Linked[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.close()));
});

it("queues 2000 messages without a flush waiter per message, and delivers them in order", async () => {
  const p = await linkedPair();
  pairs.push(p);
  const sctp = sctpOf(p.a);
  const sent = messages(2000, 1024);
  let maxWaiters = 0;
  const sample = setInterval(() => {
    maxWaiters = Math.max(maxWaiters, sctp.flush.event.stack.length);
  }, 1);
  try {
    for (const m of sent) p.dc.send(m);
    await sleep(300);
    expect(maxWaiters).toBe(0);
    expect(await until(() => p.received.length === sent.length, 30_000)).toBe(true);
  } finally {
    clearInterval(sample);
  }
  expect(p.received).toEqual(sent);
});

it("lowers bufferedAmount per message as it goes on the wire, not once everything is sent", async () => {
  const p = await linkedPair();
  pairs.push(p);
  // The sender hears nothing back (no SACK): only the initial congestion window goes out.
  sctpOf(p.a).handleData = async () => {};
  for (const m of messages(10, 1024)) p.dc.send(m);
  await sleep(200);
  const left = p.dc.bufferedAmount;
  expect(left).toBeGreaterThan(0);
  expect(left).toBeLessThan(10 * 1024);
  expect(left % 1024).toBe(0);
});

it("fires bufferedamountlow while SCTP still has data to send, so a sender can refill in time", async () => {
  const p = await linkedPair();
  pairs.push(p);
  const sctp = sctpOf(p.a);
  p.dc.bufferedAmountLowThreshold = 64 * 1024;
  const queuedAtLow: number[] = [];
  p.dc.bufferedAmountLow.subscribe(() => queuedAtLow.push(sctp.outboundQueue.length));
  const sent = messages(1000, 1024);
  for (const m of sent) p.dc.send(m);
  expect(await until(() => p.received.length === sent.length, 60_000)).toBe(true);
  expect(queuedAtLow.length).toBeGreaterThan(0);
  expect(queuedAtLow[0]).toBeGreaterThan(0);
  expect(p.received).toEqual(sent);
});
