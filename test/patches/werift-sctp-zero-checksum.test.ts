/**
 * patches/werift+0.25.2.patch, patch 25 (docs/werift-patches.md): RFC 9653's zero checksum. Every
 * data channel association runs over DTLS, which authenticates each packet, so the CRC-32c that
 * werift computed on every packet sent and received adds nothing. Each end advertises the Zero
 * Checksum Acceptable parameter (method 1, SCTP over DTLS) and sends packets with a zero checksum
 * to a peer that advertised it, INIT and COOKIE ECHO excepted; a stock peer keeps its CRCs.
 */

import { afterEach, describe, expect, it } from "vitest";
import { RTCPeerConnection as UnpatchedPeerConnection } from "werift-unpatched";
import {
  crc32c,
  type Linked,
  linkedPair,
  messages,
  type Sctp,
  sctpOf,
  until,
} from "./sctp-pair.ts";

const INIT = 1;
const INIT_ACK = 2;
const COOKIE_ECHO = 10;
const DATA = 0;
const ZERO_CHECKSUM_ACCEPTABLE = 0x8001;

const pairs: Linked[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.close()));
});

/** The packet's checksum field, and whether it is the packet's CRC-32c. */
function checksumOf(packet: Buffer): { field: number; correct: boolean } {
  const copy = Buffer.from(packet);
  copy.writeUInt32LE(0, 8);
  const field = packet.readUInt32LE(8);
  return { field, correct: field === crc32c(copy) };
}

const firstChunkType = (packet: Buffer) => packet[12];

/** The INIT or INIT ACK's Zero Checksum Acceptable method, or null without the parameter. */
function zeroChecksumMethod(packet: Buffer): number | null {
  // Common header 12, chunk header 4, fixed INIT fields 16: then the parameters.
  let pos = 12 + 4 + 16;
  const end = 12 + packet.readUInt16BE(14);
  while (pos + 4 <= end) {
    const type = packet.readUInt16BE(pos);
    const length = packet.readUInt16BE(pos + 2);
    if (type === ZERO_CHECKSUM_ACCEPTABLE) return packet.readUInt32BE(pos + 4);
    pos += length + ((4 - (length % 4)) % 4);
  }
  return null;
}

/** Every packet `pc`'s association sends from now on. */
function capture(pc: RTCPeerConnection | UnpatchedPeerConnection): Buffer[] {
  const sctp = sctpOf(pc as RTCPeerConnection) as unknown as {
    transport: { send(b: Buffer): Promise<void> };
  };
  const packets: Buffer[] = [];
  const send = sctp.transport.send.bind(sctp.transport);
  sctp.transport.send = (b: Buffer) => {
    packets.push(Buffer.from(b));
    return send(b);
  };
  return packets;
}

type RTCPeerConnection = Linked["a"];

/** Two of werift's own associations wired back to back in memory, every packet recorded. */
async function backToBack() {
  const p = await linkedPair();
  pairs.push(p);
  type Assoc = Sctp & {
    start(port: number): Promise<void>;
    onReceive: { subscribe(f: (sid: number, ppid: number, data: Buffer) => void): void };
    associationState: number;
  };
  const Ctor = sctpOf(p.a).constructor as unknown as {
    client(t: object): Assoc;
    server(t: object): Assoc;
  };
  const sent: { from: "client" | "server"; packet: Buffer }[] = [];
  const wire = (from: "client" | "server") => ({
    onData: undefined as undefined | ((b: Buffer) => void),
    send: async (b: Buffer) => {
      sent.push({ from, packet: Buffer.from(b) });
      const to = from === "client" ? serverT : clientT;
      setImmediate(() => to.onData?.(b));
    },
  });
  const clientT = wire("client");
  const serverT = wire("server");
  const client = Ctor.client(clientT);
  const server = Ctor.server(serverT);
  const received: string[] = [];
  server.onReceive.subscribe((_sid, _ppid, data) => received.push(String(data)));
  await server.start(5000);
  await client.start(5000);
  return { client, server, sent, received };
}

describe("zero checksum (RFC 9653)", () => {
  it("advertises it in INIT and INIT ACK; INIT and COOKIE ECHO keep a correct CRC, DATA goes without", async () => {
    const { client, server, sent, received } = await backToBack();
    expect(
      await until(() => client.associationState === 4 && server.associationState === 4, 5_000),
    ).toBe(true);
    for (const m of ["one", "two", "three"]) await client.send(1, 51, Buffer.from(m));
    expect(await until(() => received.length === 3, 5_000)).toBe(true);
    expect(received).toEqual(["one", "two", "three"]);

    const of = (type: number) => sent.filter((s) => firstChunkType(s.packet) === type);
    const [init] = of(INIT);
    const [initAck] = of(INIT_ACK);
    const [echo] = of(COOKIE_ECHO);
    if (!init || !initAck || !echo) throw new Error("no handshake recorded");
    // Method 1: SCTP over DTLS.
    expect(zeroChecksumMethod(init.packet)).toBe(1);
    expect(zeroChecksumMethod(initAck.packet)).toBe(1);
    expect(checksumOf(init.packet).correct).toBe(true);
    expect(checksumOf(echo.packet).correct).toBe(true);
    const data = of(DATA);
    expect(data.length).toBeGreaterThanOrEqual(3);
    for (const d of data) expect(checksumOf(d.packet).field).toBe(0);
  });

  it("links two patched peers on loopback with zero checksums both ways", async () => {
    const p = await linkedPair();
    pairs.push(p);
    const fromA = capture(p.a);
    const fromB = capture(p.b);
    const sent = messages(60, 1024);
    for (const m of sent) p.dc.send(m);
    expect(await until(() => p.received.length === sent.length, 10_000)).toBe(true);
    expect(p.received).toEqual(sent);
    expect(fromA.length).toBeGreaterThan(0);
    expect(fromB.length).toBeGreaterThan(0); // SACKs
    for (const packet of [...fromA, ...fromB]) expect(checksumOf(packet).field).toBe(0);
  });

  it("keeps correct CRCs towards stock werift, which does not advertise it, and links", async () => {
    const p = await linkedPair({
      bClass: UnpatchedPeerConnection as unknown as typeof import("werift").RTCPeerConnection,
    });
    pairs.push(p);
    const fromPatched = capture(p.a);
    const sent = messages(40, 1024);
    for (const m of sent) p.dc.send(m);
    expect(await until(() => p.received.length === sent.length, 10_000)).toBe(true);
    expect(p.received).toEqual(sent);
    expect(fromPatched.length).toBeGreaterThan(0);
    for (const packet of fromPatched) expect(checksumOf(packet).correct).toBe(true);
  });

  it("still refuses a wrong non-zero checksum, and a zero one on an INIT", async () => {
    const { client, server, sent } = await backToBack();
    expect(await until(() => server.associationState === 4, 5_000)).toBe(true);
    const data = sent.find((s) => s.from === "server");
    if (!data) throw new Error("nothing sent by the server");
    const wrong = Buffer.from(data.packet);
    wrong.writeUInt32LE(0xdeadbeef, 8);
    await expect(client.handleData(wrong)).rejects.toThrow(/invalid checksum/);
    const init = sent.find((s) => firstChunkType(s.packet) === INIT);
    if (!init) throw new Error("no INIT recorded");
    const zeroInit = Buffer.from(init.packet);
    zeroInit.writeUInt32LE(0, 8);
    await expect(server.handleData(zeroInit)).rejects.toThrow(/invalid checksum/);
  });
});
