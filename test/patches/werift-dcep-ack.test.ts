/**
 * patches/werift+0.25.2.patch, DCEP part: a DATA_CHANNEL_ACK for a stream the receiver does not
 * have (its channel closed before the ACK came, or a misbehaving peer) used to throw inside
 * werift's SCTP receive path, in a promise nobody awaits: an unhandled rejection, which ends a
 * Node process. Patched, it is ignored. Real PeerConnections on loopback UDP, negotiated in memory.
 */
import { afterEach, expect, it } from "vitest";
import { type Linked, linkedPair, sctpOf, sleep, until } from "./sctp-pair.ts";

let pair: Linked | undefined;
afterEach(async () => {
  await pair?.close();
  pair = undefined;
});

it("ignores a DATA_CHANNEL_ACK for a stream it does not have, and keeps the association", async () => {
  pair = await linkedPair();
  const rejections: unknown[] = [];
  const onRejection = (e: unknown) => rejections.push(e);
  process.on("unhandledRejection", onRejection);
  try {
    // DCEP (PPID 50) message type 0x02 = DATA_CHANNEL_ACK, on a stream b never opened.
    await sctpOf(pair.a).send(777, 50, Buffer.from([0x02]));
    await sleep(300);
    expect(rejections.map(String)).toEqual([]);
    // The association still carries data.
    pair.dc.send("after");
    expect(await until(() => pair?.received.includes("after") ?? false, 5_000)).toBe(true);
  } finally {
    process.off("unhandledRejection", onRejection);
  }
});
