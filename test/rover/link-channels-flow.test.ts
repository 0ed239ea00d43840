/**
 * Flow control on `control` (rover/link-channels.ts with shared/link/outbox.ts): a burst never goes
 * into werift all at once; `send` says when to wait and `drained` when to go on; everything still
 * arrives once, in order. Two real werift PeerConnections on loopback UDP, negotiated in memory.
 */
import { afterEach, expect, it } from "vitest";
import { type RTCDataChannel, RTCPeerConnection } from "werift";
import { type ChannelHooks, LinkChannels } from "../../rover/link-channels.ts";
import type { Payload } from "../../shared/link/reliable.ts";
import { ReliableReceiver, ReliableSender } from "../../shared/link/reliable.ts";

const config = { iceServers: [], iceUseIpv6: false, iceAdditionalHostAddresses: ["127.0.0.1"] };
const quiet = { debug() {}, warn() {} };
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map((f) => f()));
});

const until = async (f: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
};

function channels(pc: RTCPeerConnection, hooks: Partial<ChannelHooks>, outbox = {}) {
  const all: ChannelHooks = {
    opened() {},
    controlClosed() {},
    received() {},
    probeAnswered() {},
    message() {},
    violation() {},
    create: (label, opts) => pc.createDataChannel(label, opts),
    ...hooks,
  };
  return new LinkChannels({
    peer: "p",
    raw: false,
    sender: new ReliableSender(),
    receiver: new ReliableReceiver(),
    outbox,
    log: quiet,
    hooks: all,
  });
}

it("keeps werift's buffer under the high-water mark, signals drain, and delivers all in order", async () => {
  const a = new RTCPeerConnection(config);
  const b = new RTCPeerConnection(config);
  cleanup.push(async () => void (await Promise.all([a.close(), b.close()])));
  // A candidate that reaches an already closed peer at clean-up has nowhere to go.
  a.onIceCandidate.subscribe((c) => void (c && b.addIceCandidate(c).catch(() => {})));
  b.onIceCandidate.subscribe((c) => void (c && a.addIceCandidate(c).catch(() => {})));

  const highWater = 64 * 1024;
  let drains = 0;
  const ca = channels(a, { drained: () => drains++ }, { highWater, lowWater: 16 * 1024 });
  const got: Payload[] = [];
  const cb = channels(b, { message: (ch, d) => ch === "control" && got.push(d) });
  b.onDataChannel.subscribe((dc: RTCDataChannel) => cb.accept(dc));
  ca.openStandard();
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription as NonNullable<typeof a.localDescription>);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription as NonNullable<typeof b.localDescription>);
  expect(await until(() => ca.isOpen("control") && cb.isOpen("control"), 20_000)).toBe(true);

  const control = ca.get("control") as RTCDataChannel;
  let maxBuffered = 0;
  const sample = setInterval(() => {
    maxBuffered = Math.max(maxBuffered, control.bufferedAmount);
  }, 1);
  const sent = Array.from(
    { length: 3000 },
    (_, i) => `${String(i).padStart(6, "0")}${"x".repeat(1018)}`,
  );
  let refused = 0;
  try {
    for (const m of sent) {
      if (!ca.send("control", m)) refused++;
      maxBuffered = Math.max(maxBuffered, control.bufferedAmount);
    }
    // The burst waits in the outbox, not in werift.
    expect(ca.controlPending().frames).toBeGreaterThan(2000);
    expect(ca.controlWritable()).toBe(false);
    expect(await until(() => got.length === sent.length, 60_000)).toBe(true);
  } finally {
    clearInterval(sample);
  }
  expect(got).toEqual(sent);
  expect(refused).toBeGreaterThan(0);
  expect(drains).toBe(1);
  expect(ca.controlWritable()).toBe(true);
  // A frame is ~1.1 KB: werift never held more than the high-water mark plus one frame.
  expect(maxBuffered).toBeLessThanOrEqual(highWater + 2048);
  ca.dispose();
  cb.dispose();
});
