/**
 * patches/werift+0.25.2.patch, per-packet costs under the SCTP association (docs/werift-patches.md,
 * patches 12, 13 and 26): DTLS AES-GCM keys kept as KeyObjects, ICE UDP sockets with a receive
 * buffer large enough for SCTP's window, and packets and records built without buffers that are
 * zero-filled, concatenated or copied only to be copied again. Real PeerConnections on loopback UDP.
 */
import { KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterEach, expect, it } from "vitest";
import { type Linked, linkedPair, messages, until } from "./sctp-pair.ts";

const pairs: Linked[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.close()));
});

// biome-ignore lint/suspicious/noExplicitAny: werift internals, see docs/werift-patches.md
const dtlsOf = (l: Linked): any => (l.a as any).sctpTransport.dtlsTransport;

it("encrypts DTLS records with a KeyObject made once per key", async () => {
  const p = await linkedPair();
  pairs.push(p);
  for (const m of messages(10, 1024)) p.dc.send(m);
  expect(await until(() => p.received.length === 10, 10_000)).toBe(true);
  const aead = dtlsOf(p).dtls.cipher.cipher;
  const first = aead.clientWriteKeyObject?.object;
  expect(first).toBeInstanceOf(KeyObject);
  expect(first.export().equals(aead.clientWriteKey)).toBe(true);
  for (const m of messages(10, 1024)) p.dc.send(m);
  expect(await until(() => p.received.length === 20, 10_000)).toBe(true);
  expect(aead.clientWriteKeyObject.object).toBe(first);
});

it("asks for a 4 MiB receive buffer on its ICE sockets", async () => {
  const p = await linkedPair();
  pairs.push(p);
  // Linux reports twice what was set, capped by net.core.rmem_max.
  const max = Number(readFileSync("/proc/sys/net/core/rmem_max", "utf8"));
  const protocols = dtlsOf(p).iceTransport.connection.protocols as {
    transport: { socket: { getRecvBufferSize(): number } };
  }[];
  expect(protocols.length).toBeGreaterThan(0);
  for (const proto of protocols)
    expect(proto.transport.socket.getRecvBufferSize()).toBeGreaterThanOrEqual(
      Math.min(4 * 2 ** 20, max),
    );
});

it("seals application data straight into its record, byte for byte what the old path made", async () => {
  const p = await linkedPair();
  pairs.push(p);
  for (const m of messages(5, 1024)) p.dc.send(m);
  expect(await until(() => p.received.length === 5, 10_000)).toBe(true);
  const ctx = dtlsOf(p).dtls.cipher;
  const aead = ctx.cipher;
  expect(typeof aead.encryptRecord).toBe("function");
  const data = Buffer.from(messages(1, 1100)[0] as string);
  const version = { major: 254, minor: 253 };
  const header = {
    type: 23,
    version: (254 << 8) | 253,
    epoch: 1,
    sequenceNumber: 0x0102_0304_0506,
  };
  const record: Buffer = aead.encryptRecord(ctx.sessionType, data, header, version);
  // AES-GCM is deterministic for a key, nonce and AAD: the old path gives the same fragment.
  const fragment: Buffer = aead.encrypt(ctx.sessionType, data, header);
  expect(record.subarray(13).equals(fragment)).toBe(true);
  expect([...record.subarray(0, 3)]).toEqual([23, 254, 253]);
  expect(record.readUInt16BE(3)).toBe(1);
  expect(record.readUIntBE(5, 6)).toBe(0x0102_0304_0506);
  expect(record.readUInt16BE(11)).toBe(fragment.length);
});

it("builds packets and records without zero-filled buffers or concatenations", async () => {
  const p = await linkedPair();
  pairs.push(p);
  const sent = messages(200, 1024);
  const { alloc, concat } = Buffer;
  let allocs = 0;
  let concats = 0;
  Buffer.alloc = ((...args: Parameters<typeof alloc>) => {
    allocs++;
    return alloc(...args);
  }) as typeof alloc;
  Buffer.concat = ((list: readonly Uint8Array[], n?: number) => {
    concats++;
    return concat(list, n);
  }) as typeof concat;
  try {
    for (let i = 0; i < sent.length; i += 20) {
      for (const m of sent.slice(i, i + 20)) p.dc.send(m);
      expect(await until(() => p.received.length === i + 20, 10_000)).toBe(true);
    }
  } finally {
    Buffer.alloc = alloc;
    Buffer.concat = concat;
  }
  expect(p.received).toEqual(sent);
  // Per one-chunk message, both ends. Patches 1-25: 6.0 allocs (the DATA chunk, the record, its
  // AAD) and 2.5 concatenations (the sealed fragment); with patch 26: 0.5 and 1.0.
  expect(allocs / sent.length).toBeLessThan(1.5);
  expect(concats / sent.length).toBeLessThan(1.8);
});
