import { describe, expect, it } from "vitest";
import { RTCPeerConnection } from "werift";
import {
  iceCredentials,
  pcIdOf,
  sdpAudio,
  sdpCandidates,
  withCandidatesCapped,
  withIceCredentials,
  withPcId,
} from "../../../shared/link/sdp-edit.ts";

const SDP = [
  "v=0",
  "o=- 123 0 IN IP4 0.0.0.0",
  "s=-",
  "t=0 0",
  "a=group:BUNDLE 0",
  "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
  "c=IN IP4 0.0.0.0",
  "a=ice-ufrag:oldU",
  "a=ice-pwd:oldPasswordOldPassword00",
  "a=candidate:1 1 udp 2130706431 10.0.0.2 5000 typ host",
  "a=end-of-candidates",
  "a=fingerprint:sha-256 AA:BB",
  "a=setup:actpass",
  "a=mid:0",
  "a=sctp-port:5000",
  "",
].join("\r\n");

describe("ice-sdp", () => {
  it("rewrites ICE credentials and drops the old generation's candidates, leaving the rest", () => {
    const out = withIceCredentials(SDP, { ufrag: "newU", pwd: "newPasswordNewPassword00" });
    expect(iceCredentials(out)).toEqual({ ufrag: "newU", pwd: "newPasswordNewPassword00" });
    expect(out).not.toContain("a=candidate:");
    expect(out).not.toContain("a=end-of-candidates");
    const kept = (s: string) =>
      s.split("\r\n").filter((l) => !/^a=(ice-ufrag|ice-pwd|candidate|end-of-candidates)/.test(l));
    expect(kept(out)).toEqual(kept(SDP));
  });

  it("lists candidates with the mid of their section, even when a=mid comes after them", () => {
    expect(sdpCandidates(SDP)).toEqual([
      {
        candidate: "candidate:1 1 udp 2130706431 10.0.0.2 5000 typ host",
        sdpMLineIndex: 0,
        sdpMid: "0",
      },
    ]);
  });

  it("keeps the first candidates up to a bound, the rest of the SDP as it was", () => {
    expect(withCandidatesCapped(SDP, 1)).toEqual({ sdp: SDP, dropped: 0 });
    const many = SDP.replace(
      "a=end-of-candidates",
      [
        "a=candidate:2 1 udp 1 10.0.0.3 5001 typ host",
        "a=candidate:3 1 udp 1 10.0.0.4 5002 typ host",
      ]
        .concat("a=end-of-candidates")
        .join("\r\n"),
    );
    const out = withCandidatesCapped(many, 2);
    expect(out.dropped).toBe(1);
    expect(sdpCandidates(out.sdp).map((c) => c.candidate.split(" ")[0])).toEqual([
      "candidate:1",
      "candidate:2",
    ]);
    expect(out.sdp.replace("a=candidate:2 1 udp 1 10.0.0.3 5001 typ host\r\n", "")).toBe(SDP);
  });

  it("names the PeerConnection at session level, and reads the name back", () => {
    const tagged = withPcId(SDP, "pc-1");
    expect(pcIdOf(tagged)).toBe("pc-1");
    expect(pcIdOf(SDP)).toBeNull();
    const lines = tagged.split("\r\n");
    expect(lines.indexOf("a=x-roverlink-pc:pc-1")).toBeLessThan(
      lines.findIndex((l) => l.startsWith("m=")),
    );
    expect(lines.filter((l) => l !== "a=x-roverlink-pc:pc-1")).toEqual(SDP.split("\r\n"));
  });

  it("tells an offered audio section from a rejected one (port 0) or none", () => {
    expect(Boolean(sdpAudio(SDP)?.sends)).toBe(false);
    const audio = `${SDP}m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\n`;
    expect(Boolean(sdpAudio(audio)?.sends)).toBe(true);
    expect(Boolean(sdpAudio(audio.replace("m=audio 9", "m=audio 0"))?.sends)).toBe(false);
  });
  it("reads what werift writes", async () => {
    const pc = new RTCPeerConnection({ iceServers: [], iceUseIpv6: false });
    try {
      pc.createDataChannel("control");
      await pc.setLocalDescription(await pc.createOffer());
      const sdp = pc.localDescription?.sdp ?? "";
      const creds = iceCredentials(sdp);
      expect(creds?.ufrag.length).toBeGreaterThanOrEqual(4);
      const cands = sdpCandidates(sdp);
      expect(cands.length).toBeGreaterThan(0);
      for (const c of cands) {
        expect(c.candidate).toMatch(/^candidate:\S+ 1 udp \d+ \S+ \d+ typ host/);
        expect(c).toMatchObject({ sdpMLineIndex: 0, sdpMid: "0" });
      }
    } finally {
      await pc.close();
    }
  });
});
