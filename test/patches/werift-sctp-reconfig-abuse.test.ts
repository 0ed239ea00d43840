/**
 * RFC 6525 RE-CONFIG from a hostile peer, fed where the peer's packets go in (b's DTLS receiver),
 * with a correct tag and CRC-32c: floods of Outgoing SSN Reset Requests for streams never opened,
 * a reset of `control`'s stream under it, requests whose Sender's Last Assigned TSN lies far
 * ahead, Add Outgoing Streams requests. b must not throw (an unhandled rejection ends a rover),
 * must answer each request once (no amplification), keep bounded state, and the association must
 * go on carrying data. Found no werift fault (2026-12-07); guards the hostile-peer audit's cases.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { RTCDataChannel } from "werift";
import { type Linked, linkedPair, sctpPacket as packet, sctpOf, until } from "./sctp-pair.ts";

const pairs: Linked[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.close()));
});

const RECONFIG = 130;
const OUTGOING_RESET = 13;
const ADD_OUTGOING = 17;

function reconfig(param: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt8(RECONFIG, 0);
  head.writeUInt16BE(4 + param.length, 2);
  return Buffer.concat([head, param, Buffer.alloc((4 - (param.length % 4)) % 4)]);
}

function resetRequest(seq: number, lastTsn: number, streams: number[]): Buffer {
  const p = Buffer.alloc(16 + 2 * streams.length);
  p.writeUInt16BE(OUTGOING_RESET, 0);
  p.writeUInt16BE(p.length, 2);
  p.writeUInt32BE(seq >>> 0, 4);
  p.writeUInt32BE(0, 8);
  p.writeUInt32BE(lastTsn >>> 0, 12);
  for (const [i, s] of streams.entries()) p.writeUInt16BE(s, 16 + 2 * i);
  return p;
}

function addOutgoing(seq: number, n: number): Buffer {
  const p = Buffer.alloc(12);
  p.writeUInt16BE(ADD_OUTGOING, 0);
  p.writeUInt16BE(12, 2);
  p.writeUInt32BE(seq >>> 0, 4);
  p.writeUInt16BE(n, 8);
  return p;
}

interface Victim {
  localVerificationTag: number;
  lastReceivedTsn: number;
  inboundStreams: Record<number, unknown>;
  reconfigQueue: number[];
  deferredReset?: object;
  deferredResetChunks: unknown[];
  _inboundStreamsCount: number;
  transport: { dtls: { dataReceiver(buf: Buffer): void } };
  sendReconfigParam(p: unknown): Promise<void>;
}

async function attacked(): Promise<{
  p: Linked;
  b: Victim;
  feed(param: Buffer): void;
  answers: () => number;
  rejections: unknown[];
  done(): void;
}> {
  const p = await linkedPair();
  pairs.push(p);
  const b = sctpOf(p.b) as unknown as Victim;
  let n = 0;
  const send = b.sendReconfigParam.bind(b);
  b.sendReconfigParam = (x: unknown) => {
    n++;
    return send(x);
  };
  const rejections: unknown[] = [];
  const onRejection = (e: unknown) => rejections.push(e);
  process.on("unhandledRejection", onRejection);
  return {
    p,
    b,
    feed: (param) => b.transport.dtls.dataReceiver(packet(b.localVerificationTag, reconfig(param))),
    answers: () => n,
    rejections,
    done: () => process.off("unhandledRejection", onRejection),
  };
}

/** The association still carries data both ways on a fresh channel. */
async function stillCarries(p: Linked): Promise<boolean> {
  const dc = p.a.createDataChannel("after");
  let got: RTCDataChannel | null = null;
  const arrived: string[] = [];
  p.b.onDataChannel.subscribe((ch) => {
    if (ch.label !== "after") return;
    got = ch;
    ch.onMessage.subscribe((m) => arrived.push(String(m)));
  });
  if (!(await until(() => dc.readyState === "open", 5_000))) return false;
  dc.send("ping");
  return until(() => arrived.includes("ping") && got !== null, 5_000);
}

describe("RE-CONFIG from a hostile peer", () => {
  it("a flood of reset requests for streams never opened: one answer each, nothing kept", async () => {
    const t = await attacked();
    try {
      const streams = Array.from({ length: 290 }, (_, i) => 1000 + i);
      for (let i = 0; i < 2_000; i++) t.feed(resetRequest(100 + i, t.b.lastReceivedTsn, streams));
      await until(() => t.answers() >= 2_000, 10_000);
      expect(t.answers()).toBe(2_000);
      expect(t.rejections).toEqual([]);
      expect(Object.keys(t.b.inboundStreams).length).toBeLessThan(4);
      expect(t.b.reconfigQueue).toEqual([]);
      // control was not named: it still works.
      t.p.dc.send("still");
      expect(await until(() => t.p.received.includes("still"), 5_000)).toBe(true);
      expect(await stillCarries(t.p)).toBe(true);
    } finally {
      t.done();
    }
  });

  it("a reset of control's stream closes control, and only it", async () => {
    const t = await attacked();
    try {
      const id = t.p.remote.id as number;
      t.feed(resetRequest(7, t.b.lastReceivedTsn, [id]));
      expect(await until(() => t.p.remote.readyState === "closed", 5_000)).toBe(true);
      expect(t.rejections).toEqual([]);
      expect(await stillCarries(t.p)).toBe(true);
    } finally {
      t.done();
    }
  });

  it("requests whose last TSN lies far ahead, and Add Outgoing Streams: answered, data goes on", async () => {
    const t = await attacked();
    try {
      const id = t.p.remote.id as number;
      for (let i = 0; i < 200; i++) {
        t.feed(resetRequest(500 + i, t.b.lastReceivedTsn + 2 ** 31 - 1, [id, 2000 + i]));
        t.feed(addOutgoing(10_000 + i, 65_535));
      }
      await until(() => t.answers() >= 400, 10_000);
      expect(t.answers()).toBe(400);
      // The premise: the last request was held for its TSN ("in progress", RFC 6525 §5.2.2 E2).
      expect(t.b.deferredReset).toBeDefined();
      expect(t.rejections).toEqual([]);
      // "In progress": DATA on control before that TSN goes on as before.
      t.p.dc.send("deferred");
      expect(await until(() => t.p.received.includes("deferred"), 5_000)).toBe(true);
      expect(t.b.deferredResetChunks).toEqual([]);
      expect(await stillCarries(t.p)).toBe(true);
    } finally {
      t.done();
    }
  });
});
