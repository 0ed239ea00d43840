/**
 * patches/werift+0.25.2.patch, patch 28 (docs/werift-patches.md): the RTO around a stream reset
 * (RFC 6525). A completed reset no longer sets the RTO to RTO.Initial (3 s): it returns to the RTO
 * of the measured RTT when the Re-configuration Timer had backed it off, and leaves it alone
 * otherwise; the timer backs off as T3-rtx does (RTO × 2 up to RTO.Max, RFC 9260 §6.3.3 E2), not
 * by Math.ceil(RTO × 1.5). The first test uses real PeerConnections on loopback UDP; the others
 * drive a detached association.
 */
import { afterEach, expect, it } from "vitest";
import {
  detachedSender,
  type Linked,
  linkedPair,
  resetsSettled,
  type SctpSender,
  sctpOf,
  sleep,
  until,
} from "./sctp-pair.ts";

const pairs: Linked[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.close()));
});

type Reconfig = SctpSender & {
  srtt?: number;
  rttvar?: number;
  reconfigQueue: number[];
  reconfigRequest?: { requestSequence: number };
  transmitReconfigRequest(): Promise<void>;
  timerReconfigHandleExpired(): Promise<void>;
  timerReconfigCancel(): void;
  timerReconfigHandle?: ReturnType<typeof setTimeout>;
  receiveReconfigParam(param: {
    type: number;
    responseSequence: number;
    result: number;
  }): Promise<void>;
  sendChunks(chunks: unknown[]): Promise<void>;
};

/** srtt + 4 rttvar within the 400 ms floor (patch 11) and RTO.Max. */
const measured = (s: Reconfig) =>
  Math.max(0.4, Math.min((s.srtt ?? Number.NaN) + 4 * (s.rttvar ?? Number.NaN), 60));

it("retransmits a DATA chunk lost right after a data channel close at the measured RTO, not 3 s", async () => {
  const p = await linkedPair();
  pairs.push(p);
  const sa = sctpOf(p.a) as Reconfig;
  // Some traffic first, so that a has measured the RTT.
  for (let i = 0; i < 5; i++) {
    p.dc.send(`before ${i}`);
    await sleep(30);
  }
  expect(await until(() => p.received.length === 5, 3_000)).toBe(true);
  expect(sa.srtt).toBeDefined();
  // A second channel, closed: a's reset request is answered "performed", then b's own.
  const x = p.a.createDataChannel("x");
  await new Promise<void>((resolve) => x.stateChanged.subscribe((s) => s === "open" && resolve()));
  x.close();
  expect(await until(() => x.readyState === "closed" && resetsSettled(p), 5_000)).toBe(true);
  await sleep(100);
  // Stock werift: 3 (RTO.Initial) here.
  expect(sa.rto).toBe(measured(sa));
  // The next message's packet is lost; nothing follows it, so only T3 can resend it.
  const sendChunks = sa.sendChunks.bind(sa);
  let dropped = 0;
  sa.sendChunks = async (chunks) => {
    if (dropped === 0 && (chunks as { type: number }[]).some((c) => c.type === 0)) {
      dropped++;
      return;
    }
    await sendChunks(chunks);
  };
  const start = performance.now();
  p.dc.send("after the close");
  expect(await until(() => p.received.includes("after the close"), 5_000)).toBe(true);
  const elapsed = (performance.now() - start) / 1000;
  sa.sendChunks = sendChunks;
  expect(dropped).toBe(1);
  // ~0.4 s with the patch (the floor, on loopback); 3 s without.
  expect(elapsed).toBeLessThan(1.5);
});

/** A detached association with srtt 0.2 s, rttvar 0.1 s (RTO 0.6 s) and a reset request out. */
async function requesting(): Promise<Reconfig> {
  const { sctp } = await detachedSender(pairs);
  const s = sctp as Reconfig;
  s.updateRto(0.2);
  expect(s.rto).toBeCloseTo(0.6, 9);
  s.associationState = 4; // ESTABLISHED
  s.reconfigQueue.push(1);
  await s.transmitReconfigRequest();
  expect(s.reconfigRequest).toBeDefined();
  return s;
}

/** The peer's "Success - Performed" for the request out (RFC 6525 result 1). */
const performed = (s: Reconfig) =>
  s.receiveReconfigParam({
    type: 16, // Re-configuration Response Parameter
    responseSequence: s.reconfigRequest?.requestSequence ?? -1,
    result: 1,
  });

it("leaves the measured RTO alone when a reset completes without a timeout", async () => {
  const s = await requesting();
  await performed(s);
  expect(s.reconfigRequest).toBeUndefined();
  expect(s.rto).toBeCloseTo(0.6, 9); // stock: 3
});

/** The Re-configuration Timer runs out now (its pending timeout cleared, not cancelled). */
async function expire(s: Reconfig) {
  clearTimeout(s.timerReconfigHandle);
  s.timerReconfigHandle = undefined;
  await s.timerReconfigHandleExpired();
}

it("backs off like T3-rtx on each Re-configuration Timer expiry, and undoes it when the reset completes", async () => {
  const s = await requesting();
  const rtos: number[] = [];
  for (let i = 0; i < 2; i++) {
    await expire(s);
    rtos.push(Number(s.rto.toFixed(6)));
  }
  expect(rtos).toEqual([1.2, 2.4]); // stock: [1, 2]
  await performed(s); // cancels the timer
  expect(s.reconfigRequest).toBeUndefined();
  expect(s.rto).toBeCloseTo(0.6, 9); // stock: 3
});

it("caps the Re-configuration Timer's backoff at RTO.Max", async () => {
  const s = await requesting();
  s.rto = 50;
  await expire(s);
  s.timerReconfigCancel();
  expect(s.rto).toBe(60); // stock: 75
});
