/**
 * patches/werift+0.25.2.patch, patch 29 (docs/werift-patches.md): an SCTP packet that werift's
 * parser does not expect, from the peer at the other end of a data channel link, must cost that
 * packet, not the process. Stock werift threw from `parsePacket2` inside the async `handleData`,
 * which the DTLS transport's `onData` called without a catch: an unhandled rejection, and Node
 * ended the process (a chunk type it does not know, RFC 4820's PAD chunk among them, an INIT
 * bundled with another chunk, a DATA chunk too short for its header). A chunk or parameter of
 * length 0 never moved the parser on: the event loop hung while memory grew to the heap limit.
 * Each packet goes in where the peer's would, from the DTLS transport, with a correct
 * CRC-32c and verification tag, and afterwards the link still carries data.
 */

import { afterEach, describe, expect, it } from "vitest";
import { type Linked, linkedPair, sctpPacket as packet, sctpOf, until } from "./sctp-pair.ts";

const pairs: Linked[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.close()));
});

/** A chunk: type, flags, length (as given, or the true one), body, padded to 4 bytes. */
function chunk(type: number, body: Buffer, length = 4 + body.length): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt8(type, 0);
  head.writeUInt16BE(length, 2);
  const pad = Buffer.alloc((4 - (body.length % 4)) % 4);
  return Buffer.concat([head, body, pad]);
}

/** b's association, and the DTLS transport's receiver it set (BridgeDtls's `onData` setter). */
interface Victim {
  localVerificationTag: number;
  transport: { dtls: { dataReceiver(buf: Buffer): void } };
}

const HEARTBEAT = 4;
/** A heartbeat's info parameter: type 1, its length, the sender's opaque bytes. */
const heartbeatInfo = (length: number) => {
  const p = Buffer.alloc(8);
  p.writeUInt16BE(1, 0);
  p.writeUInt16BE(length, 2);
  return p;
};

const MALFORMED: [string, (tag: number) => Buffer][] = [
  [
    "a chunk type werift does not know (0x55: stop here, RFC 9260 §3.2)",
    (t) => packet(t, chunk(0x55, Buffer.alloc(4))),
  ],
  [
    "RFC 4820's PAD chunk (0x84: skip it and go on)",
    (t) => packet(t, chunk(0x84, Buffer.alloc(8)), chunk(HEARTBEAT, heartbeatInfo(8))),
  ],
  ["a chunk whose length is 0", (t) => packet(t, chunk(HEARTBEAT, Buffer.alloc(8), 0))],
  ["a parameter whose length is 0", (t) => packet(t, chunk(HEARTBEAT, heartbeatInfo(0)))],
  [
    "an INIT bundled with another chunk",
    () => packet(0, chunk(1, Buffer.alloc(16)), chunk(HEARTBEAT, heartbeatInfo(8))),
  ],
  ["a DATA chunk too short for its header", (t) => packet(t, chunk(0, Buffer.alloc(2)))],
];

describe("a malformed SCTP packet from the peer", () => {
  for (const [what, make] of MALFORMED) {
    it(`${what}: the packet is dropped, the process and the link go on`, async () => {
      const p = await linkedPair();
      pairs.push(p);
      const rejections: unknown[] = [];
      const onRejection = (e: unknown) => rejections.push(e);
      process.on("unhandledRejection", onRejection);
      try {
        const victim = sctpOf(p.b) as unknown as Victim;
        const started = performance.now();
        victim.transport.dtls.dataReceiver(make(victim.localVerificationTag));
        // Stock werift never returned from a zero length (the loop did not move).
        expect(performance.now() - started).toBeLessThan(1_000);
        await new Promise((r) => setTimeout(r, 100));
        expect(rejections).toEqual([]);
        // The association is intact: data still flows both ways.
        p.dc.send("after");
        expect(await until(() => p.received.includes("after"), 5_000)).toBe(true);
      } finally {
        process.off("unhandledRejection", onRejection);
      }
    });
  }
});
