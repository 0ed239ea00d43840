/**
 * The console's DOM-free parts, in Node: token claims, stats sampling, SDP edits for restarts
 * (shared/link/sdp-edit.ts), commands, the `control` stream over the shared reliable layer, the
 * health loop over the shared policy, probes, and who frames `control`.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { isExpired, readTokenClaims } from "../../console/src/claims.ts";
import {
  CommandError,
  parseCommand,
  parseMessage,
  readable,
  shownSender,
} from "../../console/src/control.ts";
import { type ChannelLike, ControlStream } from "../../console/src/control-stream.ts";
import { HealthLoop, linkStateOf } from "../../console/src/health-loop.ts";
import { fitView } from "../../console/src/map.ts";
import { onTelemetryText, ping } from "../../console/src/probes.ts";
import { CONTROL_FRAMING, framesControl } from "../../console/src/room.ts";
import { lossBetween, sampleStats } from "../../console/src/stats.ts";
import {
  FREEZE_AFTER_MS,
  sampleVideo,
  type VideoSample,
  videoFigures,
  videoState,
} from "../../console/src/video-figures.ts";
import { PeerConduct, type Violation } from "../../shared/link/conduct.ts";
import type { Decision } from "../../shared/link/health.ts";
import {
  decodeFrame,
  encodeFrame,
  type Frame,
  ReliableReceiver,
  ReliableSender,
} from "../../shared/link/reliable.ts";
import {
  iceCredentials,
  sdpAudio,
  sdpCandidates,
  withIceCredentials,
} from "../../shared/link/sdp-edit.ts";
import type { Peer } from "../../shared/protocol.ts";
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
        usernameFragment: "ufA",
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
    // The selected pair's ICE generation (an ICE restart is done once the new one carries).
    expect(s.localUfrag).toBe("ufA");
    // A peer-reflexive remote candidate's address is left out by the browser: said so.
    const prflx = report({});
    const r1 = prflx.get("R1") as Record<string, unknown>;
    prflx.set("R1", { ...r1, candidateType: "prflx", address: "", ip: undefined });
    expect(sampleStats(prflx, 1).pair).toBe(
      "host udp 127.0.0.1:5000 ⇄ prflx udp (address hidden):6000",
    );
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

describe("SDP edits (shared/link/sdp-edit.ts)", () => {
  it("rewrites ICE credentials for a restart and drops old candidates", () => {
    const out = withIceCredentials(SDP, { ufrag: "new2", pwd: "newpasswordnewpassword" });
    expect(iceCredentials(out)).toEqual({ ufrag: "new2", pwd: "newpasswordnewpassword" });
    expect(out).not.toMatch(/old1|a=candidate|end-of-candidates/);
    expect(out.match(/a=ice-ufrag:new2/g)).toHaveLength(2);
  });
  it("lists candidates with their mid and sees rejected audio", () => {
    expect(sdpCandidates(SDP)).toEqual([
      {
        candidate: "candidate:1 1 udp 2113937151 127.0.0.1 5000 typ host",
        sdpMid: "0",
        sdpMLineIndex: 0,
      },
    ]);
    expect(Boolean(sdpAudio(SDP)?.sends)).toBe(false);
    expect(Boolean(sdpAudio(SDP.replace("m=audio 0", "m=audio 9"))?.sends)).toBe(true);
  });
  it("reads what an answer does with audio: declined (rejected, inactive), one way, both", () => {
    const audio = (port: number, dir: string) =>
      `v=0\r\nm=audio ${port} UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n${dir}m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=sendrecv\r\n`;
    expect(sdpAudio(audio(0, "a=sendrecv\r\n"))).toEqual({ sends: false, takes: false });
    expect(sdpAudio(audio(9, "a=inactive\r\n"))).toEqual({ sends: false, takes: false });
    expect(sdpAudio(audio(9, "a=recvonly\r\n"))).toEqual({ sends: false, takes: true });
    expect(sdpAudio(audio(9, "a=sendonly\r\n"))).toEqual({ sends: true, takes: false });
    expect(sdpAudio(audio(9, ""))).toEqual({ sends: true, takes: true });
    expect(sdpAudio("v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n")).toBeNull();
  });
});

describe("commands and messages", () => {
  it("parses operator command lines", () => {
    expect(parseCommand("  ")).toBeNull();
    expect(parseCommand("stop")).toEqual({ name: "stop" });
    expect(parseCommand('drive {"v":0.5}')).toEqual({ name: "drive", args: { v: 0.5 } });
    expect(parseCommand("goto 3 4")).toEqual({ name: "goto", args: ["3", "4"] });
    // Arguments that start as JSON and are not: refused with the reason, not sent as words.
    expect(() => parseCommand('drive {"v":0.5')).toThrow(CommandError);
    expect(() => parseCommand('drive {"v":0.5')).toThrow(
      /^not sent: the arguments are not valid JSON/,
    );
  });
  it("keeps unknown payloads as raw text", () => {
    expect(parseMessage('{"type":"chat","from":"a","text":"hi","at":1}')).toMatchObject({
      type: "chat",
      text: "hi",
    });
    expect(parseMessage("plain")).toEqual({ type: "raw", text: "plain" });
    expect(parseMessage('{"type":"other"}')).toEqual({ type: "raw", text: '{"type":"other"}' });
    // Ours only with their fields: a bare chat showed as "undefined: undefined", a voice message
    // without a sender or with another state changed the call's words.
    for (const t of [
      '{"type":"chat"}',
      '{"type":"chat","from":"a"}',
      '{"type":"cmd","from":1,"name":"x"}',
      '{"type":"voice","state":"on"}',
      '{"type":"voice","from":"a","state":"loud"}',
      '["chat"]',
    ])
      expect(parseMessage(t)).toEqual({ type: "raw", text: t });
    expect(parseMessage('{"type":"voice","from":"a","state":"off"}')).toMatchObject({
      type: "voice",
      state: "off",
    });
  });
  it("fits the map to the room, less a peer far from the rest (drawn at the edge, off the map)", () => {
    const yard = [
      { id: "a", x: 0, y: 0 },
      { id: "b", x: 5, y: 5 },
      { id: "c", x: 40, y: 2 },
    ];
    expect(fitView(yard)).toEqual({ minX: 0, minY: 0, span: 40, off: new Set() });
    // One peer at (1e308, -1e308) put every other on one pixel, and the span was Infinity.
    const v = fitView([...yard, { id: "far", x: 1e308, y: -1e308 }]);
    expect(v.off).toEqual(new Set(["far"]));
    expect(v.span).toBe(40);
    // Two peers alone are both shown, however far apart; a span past a double's range is not.
    expect(
      fitView([yard[0] as { id: string; x: number; y: number }, { id: "z", x: 900, y: 0 }]).off,
    ).toEqual(new Set());
    expect(
      Number.isFinite(
        fitView([
          { id: "p", x: 1e308, y: 0 },
          { id: "q", x: -1e308, y: 0 },
        ]).span,
      ),
    ).toBe(true);
    // The nearby circle's box counts.
    expect(fitView(yard, [{ x: -20, y: -20 }]).minX).toBe(-20);
  });

  it("shows a message's sender as the peer's claim unless it is the peer, or an echo of ours", () => {
    expect(shownSender("bravo", "bravo", false)).toBe("bravo");
    expect(shownSender("operator", "bravo", true)).toBe("operator");
    // A rover's line claiming to be the operator's (shown as the operator's own words before).
    expect(shownSender("operator", "bravo", false)).toBe("bravo (as “operator”)");
    expect(shownSender("alice", "bravo", false)).toBe("bravo (as “alice”)");
  });

  it("shows a rover's JSON telemetry as fields, anything else as it came", () => {
    expect(readable('{"type":"telemetry","rover":"alpha","x":0.16,"battery":97.4}')).toBe(
      "telemetry · rover alpha · x 0.16 · battery 97.4",
    );
    expect(readable('{"pose":{"x":1},"ok":true}')).toBe('pose {"x":1} · ok true');
    for (const t of ["plain", "[1,2]", "42", "{}", '{"broken"']) expect(readable(t)).toBe(t);
  });
});

/**
 * One direction of a data channel: what is sent waits in `queue` until `flush` hands it to the
 * other side's stream; `kill` loses what is in flight, as a torn-down SCTP association does.
 */
