/**
 * Two LinkChannels (rover/link-channels.ts) over real werift PeerConnections on loopback UDP,
 * negotiated in memory, for the `control` tests. Call `cleanup` after each test.
 */
import { expect } from "vitest";
import { type RTCDataChannel, RTCPeerConnection } from "werift";
import { type ChannelHooks, type ChannelLogger, LinkChannels } from "../../rover/link-channels.ts";
import { ReliableReceiver, ReliableSender } from "../../shared/link/reliable.ts";

const config = { iceServers: [], iceUseIpv6: false, iceAdditionalHostAddresses: ["127.0.0.1"] };
const quiet = { debug() {}, warn() {} };
const pending: (() => Promise<void>)[] = [];

/** Close what the last test linked. */
export async function cleanup(): Promise<void> {
  await Promise.all(pending.splice(0).map((f) => f()));
}

export const until = async (f: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
};

export function channels(
  pc: RTCPeerConnection,
  hooks: Partial<ChannelHooks>,
  outbox = {},
  sender = new ReliableSender(),
  receiver = new ReliableReceiver(),
  log: ChannelLogger = quiet,
) {
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
    sender,
    receiver,
    outbox,
    log,
    hooks: all,
  });
}

/** Two PeerConnections on loopback, negotiated in memory, `ca` offering; resolves once both `control`s are open. */
export async function linked(
  ca: (pc: RTCPeerConnection) => LinkChannels,
  cb: (pc: RTCPeerConnection) => LinkChannels,
): Promise<[LinkChannels, LinkChannels]> {
  const a = new RTCPeerConnection(config);
  const b = new RTCPeerConnection(config);
  pending.push(async () => void (await Promise.all([a.close(), b.close()])));
  // A candidate that reaches an already closed peer at clean-up has nowhere to go.
  a.onIceCandidate.subscribe((c) => void (c && b.addIceCandidate(c).catch(() => {})));
  b.onIceCandidate.subscribe((c) => void (c && a.addIceCandidate(c).catch(() => {})));

  const [la, lb] = [ca(a), cb(b)];
  b.onDataChannel.subscribe((dc: RTCDataChannel) => lb.accept(dc));
  la.openStandard();
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription as NonNullable<typeof a.localDescription>);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription as NonNullable<typeof b.localDescription>);
  expect(await until(() => la.isOpen("control") && lb.isOpen("control"), 20_000)).toBe(true);
  pending.push(async () => {
    la.dispose();
    lb.dispose();
  });
  return [la, lb];
}
