/**
 * patches/werift+0.25.2.patch, per-packet costs under the SCTP association (docs/werift-patches.md,
 * patches 12 and 13): DTLS AES-GCM keys kept as KeyObjects, and ICE UDP sockets with a receive
 * buffer large enough for SCTP's window. Real PeerConnections on loopback UDP.
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
