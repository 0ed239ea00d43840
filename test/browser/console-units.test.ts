/** The console's pure helpers: token claims, stats sampling, SDP edits for restarts, commands. */
import { describe, expect, it } from "vitest";
import { isExpired, readTokenClaims } from "../../console/src/claims.ts";
import { parseCommand, parseMessage } from "../../console/src/control.ts";
import {
  hasAudio,
  iceCredentials,
  sdpCandidates,
  withIceCredentials,
} from "../../console/src/ice-sdp.ts";
import { lossBetween, sampleStats } from "../../console/src/stats.ts";
import { mintToken } from "../../shared/token.ts";

describe("readTokenClaims", () => {
  it("reads sub, room, exp and role of a minted token", async () => {
    const t = await mintToken({
      secret: "s".repeat(32),
      sub: "op-1",
      room: "yard",
      ttlSeconds: 60,
      nowS: 1000,
    });
    expect(readTokenClaims(t)).toEqual({ sub: "op-1", room: "yard", exp: 1060, role: "peer" });
    expect(isExpired(readTokenClaims(t), 1_059_000)).toBe(false);
    expect(isExpired(readTokenClaims(t), 1_060_000)).toBe(true);
  });
  it("gives readable errors for junk", () => {
    expect(() => readTokenClaims("abc")).toThrow(/not a JWT/);
    expect(() => readTokenClaims("a.@@@.c")).toThrow(/base64url JSON/);
    const noSub = `x.${Buffer.from(JSON.stringify({ room: "r", exp: 1 })).toString("base64url")}.y`;
    expect(() => readTokenClaims(noSub)).toThrow(/sub/);
  });
});

// A report shaped like Chromium's getStats() for a linked data channel + audio.
const report = (over: {
  rtt?: number;
  sent?: number;
  resp?: number;
  lost?: number;
  rx?: number;
  relay?: boolean;
}) =>
  new Map<string, unknown>([
    ["T1", { id: "T1", type: "transport", selectedCandidatePairId: "CP1" }],
    [
      "CP0",
      {
        id: "CP0",
        type: "candidate-pair",
        state: "failed",
        localCandidateId: "L1",
        remoteCandidateId: "R1",
      },
    ],
    [
      "CP1",
      {
        id: "CP1",
        type: "candidate-pair",
        state: "succeeded",
        nominated: true,
        localCandidateId: "L1",
        remoteCandidateId: "R1",
        currentRoundTripTime: over.rtt ?? 0.0123,
        requestsSent: over.sent ?? 10,
        responsesReceived: over.resp ?? 10,
      },
    ],
    [
      "L1",
      {
        id: "L1",
        type: "local-candidate",
        candidateType: over.relay ? "relay" : "host",
        protocol: "udp",
        address: "127.0.0.1",
        port: 5000,
      },
    ],
    [
      "R1",
      {
        id: "R1",
        type: "remote-candidate",
        candidateType: "srflx",
        protocol: "udp",
        address: "127.0.0.1",
        port: 6000,
      },
    ],
    [
      "IA",
      {
        id: "IA",
        type: "inbound-rtp",
        kind: "audio",
        bytesReceived: over.rx ?? 0,
        packetsLost: over.lost ?? 0,
        packetsReceived: (over.rx ?? 0) / 100,
      },
    ],
  ]);

describe("sampleStats", () => {
  it("takes RTT and path from the transport's selected pair", () => {
    const s = sampleStats(report({}), 1);
    expect(s.rttMs).toBe(12.3);
    expect(s.path).toBe("direct");
    expect(s.pair).toBe("host udp 127.0.0.1:5000 ⇄ srflx udp 127.0.0.1:6000");
    expect(sampleStats(report({ relay: true }), 1).path).toBe("relay");
  });
  it("computes loss from unanswered checks, or from audio when audio flows", () => {
    const a = sampleStats(report({ sent: 10, resp: 10 }), 1);
    const b = sampleStats(report({ sent: 20, resp: 15 }), 2);
    expect(lossBetween(a, b)).toBe(0.5);
    const c = sampleStats(report({ rx: 10_000, lost: 0 }), 1);
    const d = sampleStats(report({ rx: 19_000, lost: 10 }), 2);
    expect(lossBetween(c, d)).toBeCloseTo(10 / 100);
    expect(lossBetween(undefined, d)).toBeNull();
    expect(d.audioBytesReceived).toBe(19_000);
  });
});

const SDP = [
  "v=0",
  "o=- 1 2 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "a=group:BUNDLE 0 1",
  "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
  "a=mid:0",
  "a=ice-ufrag:old1",
  "a=ice-pwd:oldpasswordoldpassword",
  "a=candidate:1 1 udp 2113937151 127.0.0.1 5000 typ host",
  "a=end-of-candidates",
  "m=audio 0 UDP/TLS/RTP/SAVPF 111",
  "a=mid:1",
  "a=ice-ufrag:old1",
  "a=ice-pwd:oldpasswordoldpassword",
  "",
].join("\r\n");

describe("ice-sdp", () => {
  it("rewrites ICE credentials for a restart and drops old candidates", () => {
    const out = withIceCredentials(SDP, { ufrag: "new2", pwd: "newpasswordnewpassword" });
    expect(iceCredentials(out)).toEqual({ ufrag: "new2", pwd: "newpasswordnewpassword" });
    expect(out).not.toMatch(/old1|a=candidate|end-of-candidates/);
    expect(out.match(/a=ice-ufrag:new2/g)).toHaveLength(2);
  });
  it("lists candidates with their mid and sees rejected audio", () => {
    expect(sdpCandidates(SDP)).toEqual([
      { candidate: "candidate:1 1 udp 2113937151 127.0.0.1 5000 typ host", mid: "0" },
    ]);
    expect(hasAudio(SDP)).toBe(false);
    expect(hasAudio(SDP.replace("m=audio 0", "m=audio 9"))).toBe(true);
  });
});

describe("commands and messages", () => {
  it("parses operator command lines", () => {
    expect(parseCommand("  ")).toBeNull();
    expect(parseCommand("stop")).toEqual({ name: "stop" });
    expect(parseCommand('drive {"v":0.5}')).toEqual({ name: "drive", args: { v: 0.5 } });
    expect(parseCommand("goto 3 4")).toEqual({ name: "goto", args: ["3", "4"] });
  });
  it("keeps unknown payloads as raw text", () => {
    expect(parseMessage('{"type":"chat","from":"a","text":"hi","at":1}')).toMatchObject({
      type: "chat",
      text: "hi",
    });
    expect(parseMessage("plain")).toEqual({ type: "raw", text: "plain" });
    expect(parseMessage('{"type":"other"}')).toEqual({ type: "raw", text: '{"type":"other"}' });
  });
});