class Wire implements ChannelLike {
  readyState = "open";
  queue: string[] = [];
  peer: { stream: ControlStream; dc: Wire } | null = null;
  send(text: string): void {
    if (this.readyState !== "open") throw new Error("send on a closed channel");
    this.queue.push(text);
  }
  /** Deliver up to `max` queued texts to the other side. */
  flush(max = Number.POSITIVE_INFINITY): number {
    let n = 0;
    while (this.queue.length > 0 && n < max && this.peer) {
      this.peer.stream.receive(this.peer.dc, this.queue.shift() as string);
      n++;
    }
    return n;
  }
  kill(): void {
    this.readyState = "closed";
    this.queue = [];
  }
}

/** A `control` channel between two streams: one Wire each way. */
function channel(a: ControlStream, b: ControlStream): { ab: Wire; ba: Wire } {
  const ab = new Wire();
  const ba = new Wire();
  ab.peer = { stream: b, dc: ba };
  ba.peer = { stream: a, dc: ab };
  return { ab, ba };
}

function endpoint(framed = true) {
  const got: string[] = [];
  const violations: Violation[] = [];
  const stream = new ControlStream({
    sender: new ReliableSender(),
    receiver: new ReliableReceiver(),
    framed,
    ackDelayMs: 1,
    deliver: (t) => got.push(t),
    violation: (k) => violations.push(k),
  });
  return { stream, got, violations };
}

