/**
 * patches/werift+0.25.2.patch, patch 19 (docs/werift-patches.md): the upper layer turns SCTP
 * HEARTBEAT on or off (RFC 9260 §11.1 "Change Heartbeat"). roverlink turns it off: ICE consent
 * freshness already checks the path, and a heartbeat every ~31 s doubled an idle link's packets.
 */
import { afterEach, expect, it } from "vitest";
import { type Linked, linkedPair, type Sctp, sctpOf, sleep, until } from "./sctp-pair.ts";

const HEARTBEAT = 4;
const pairs: Linked[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.close()));
});

type Switchable = Sctp & { changeHeartbeat(enabled: boolean, interval?: number): void };

it("changeHeartbeat turns HEARTBEAT chunks on (with an interval) and off", async () => {
  const p = await linkedPair();
  pairs.push(p);
  const sctp = sctpOf(p.a) as Switchable;
  let beats = 0;
  const send = sctp.sendChunk.bind(sctp);
  sctp.sendChunk = (chunk) => {
    if (chunk.type === HEARTBEAT) beats++;
    return send(chunk);
  };
  // On, every 0.1 s (+ RTO): heartbeats flow; the premise of the second half.
  sctp.changeHeartbeat(true, 0.1);
  expect(await until(() => beats >= 2, 8_000)).toBe(true);
  sctp.changeHeartbeat(false);
  const before = beats;
  await sleep(2_500);
  expect(beats).toBe(before);
  // The association still carries data.
  p.dc.send("after");
  expect(await until(() => p.received.includes("after"), 5_000)).toBe(true);
});
