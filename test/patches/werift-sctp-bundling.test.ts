/**
 * patches/werift+0.25.2.patch, SCTP packets (docs/werift-patches.md, patches 14 and 17): DATA
 * chunks bundled up to the MTU with the SACK that is due ahead of them (RFC 9260 §6.2, §6.10), and
 * packets built and checked without copying them. Real PeerConnections on loopback UDP.
 */
import { afterEach, expect, it } from "vitest";
import { type Linked, linkedPair, messages, sctpOf, until } from "./sctp-pair.ts";

const DATA = 0;
const SACK = 3;
type Chunk = { type: number };

const pairs: Linked[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.close()));
});

/** Every packet an association sends, as the list of its chunks' types. */
function recordPackets(sctp: unknown): number[][] {
  const s = sctp as { sendChunk(c: Chunk | Chunk[]): Promise<void> };
  const packets: number[][] = [];
  const send = s.sendChunk.bind(s);
  s.sendChunk = (c) => {
    packets.push((Array.isArray(c) ? c : [c]).map((x) => x.type));
    return send(c);
  };
  return packets;
}

it("bundles small messages into packets up to the MTU", async () => {
  const p = await linkedPair();
  pairs.push(p);
  const packets = recordPackets(sctpOf(p.a));
  const sent = messages(200, 100);
  for (const m of sent) p.dc.send(m);
  expect(await until(() => p.received.length === sent.length, 10_000)).toBe(true);
  expect(p.received).toEqual(sent);
  const withData = packets.filter((t) => t.includes(DATA));
  const chunks = withData.reduce((n, t) => n + t.filter((x) => x === DATA).length, 0);
  expect(chunks).toBeGreaterThanOrEqual(sent.length);
  // 100 B of payload + 16 B of DATA header: up to 10 fit in 1191 B. Stock werift: 200 packets.
  expect(withData.length).toBeLessThanOrEqual(sent.length / 4);
});

it("sends the SACK that is due with the DATA going the other way", async () => {
  const p = await linkedPair();
  pairs.push(p);
  // b answers every message, as a request/response protocol does.
  const echoes: string[] = [];
  p.remote.onMessage.subscribe((m) => p.remote.send(`re ${String(m)}`));
  p.dc.onMessage.subscribe((m) => echoes.push(String(m)));
  p.dc.send("hello");
  expect(await until(() => echoes.length === 1, 5000)).toBe(true);
  const packets = recordPackets(sctpOf(p.b));
  for (let i = 0; i < 40; i++) {
    p.dc.send(`q${i}`);
    expect(await until(() => echoes.length === i + 2, 5000)).toBe(true);
  }
  const alone = packets.filter((t) => t.length === 1 && t[0] === SACK).length;
  const riding = packets.filter((t) => t.includes(SACK) && t.includes(DATA)).length;
  // Stock werift: b's every second packet is a SACK on its own (~20 here), none rides with DATA.
  expect(riding).toBeGreaterThanOrEqual(30);
  expect(alone).toBeLessThanOrEqual(5);
});

it("builds and checks packets without concatenating buffers", async () => {
  const p = await linkedPair();
  pairs.push(p);
  const sent = messages(200, 1024);
  const concat = Buffer.concat;
  let calls = 0;
  Buffer.concat = ((list: readonly Uint8Array[], n?: number) => {
    calls++;
    return concat(list, n);
  }) as typeof Buffer.concat;
  try {
    for (let i = 0; i < sent.length; i += 20) {
      for (const m of sent.slice(i, i + 20)) p.dc.send(m);
      expect(await until(() => p.received.length === i + 20, 10_000)).toBe(true);
    }
  } finally {
    Buffer.concat = concat;
  }
  expect(p.received).toEqual(sent);
  // Per one-chunk message, both ends (send, receive, SACKs). Stock werift: 9; patched: 2.5 (DTLS).
  expect(calls / sent.length).toBeLessThan(4);
});

it("puts messages sent in the same tick in one packet", async () => {
  const p = await linkedPair();
  pairs.push(p);
  p.dc.send("warm-up");
  expect(await until(() => p.received.length === 1, 5000)).toBe(true);
  const packets = recordPackets(sctpOf(p.a));
  p.dc.send("one");
  p.dc.send("two");
  p.dc.send("three");
  expect(await until(() => p.received.length === 4, 5000)).toBe(true);
  expect(p.received.slice(1)).toEqual(["one", "two", "three"]);
  // Stock werift (and patch 14 without the deferred hand-off): the first message alone, then the rest.
  expect(packets.filter((t) => t.includes(DATA))).toHaveLength(1);
});