const tick = () => new Promise((r) => setTimeout(r, 10));

/** Flush both ways until nothing moves (acks are batched on a timer). */
async function settle(...wires: Wire[]): Promise<void> {
  for (let i = 0; i < 20; i++) {
    let moved = 0;
    for (const w of wires) moved += w.flush();
    await tick();
    if (moved === 0 && wires.every((w) => w.queue.length === 0)) return;
  }
}

describe("control stream (shared/link/reliable.ts)", () => {
  it("delivers exactly once and in order across a lost association and an overlapping resend", async () => {
    const a = endpoint();
    const b = endpoint();
    const one = channel(a.stream, b.stream);
    a.stream.opened(one.ab);
    b.stream.opened(one.ba);
    await settle(one.ab, one.ba);
    const sent = Array.from({ length: 16 }, (_, i) => `m${i}`);
    for (const m of sent.slice(0, 10)) a.stream.send(m);
    one.ab.flush(5); // m0..m4 arrive; m5..m9 are in flight when the association dies
    one.ab.kill();
    one.ba.kill();
    for (const m of sent.slice(10, 15)) a.stream.send(m); // kept while down
    expect(b.got).toEqual(sent.slice(0, 5));
    // A new PeerConnection: A opens first and sends m15 before B's hello comes back, so the
    // resend after B's hello overlaps it.
    const two = channel(a.stream, b.stream);
    a.stream.opened(two.ab);
    a.stream.send("m15");
    b.stream.opened(two.ba);
    await settle(two.ab, two.ba);
    expect(b.got).toEqual(sent);
    expect(a.stream.framed && a.violations.concat(b.violations)).toEqual([]);
    // Everything was acknowledged: nothing is kept, a third channel resends nothing.
    const three = channel(a.stream, b.stream);
    a.stream.opened(three.ab);
    b.stream.opened(three.ba);
    await settle(three.ab, three.ba);
    expect(b.got).toEqual(sent);
  });

  it("says in each ack how long it held it, so a rover's RTT leaves out the console's batching", async () => {
    const b = new ControlStream({
      sender: new ReliableSender(),
      receiver: new ReliableReceiver(),
      framed: true,
      ackDelayMs: 30,
      deliver: () => {},
      violation: () => {},
    });
    const dc = new Wire();
    b.opened(dc);
    dc.queue = [];
    b.receive(dc, encodeFrame(new ReliableSender().send("m0")));
    await new Promise((r) => setTimeout(r, 80));
    const ack = decodeFrame(dc.queue.at(-1) ?? "") as Frame & { t: "a" };
    expect(ack).toMatchObject({ t: "a", n: 1 });
    expect(ack.d).toBeGreaterThanOrEqual(25);
  });

  it("says which of our messages the peer has: its acks and its hello, cumulative", () => {
    const seen: number[] = [];
    const sender = new ReliableSender();
    const opts = {
      sender,
      receiver: new ReliableReceiver(),
      framed: true,
      deliver: () => {},
      violation: () => {},
      acked: (below: number) => seen.push(below),
    };
    const a = new ControlStream(opts);
    const dc = new Wire();
    a.opened(dc);
    expect([a.send("m0"), a.send("m1"), a.send("m2")]).toEqual([0, 1, 2]);
    a.receive(dc, encodeFrame({ rl: 1, t: "a", n: 2 }));
    a.receive(dc, encodeFrame({ rl: 1, t: "h", st: sender.stream, n: 3 }));
    a.receive(dc, encodeFrame({ rl: 1, t: "a", n: 9 })); // past what was sent: no tick
    expect(seen).toEqual([2, 3]);
    // Raw control: nothing will ever say.
    expect(new ControlStream({ ...opts, framed: false }).send("x")).toBeNull();
  });

  it("reports raw text, broken frames and a second hello on framed control as violations", () => {
    const a = endpoint();
    const dc = new Wire();
    a.stream.receive(dc, "hello there");
    a.stream.receive(dc, '{"rl":1,"t":"d"}');
    a.stream.receive(dc, '{"rl":1,"t":"h","st":"x","n":0}');
    a.stream.receive(dc, '{"rl":1,"t":"h","st":"x","n":0}');
    a.stream.receive(dc, '{"rl":1,"t":"a","n":5}');
    expect(a.violations).toEqual([
      "unexpected-message",
      "malformed-frame",
      "hello-flood",
      "bad-ack",
    ]);
    expect(a.got).toEqual([]);
  });

  it("passes raw text both ways for a peer that does not frame control", () => {
    const a = endpoint(false);
    const dc = new Wire();
    a.stream.opened(dc);
    expect(dc.queue).toEqual([]); // no hello
    a.stream.send("plain");
    expect(dc.queue).toEqual(["plain"]);
    a.stream.receive(dc, '{"rl":1,"t":"h","st":"x","n":0}');
    expect(a.got).toEqual(['{"rl":1,"t":"h","st":"x","n":0}']);
    expect(a.violations).toEqual([]);
  });
});

