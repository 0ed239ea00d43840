/**
 * patches/werift+0.25.2.patch: a DTLS peer must prove it holds the private key of the
 * certificate it presents. Stock werift 0.25.2 checks that the certificate matches the SDP
 * fingerprint but never verifies the ServerKeyExchange signature (client side) nor the
 * CertificateVerify signature (server side), so anyone who has seen a rover's certificate (it is
 * sent in clear in every handshake) can present it and pass a fingerprint pin. Real
 * PeerConnections on loopback UDP, negotiated in memory; docs/werift-patches.md.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  createSelfSignedCertificate,
  HashAlgorithm,
  NamedCurveAlgorithm,
  RTCCertificate,
  RTCPeerConnection,
  SignatureAlgorithm,
} from "werift";

const SH = { signature: SignatureAlgorithm.ecdsa_3, hash: HashAlgorithm.sha256_4 };
const open: RTCPeerConnection[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((pc) => pc.close()));
});

async function keys() {
  return createSelfSignedCertificate(SH, NamedCurveAlgorithm.secp256r1_23);
}

/** Offer from `a` (werift's DTLS client), answer from `b` (server); how each side's DTLS ends. */
async function negotiate(certA: RTCCertificate, certB: RTCCertificate) {
  const config = { iceServers: [], iceUseIpv6: false, iceAdditionalHostAddresses: ["127.0.0.1"] };
  const a = new RTCPeerConnection({ ...config, certificates: [certA] });
  const b = new RTCPeerConnection({ ...config, certificates: [certB] });
  open.push(a, b);
  // A candidate for a description already replaced is refused; the checks decide, not this.
  a.onIceCandidate.subscribe((c) => void (c && b.addIceCandidate(c).catch(() => undefined)));
  b.onIceCandidate.subscribe((c) => void (c && a.addIceCandidate(c).catch(() => undefined)));
  const dc = a.createDataChannel("control");
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription as NonNullable<typeof a.localDescription>);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription as NonNullable<typeof b.localDescription>);
  // The side that verifies settles; the impostor's may wait for a flight that never comes.
  const settled = (pc: RTCPeerConnection) =>
    new Promise<string>((resolve) => {
      const check = (s: string) => {
        if (s === "connected" || s === "failed" || s === "closed") resolve(s);
      };
      check(pc.connectionState);
      pc.connectionStateChange.subscribe(check);
    });
  return { a: settled(a), b: settled(b), open: () => dc.readyState === "open" };
}

describe("werift DTLS proof of possession (patched)", () => {
  it("links two peers that hold their own keys", async () => {
    const [ka, kb] = await Promise.all([keys(), keys()]);
    const r = await negotiate(
      new RTCCertificate(ka.keyPem, ka.certPem, SH),
      new RTCCertificate(kb.keyPem, kb.certPem, SH),
    );
    expect([await r.a, await r.b]).toEqual(["connected", "connected"]);
  });

  it("refuses a DTLS server presenting a victim's certificate without its key (ServerKeyExchange)", async () => {
    const [victim, impostor, honest] = await Promise.all([keys(), keys(), keys()]);
    const stolen = new RTCCertificate(impostor.keyPem, victim.certPem, SH);
    const r = await negotiate(new RTCCertificate(honest.keyPem, honest.certPem, SH), stolen);
    expect(await r.a).toBe("failed");
    expect(r.open()).toBe(false);
  });

  it("refuses a DTLS client presenting a victim's certificate without its key (CertificateVerify)", async () => {
    const [victim, impostor, honest] = await Promise.all([keys(), keys(), keys()]);
    const stolen = new RTCCertificate(impostor.keyPem, victim.certPem, SH);
    const r = await negotiate(stolen, new RTCCertificate(honest.keyPem, honest.certPem, SH));
    expect(await r.b).toBe("failed");
    expect(r.open()).toBe(false);
  });
});
