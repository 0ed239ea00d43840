/**
 * patches/werift+0.25.2.patch, patch 27 (docs/werift-patches.md): an Outgoing SSN Reset Request
 * (the RE-CONFIG a data channel's close sends) that arrives before DATA its sender sent ahead of it
 * on the stream is deferred until that DATA is in (RFC 6525 §5.2.2 E2), and a retransmitted
 * request already performed is not performed again. Stock werift reset the stream at once: the
 * late chunk then waited forever in the new stream for SSNs that never come, with everything sent
 * on the stream after it, so the next data channel opened on that id never opened at the peer.
 * Real PeerConnections on loopback UDP, negotiated in memory.
 */

import { afterEach, expect, it } from "vitest";
import type { RTCDataChannel } from "werift";
import {
  type Linked,
  linkedPair,
  resetsSettled,
  type Sctp,
  sctpOf,
  sleep,
  until,
} from "./sctp-pair.ts";

let pair: Linked | undefined;
afterEach(async () => {
  await pair?.close();
  pair = undefined;
});

type SctpR = Sctp & {
  sendChunks(chunks: unknown[]): Promise<void>;
  sendReconfigParam(param: { type: number }): Promise<void>;
  reconfigRequest?: object;
  reconfigQueue: number[];
};

const opened = (dc: RTCDataChannel) =>
  new Promise<void>((resolve) => {
    if (dc.readyState === "open") resolve();
    dc.stateChanged.subscribe((s) => s === "open" && resolve());
  });

/** b's channels as they arrive, with what each receives. */
function follow(b: Linked["b"]) {
  const channels: { dc: RTCDataChannel; got: string[] }[] = [];
  b.onDataChannel.subscribe((dc: RTCDataChannel) => {
    const c = { dc, got: [] as string[] };
    dc.onMessage.subscribe((m) => c.got.push(String(m)));
    channels.push(c);
  });
  return channels;
}

/** a opens `label`; resolves once b has it too. */
async function open(p: Linked, channels: ReturnType<typeof follow>, label: string) {
  const dc = p.a.createDataChannel(label);
  await opened(dc);
  expect(await until(() => channels.some((c) => c.dc.label === label), 5_000)).toBe(true);
  return { dc, remote: channels.find((c) => c.dc.label === label) as (typeof channels)[number] };
}

/** Both directions of a's `dc` reset: closed on both ends, no reset outstanding on either. */
async function closedBothWays(p: Linked, dc: RTCDataChannel, remote: RTCDataChannel) {
  const done = () =>
    dc.readyState === "closed" && remote.readyState === "closed" && resetsSettled(p);
  expect(await until(done, 5_000)).toBe(true);
  await sleep(100);
}

it("defers a stream reset that overtook the stream's DATA, and the stream id works again after", async () => {
  pair = await linkedPair();
  const channels = follow(pair.b);
  const x = await open(pair, channels, "x");
  x.dc.send("first");
  expect(await until(() => x.remote.got.length === 1, 5_000)).toBe(true);
  // a's next DATA leaves 50 ms late, as if its packet were lost or reordered: the RE-CONFIG of the
  // close right after it (sent at once, not through the DATA queue) reaches b first.
  const sa = sctpOf(pair.a) as SctpR;
  const sendChunks = sa.sendChunks.bind(sa);
  sa.sendChunks = async (chunks) => {
    await sleep(50);
    await sendChunks(chunks);
  };
  x.dc.send("last");
  x.dc.close();
  await closedBothWays(pair, x.dc, x.remote.dc);
  sa.sendChunks = sendChunks;
  // The message sent before the close arrived, on its channel.
  expect(x.remote.got).toEqual(["first", "last"]);
  // The id is free at both ends: a's next channel takes it, and b sees it open and carry data.
  const y = pair.a.createDataChannel("y");
  expect(y.id).toBe(x.dc.id);
  await opened(y);
  y.send("on y");
  expect(await until(() => channels.some((c) => c.dc.label === "y"), 3_000)).toBe(true);
  const atB = channels.find((c) => c.dc.label === "y");
  expect(await until(() => atB?.got.length === 1, 3_000)).toBe(true);
  expect(atB?.got).toEqual(["on y"]);
});

it("does not perform a retransmitted stream reset request again", async () => {
  pair = await linkedPair();
  const channels = follow(pair.b);
  const sa = sctpOf(pair.a) as SctpR;
  const requests: { type: number }[] = [];
  const sendReconfigParam = sa.sendReconfigParam.bind(sa);
  sa.sendReconfigParam = async (param) => {
    if (param.type === 13) requests.push(param); // Outgoing SSN Reset Request
    await sendReconfigParam(param);
  };
  const x = await open(pair, channels, "x");
  x.dc.close();
  await closedBothWays(pair, x.dc, x.remote.dc);
  expect(requests).toHaveLength(1);
  const y = await open(pair, channels, "y");
  expect(y.dc.id).toBe(x.dc.id);
  // The close's request again, as a retransmission after a lost response would be.
  await sa.sendReconfigParam(requests[0] as { type: number });
  await sleep(300);
  expect([y.dc.readyState, y.remote.dc.readyState]).toEqual(["open", "open"]);
  y.dc.send("still open");
  expect(await until(() => y.remote.got.length === 1, 3_000)).toBe(true);
});

it("resets each end's side of a stream once when both ends close the channel at once", async () => {
  pair = await linkedPair();
  const channels = follow(pair.b);
  const requests: Record<string, number[][]> = { a: [], b: [] };
  for (const [end, pc] of [
    ["a", pair.a],
    ["b", pair.b],
  ] as const) {
    const s = sctpOf(pc) as SctpR;
    const send = s.sendReconfigParam.bind(s);
    s.sendReconfigParam = async (param) => {
      const p = param as { type: number; streams?: number[] };
      if (p.type === 13) requests[end]?.push(p.streams ?? []);
      await send(param);
    };
  }
  const x = await open(pair, channels, "x");
  x.dc.close();
  x.remote.dc.close();
  await closedBothWays(pair, x.dc, x.remote.dc);
  // A second request would reset the stream again later, under a channel opened on it since.
  expect(requests).toEqual({ a: [[x.dc.id]], b: [[x.dc.id]] });
});