describe("health loop (shared/link/health.ts decides)", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("carries out the shared policy's decisions on its own deadlines", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance", "Date"] });
    const decisions: Decision[] = [];
    const loop = new HealthLoop((d) => decisions.push(d));
    const c = loop.health.config;
    loop.feed((h, now) => h.onOpen(now));
    expect(decisions).toContainEqual({ type: "state", state: "up", prev: "connecting" });
    expect(decisions).toContainEqual({ type: "probe" });
    // The probe goes out (as the console's link does on that decision) and nothing comes back
    // for the policy's silence time: it restarts, on its own timer.
    loop.feed((h, now) => h.onProbeSent(1, now));
    decisions.length = 0;
    vi.advanceTimersByTime(c.silenceMs + 10);
    const restart = decisions.find((d) => d.type === "restart");
    expect(restart).toMatchObject({ type: "restart", reason: "silence", attempt: 1 });
    const state = decisions.find((d) => d.type === "state" && d.state === "restarting");
    expect(state && state.type === "state" && linkStateOf(state.state)).toBe("reconnecting");
    // Restarts that fail outright are retried per the policy's backoff, then a rebuild.
    for (let i = 0; i < c.maxRestarts; i++) {
      loop.feed((h, now) => h.onRestartFailed(now));
      vi.advanceTimersByTime(Math.max(...c.restartBackoffMs) + 10);
    }
    expect(decisions.filter((d) => d.type === "restart")).toHaveLength(c.maxRestarts);
    expect(decisions.find((d) => d.type === "rebuild")).toMatchObject({
      reason: "restarts-failed",
    });
    expect(linkStateOf(loop.health.snapshot(performance.now()).state)).toBe("rebuilding");
    loop.stop();
  });

  it("restarts on a network change after the policy's quiet time, and not before", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance", "Date"] });
    const decisions: Decision[] = [];
    const loop = new HealthLoop((d) => decisions.push(d));
    loop.feed((h, now) => h.onOpen(now));
    loop.feed((h, now) => h.onNetworkChange(now));
    expect(decisions.some((d) => d.type === "restart")).toBe(false);
    vi.advanceTimersByTime(loop.health.config.netChangeMaxDelayMs + 5);
    expect(decisions.find((d) => d.type === "restart")).toMatchObject({
      reason: "network-change",
    });
    loop.stop();
  });

  it("names every reported state for the link panel", () => {
    expect(linkStateOf("up")).toBe("connected");
    expect(linkStateOf("degraded")).toBe("degraded");
    expect(linkStateOf("rebuilding")).toBe("rebuilding");
    expect(linkStateOf("down")).toBe("closed");
  });
});

