/**
 * patches/werift+0.25.2.patch, DCEP part: a DATA_CHANNEL_ACK for a stream the receiver does not
 * have (its channel closed before the ACK came, or a misbehaving peer) used to throw inside
 * werift's SCTP receive path, in a promise nobody awaits: an unhandled rejection, which ends a
 * Node process. Patched, it is ignored. Real PeerConnections on loopback UDP, negotiated in memory.
 */
import { afterEach, expect, it } from "vitest";
import { type RTCDataChannel, RTCPeerConnection } from "werift";

const config = { iceServers: [], iceUseIpv6: false, iceAdditionalHostAddresses: ["127.0.0.1"] };
const open: RTCPeerConnection[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((pc) => pc.close()));
});

/** werift's SCTP association (internal API, see docs/werift-patches.md). */
type Sctp = { send(streamId: number, ppId: number, data: Buffer): Promise<void> };
const sctpOf = (pc: RTCPeerConnection) =>
  (pc as unknown as { sctpTransport: { sctp: Sctp } }).sctpTransport.sctp;

it("ignores a DATA_CHANNEL_ACK for a stream it does not have, and keeps the association", async () => {
  const a = new RTCPeerConnection(config);
  const b = new RTCPeerConnection(config);
  open.push(a, b);
  // A candidate for a description already replaced is refused; the checks decide, not this.
  a.onIceCandidate.subscribe((c) => void (c && b.addIceCandidate(c).catch(() => undefined)));
  b.onIceCandidate.subscribe((c) => void (c && a.addIceCandidate(c).catch(() => undefined)));
  const dc = a.createDataChannel("control");
  const got: string[] = [];
  b.onDataChannel.subscribe((ch: RTCDataChannel) =>
    ch.onMessage.subscribe((m) => got.push(String(m))),
  );
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription as NonNullable<typeof a.localDescription>);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription as NonNullable<typeof b.localDescription>);
  await new Promise<void>((resolve) => {
    if (dc.readyState === "open") resolve();
    dc.stateChanged.subscribe((s) => s === "open" && resolve());
  });

  const rejections: unknown[] = [];
  const onRejection = (e: unknown) => rejections.push(e);
  process.on("unhandledRejection", onRejection);
  try {
    // DCEP (PPID 50) message type 0x02 = DATA_CHANNEL_ACK, on a stream b never opened.
    await sctpOf(a).send(777, 50, Buffer.from([0x02]));
    await new Promise((r) => setTimeout(r, 300));
    expect(rejections.map(String)).toEqual([]);
    // The association still carries data.
    dc.send("after");
    const end = Date.now() + 5_000;
    while (!got.includes("after") && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    expect(got).toContain("after");
  } finally {
    process.off("unhandledRejection", onRejection);
  }
});