describe("probes on telemetry (shared/link/probe-wire.ts)", () => {
  it("answers pings, reports pongs, leaves application telemetry alone", () => {
    const conduct = new PeerConduct({}, 0);
    expect(onTelemetryText('{"rlp":"ping","i":7}', 0, conduct)).toEqual({
      type: "reply",
      text: '{"rlp":"pong","i":7}',
    });
    expect(onTelemetryText(ping(3).replace("ping", "pong"), 0, conduct)).toEqual({
      type: "answered",
      id: 3,
    });
    expect(onTelemetryText('{"type":"pose","x":1}', 0, conduct)).toBeNull();
    expect(onTelemetryText('{"rlp":"ping","i":-1}', 0, conduct)).toMatchObject({
      type: "violation",
      kind: "malformed-probe",
    });
  });
  it("refuses pings faster than the conduct's pong rate", () => {
    const conduct = new PeerConduct({}, 0);
    const out = Array.from({ length: 40 }, (_, i) => onTelemetryText(ping(i), 0, conduct));
    expect(out.filter((a) => a?.type === "reply")).toHaveLength(conduct.config.pongsPerS);
    expect(out.at(-1)).toMatchObject({ type: "violation", kind: "probe-flood" });
  });
});

describe("who frames control", () => {
  const peer = (kind: string, meta: Record<string, unknown> = {}): Peer => ({
    id: "p",
    kind,
    meta,
    position: null,
    joinedAt: 0,
    lastSeen: 0,
  });
  it("frames for agents and announcing browsers, raw for other browsers", () => {
    expect(framesControl(peer("rover"))).toBe(true);
    expect(framesControl(peer("browser", { control: CONTROL_FRAMING }))).toBe(true);
    expect(framesControl(peer("browser"))).toBe(false);
    expect(framesControl(peer("browser", { control: "v9" }))).toBe(false);
  });
});

describe("camera figures", () => {
  const inbound = (o: Record<string, number>) =>
    new Map<string, unknown>([
      ["IT01V1", { id: "IT01V1", type: "inbound-rtp", kind: "video", ...o }],
      ["IT01A1", { id: "IT01A1", type: "inbound-rtp", kind: "audio", framesDecoded: 999 }],
    ]);

  it("reads the inbound video stream and turns two samples into fps and bitrate", () => {
    expect(sampleVideo(new Map(), 0)).toBeNull();
    const a = sampleVideo(inbound({ framesDecoded: 100, bytesReceived: 1_000_000 }), 1000);
    const b = sampleVideo(
      inbound({
        framesDecoded: 130,
        bytesReceived: 1_125_000,
        framesDropped: 2,
        freezeCount: 1,
        totalFreezesDuration: 0.64,
        frameWidth: 640,
        frameHeight: 480,
      }),
      2000,
    );
    expect(b).not.toBeNull();
    expect(videoFigures(a, b as VideoSample)).toEqual({
      fps: 30,
      kbps: 1000,
      dropped: 2,
      freezes: 1,
      freezeS: 0.6,
      size: "640×480",
    });
    expect(videoFigures(null, b as VideoSample).fps).toBeNull();
  });

  it("says waiting, playing, or frozen 500 ms after the last frame painted", () => {
    expect(videoState(false, null, 0)).toBe("none");
    expect(videoState(true, null, 0)).toBe("waiting");
    expect(videoState(true, 1000, 1000 + FREEZE_AFTER_MS)).toBe("playing");
    expect(videoState(true, 1000, 1001 + FREEZE_AFTER_MS)).toBe("frozen");
  });
});
