import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  buildCandidateFrag,
  fragCandidates,
  fragEnded,
  fragPwd,
  fragUfrag,
  normalizeCandidate,
  PSEUDO_M_LINE,
  parseCandidate,
  parseSdpFrag,
  type SdpFrag,
  SdpFragError,
  serializeSdpFrag,
} from "../../shared/sdpfrag.ts";

const crlf = (...lines: string[]) => lines.map((l) => `${l}\r\n`).join("");
const lf = (...lines: string[]) => lines.map((l) => `${l}\n`).join("");

// Real-world bodies. Sources: RFC 8840 §4.4/§7 examples, RFC 9725 (WHIP) §4.3.1/§4.3.2 examples,
// medooze whip-whep-js (the WHIP/WHEP reference browser client) fragment builder, Chrome and
// Firefox candidate strings as seen in the wild, werift's candidate syntax.
const RFC8840_INFO = crlf(
  "a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1",
  "a=ice-ufrag:EsAw",
  "m=audio 9 RTP/AVP 0",
  "a=mid:1",
  "a=candidate:1 1 UDP 2130706431 198.51.100.1 49203 typ host",
  "a=candidate:2 1 UDP 1694498815 192.0.2.3 51058 typ srflx raddr 198.51.100.1 rport 49203",
  "a=end-of-candidates",
);

const RFC9725_TRICKLE = crlf(
  "a=group:BUNDLE 0 1",
  "m=audio 9 UDP/TLS/RTP/SAVPF 111",
  "a=mid:0",
  "a=ice-ufrag:EsAw",
  "a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1",
  "a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1",
  "a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag EsAw network-id 2",
  "a=candidate:473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0 ufrag EsAw network-id 1",
  "a=candidate:2154773085 1 tcp 1518214911 198.51.100.2 9 typ host tcptype active generation 0 ufrag EsAw network-id 2",
  "a=end-of-candidates",
);

const RFC9725_RESTART = crlf(
  "a=ice-options:trickle ice2",
  "a=group:BUNDLE 0 1",
  "m=audio 9 UDP/TLS/RTP/SAVPF 111",
  "a=mid:0",
  "a=ice-ufrag:ysXw",
  "a=ice-pwd:vw5LmwG4y/e6dPP/zAP9Gp5k",
  "a=candidate:1387637174 1 udp 2122260223 192.0.2.1 61764 typ host generation 0 ufrag EsAw network-id 1",
  "a=candidate:3471623853 1 udp 2122194687 198.51.100.2 61765 typ host generation 0 ufrag EsAw network-id 2",
  "a=candidate:473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0 ufrag EsAw network-id 1",
  "a=candidate:2154773085 1 tcp 1518214911 198.51.100.2 9 typ host tcptype active generation 0 ufrag EsAw network-id 2",
);

// medooze whip.js: session-level ufrag/pwd, "m=<kind> 9 RTP/AVP 0", a=mid, a=<candidate>, per-media end.
const MEDOOZE_CHROME = crlf(
  "a=ice-ufrag:gydc",
  "a=ice-pwd:qEA+KCGezaoGknNYbpAADXBK",
  "m=audio 9 RTP/AVP 0",
  "a=mid:0",
  "a=candidate:1560499547 1 udp 2113937151 2cf0b2c0-0842-4fe3-aaa0-4556a2dfbadc.local 33192 typ host generation 0 ufrag gydc network-cost 999",
  "a=candidate:842163049 1 udp 1677729535 186.50.9.10 52200 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag gydc network-cost 999",
  "m=video 9 RTP/AVP 0",
  "a=mid:1",
  "a=candidate:3240263946 1 udp 41885439 203.0.113.9 59522 typ relay raddr 198.51.100.7 rport 54210 generation 0 ufrag gydc network-id 1",
  "a=end-of-candidates",
);

// Firefox candidates, LF endings, blank lines, and a restart frag without candidates.
const FIREFOX_LF = lf(
  "",
  "a=ice-ufrag:6a1b2c3d",
  "a=ice-pwd:0123456789abcdef0123456789abcdef",
  "",
  "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
  "a=mid:0",
  "a=candidate:0 1 UDP 2122252543 192.168.1.103 56528 typ host",
  "a=candidate:3 1 TCP 2105524479 192.168.1.103 9 typ host tcptype active",
  "a=candidate:1 1 UDP 1686052863 203.0.113.5 56528 typ srflx raddr 192.168.1.103 rport 56528",
  "a=candidate:4 1 UDP 2122187007 fe80::1c3e:9bff:fe2a:1234 44231 typ host",
);

describe("parseSdpFrag: real-world bodies", () => {
  it("RFC 8840 example (session-level credentials, pseudo m-line)", () => {
    const f = parseSdpFrag(RFC8840_INFO);
    expect(f.iceUfrag).toBe("EsAw");
    expect(f.icePwd).toBe("P2uYro0UCOQ4zxjKXaWCBui1");
    expect(f.media).toHaveLength(1);
    expect(f.media[0]).toEqual({
      mLine: "audio 9 RTP/AVP 0",
      mid: "1",
      candidates: [
        "candidate:1 1 UDP 2130706431 198.51.100.1 49203 typ host",
        "candidate:2 1 UDP 1694498815 192.0.2.3 51058 typ srflx raddr 198.51.100.1 rport 49203",
      ],
      endOfCandidates: true,
    });
    expect(f.endOfCandidates).toBe(false);
    expect(fragEnded(f)).toBe(true);
  });

  it("RFC 9725 trickle (media-level credentials, a=group ignored)", () => {
    const f = parseSdpFrag(RFC9725_TRICKLE);
    expect(f.iceUfrag).toBeUndefined();
    expect(fragUfrag(f)).toBe("EsAw");
    expect(fragPwd(f)).toBe("P2uYro0UCOQ4zxjKXaWCBui1");
    expect(f.media[0]?.candidates).toHaveLength(4);
    expect(f.media[0]?.mid).toBe("0");
    expect(fragCandidates(f)[2]).toEqual({
      candidate:
        "candidate:473322822 1 tcp 1518280447 192.0.2.1 9 typ host tcptype active generation 0 ufrag EsAw network-id 1",
      sdpMid: "0",
      sdpMLineIndex: 0,
      usernameFragment: "EsAw",
    });
  });

  it("RFC 9725 ICE restart (ice-options, new credentials, no end-of-candidates)", () => {
    const f = parseSdpFrag(RFC9725_RESTART);
    expect(f.iceOptions).toBe("trickle ice2");
    expect(fragUfrag(f)).toBe("ysXw");
    expect(fragPwd(f)).toBe("vw5LmwG4y/e6dPP/zAP9Gp5k");
    expect(fragEnded(f)).toBe(false);
  });

  it("medooze whip.js style with two media, mDNS and relay candidates", () => {
    const f = parseSdpFrag(MEDOOZE_CHROME);
    const c = fragCandidates(f);
    expect(c.map((x) => [x.sdpMid, x.sdpMLineIndex, x.usernameFragment])).toEqual([
      ["0", 0, "gydc"],
      ["0", 0, "gydc"],
      ["1", 1, "gydc"],
    ]);
    expect(parseCandidate(c[0]?.candidate ?? "").address).toBe(
      "2cf0b2c0-0842-4fe3-aaa0-4556a2dfbadc.local",
    );
    expect(f.media[0]?.endOfCandidates).toBe(false);
    expect(f.media[1]?.endOfCandidates).toBe(true);
    expect(fragEnded(f)).toBe(false);
  });

  it("Firefox candidates with LF endings and blank lines", () => {
    const f = parseSdpFrag(FIREFOX_LF);
    expect(f.media[0]?.mLine).toBe("application 9 UDP/DTLS/SCTP webrtc-datachannel");
    expect(f.media[0]?.candidates.map((c) => parseCandidate(c).type)).toEqual([
      "host",
      "host",
      "srflx",
      "host",
    ]);
    expect(parseCandidate(f.media[0]?.candidates[3] ?? "").address).toBe(
      "fe80::1c3e:9bff:fe2a:1234",
    );
  });

  it("restart frag with only credentials", () => {
    const f = parseSdpFrag("a=ice-ufrag:ysXw\r\na=ice-pwd:vw5LmwG4y/e6dPP/zAP9Gp5k\r\n");
    expect(f).toEqual({
      iceUfrag: "ysXw",
      icePwd: "vw5LmwG4y/e6dPP/zAP9Gp5k",
      candidates: [],
      media: [],
      endOfCandidates: false,
    });
    expect(fragCandidates(f)).toEqual([]);
  });

  it("session-level candidates and end-of-candidates (lenient)", () => {
    const f = parseSdpFrag(
      crlf(
        "a=ice-ufrag:EsAw",
        "a=candidate:1 1 UDP 2130706431 198.51.100.1 49203 typ host",
        "a=end-of-candidates",
      ),
    );
    expect(f.candidates).toEqual(["candidate:1 1 UDP 2130706431 198.51.100.1 49203 typ host"]);
    expect(f.endOfCandidates).toBe(true);
    expect(fragCandidates(f)).toEqual([
      {
        candidate: "candidate:1 1 UDP 2130706431 198.51.100.1 49203 typ host",
        sdpMLineIndex: 0,
        usernameFragment: "EsAw",
      },
    ]);
  });

  it("bare RTCIceCandidate strings without a= are read as attributes", () => {
    const f = parseSdpFrag(
      "a=ice-ufrag:EsAw\nm=audio 9 RTP/AVP 0\na=mid:0\ncandidate:1 1 udp 2130706431 10.0.0.1 5000 typ host\nend-of-candidates\n",
    );
    expect(f.media[0]?.candidates).toEqual(["candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host"]);
    expect(f.media[0]?.endOfCandidates).toBe(true);
  });

  it("CR-only endings, trailing whitespace, c= line in media, extension attributes", () => {
    const f = parseSdpFrag(
      "a=ice-ufrag:EsAw  \ra=ice-lite\ra=ice-pacing:50\rm=audio 9 RTP/AVP 0\rc=IN IP4 0.0.0.0\ra=mid:a\ra=x-foo:bar\r",
    );
    expect(f.iceUfrag).toBe("EsAw");
    expect(f.media[0]?.mid).toBe("a");
  });

  it("an empty body is an empty fragment", () => {
    expect(parseSdpFrag("")).toEqual({ candidates: [], media: [], endOfCandidates: false });
    expect(parseSdpFrag("\r\n\r\n")).toEqual({ candidates: [], media: [], endOfCandidates: false });
  });
});

describe("parseSdpFrag: malformed input", () => {
  const cases: [string, string, RegExp][] = [
    [
      "full SDP",
      "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n",
      /line 1: "v=" lines are not allowed.*full SDP/,
    ],
    [
      "garbage line",
      "a=ice-ufrag:EsAw\r\nhello world\r\n",
      /line 2: expected "<type>=<value>".*hello world/,
    ],
    ["mid before m=", "a=mid:0\r\n", /line 1: a=mid before any m= line/],
    [
      "duplicate ufrag",
      "a=ice-ufrag:EsAw\r\na=ice-ufrag:EsAx\r\n",
      /line 2: duplicate a=ice-ufrag/,
    ],
    ["duplicate mid", "m=audio 9 RTP/AVP 0\r\na=mid:0\r\na=mid:1\r\n", /line 3: duplicate a=mid/],
    ["short ufrag", "a=ice-ufrag:abc\r\n", /line 1: ice-ufrag must be 4\.\.256/],
    ["bad ufrag chars", "a=ice-ufrag:ab-cd\r\n", /line 1: ice-ufrag "ab-cd" may only contain/],
    ["short pwd", "a=ice-pwd:tooshort\r\n", /line 1: ice-pwd must be 22\.\.256/],
    ["empty ufrag", "a=ice-ufrag\r\n", /line 1: a=ice-ufrag needs a value/],
    ["bad m-line", "m=audio\r\n", /line 1: m= line "audio" is not/],
    ["bad m-line port", "m=audio x RTP/AVP 0\r\n", /line 1: m= line/],
    ["b= at session level", "b=AS:30\r\n", /line 1: "b=" lines are not allowed at session level/],
    [
      "t= in media",
      "m=audio 9 RTP/AVP 0\r\nt=0 0\r\n",
      /line 2: "t=" lines are not allowed in a media/,
    ],
    [
      "end-of-candidates with value",
      "a=end-of-candidates:1\r\n",
      /line 1: a=end-of-candidates takes no value/,
    ],
    ["bad attribute name", "a=\r\n", /line 1: not an attribute/],
    [
      "candidate too short",
      "m=audio 9 RTP/AVP 0\r\na=candidate:1 1 UDP 2130706431 198.51.100.1 49203\r\n",
      /line 2: bad candidate .*expected <foundation>/,
    ],
    [
      "candidate without typ",
      "a=candidate:1 1 UDP 2130706431 198.51.100.1 49203 type host\r\n",
      /line 1: bad candidate .*expected "typ"/,
    ],
    [
      "candidate bad port",
      "a=candidate:1 1 UDP 2130706431 198.51.100.1 70000 typ host\r\n",
      /port "70000" is not 0\.\.65535/,
    ],
    [
      "candidate bad component",
      "a=candidate:1 x UDP 2130706431 198.51.100.1 5000 typ host\r\n",
      /component must be/,
    ],
    [
      "candidate bad priority",
      "a=candidate:1 1 UDP 99999999999 198.51.100.1 5000 typ host\r\n",
      /priority must be/,
    ],
    [
      "candidate bad foundation",
      "a=candidate:fo-o 1 UDP 1 198.51.100.1 5000 typ host\r\n",
      /foundation must be/,
    ],
    [
      "candidate bad address",
      "a=candidate:1 1 UDP 1 [::1] 5000 typ host\r\n",
      /address "\[::1\]" is not an IP or FQDN/,
    ],
    [
      "candidate odd extensions",
      "a=candidate:1 1 UDP 1 10.0.0.1 5000 typ host generation\r\n",
      /extensions must be name\/value pairs/,
    ],
    [
      "candidate bad rport",
      "a=candidate:1 1 UDP 1 10.0.0.1 5000 typ srflx raddr 10.0.0.2 rport x\r\n",
      /rport "x"/,
    ],
  ];
  it.each(cases)("%s", (_name, body, message) => {
    let err: unknown;
    try {
      parseSdpFrag(body);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SdpFragError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain("\n");
  });

  it("reports the line number in .line", () => {
    try {
      parseSdpFrag("a=ice-ufrag:EsAw\r\n\r\nm=audio 9 RTP/AVP 0\r\nq=1\r\n");
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(SdpFragError);
      expect((e as SdpFragError).line).toBe(4);
    }
  });
});

describe("parseCandidate", () => {
  it("reads every field, raddr/rport and extensions", () => {
    expect(
      parseCandidate(
        "candidate:842163049 1 udp 1677729535 186.50.9.10 52200 typ srflx raddr 0.0.0.0 rport 0 generation 0 network-cost 999",
      ),
    ).toEqual({
      foundation: "842163049",
      component: 1,
      transport: "udp",
      priority: 1677729535,
      address: "186.50.9.10",
      port: 52200,
      type: "srflx",
      relatedAddress: "0.0.0.0",
      relatedPort: 0,
      extensions: [
        ["generation", "0"],
        ["network-cost", "999"],
      ],
    });
  });

  it("accepts a=, candidate: and bare forms; normalizeCandidate gives candidate:...", () => {
    const v = "1 1 UDP 2130706431 198.51.100.1 49203 typ host";
    for (const s of [v, `candidate:${v}`, `a=candidate:${v}`]) {
      expect(parseCandidate(s).port).toBe(49203);
      expect(normalizeCandidate(s)).toBe(`candidate:${v}`);
    }
  });
});

describe("werift candidates", () => {
  it("parses what a real werift peer gathers (host candidates only)", async () => {
    const { RTCPeerConnection } = await import("werift");
    const pc = new RTCPeerConnection({ iceServers: [] });
    try {
      const got: { candidate: string; sdpMid?: string; sdpMLineIndex?: number }[] = [];
      const done = new Promise<void>((resolve) => {
        pc.onIceCandidate.subscribe((c) => {
          if (c?.candidate) got.push(c as (typeof got)[number]);
          else resolve();
        });
      });
      pc.createDataChannel("ctl");
      await pc.setLocalDescription(await pc.createOffer());
      await done;
      expect(got.length).toBeGreaterThan(0);
      const sdp = pc.localDescription?.sdp ?? "";
      const ufrag = /a=ice-ufrag:(\S+)/.exec(sdp)?.[1] ?? "";
      const pwd = /a=ice-pwd:(\S+)/.exec(sdp)?.[1] ?? "";
      const frag = buildCandidateFrag({
        ufrag,
        pwd,
        candidates: got,
        end: true,
        mLine: "application 9 UDP/DTLS/SCTP webrtc-datachannel",
      });
      const text = serializeSdpFrag(frag);
      const back = parseSdpFrag(text);
      expect(back).toEqual(frag);
      expect(fragCandidates(back).map((c) => c.candidate)).toEqual(
        got.map((c) => normalizeCandidate(c.candidate)),
      );
      // The candidate lines of werift's own SDP parse as well.
      for (const line of sdp.split("\r\n").filter((l) => l.startsWith("a=candidate:"))) {
        expect(parseCandidate(line).component).toBe(1);
      }
    } finally {
      await pc.close();
    }
  });
});

describe("buildCandidateFrag", () => {
  it("groups by sdpMid, treats empty candidate as end marker, normalizes a= prefix", () => {
    const frag = buildCandidateFrag({
      ufrag: "EsAw",
      pwd: "P2uYro0UCOQ4zxjKXaWCBui1",
      candidates: [
        {
          candidate: "candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host",
          sdpMid: "0",
          sdpMLineIndex: 0,
        },
        {
          candidate: "a=candidate:2 1 udp 2130706431 10.0.0.2 5000 typ host",
          sdpMid: "1",
          sdpMLineIndex: 1,
        },
        {
          candidate: "candidate:3 1 udp 2130706431 10.0.0.3 5000 typ host",
          sdpMid: "0",
          sdpMLineIndex: 0,
        },
        { candidate: "", sdpMid: "0", sdpMLineIndex: 0 },
      ],
    });
    expect(serializeSdpFrag(frag)).toBe(
      crlf(
        "a=ice-ufrag:EsAw",
        "a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1",
        `m=${PSEUDO_M_LINE}`,
        "a=mid:0",
        "a=candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host",
        "a=candidate:3 1 udp 2130706431 10.0.0.3 5000 typ host",
        "a=end-of-candidates",
        `m=${PSEUDO_M_LINE}`,
        "a=mid:1",
        "a=candidate:2 1 udp 2130706431 10.0.0.2 5000 typ host",
      ),
    );
  });

  it("without mid keys by sdpMLineIndex; end adds session-level end-of-candidates", () => {
    const frag = buildCandidateFrag({
      ufrag: "EsAw",
      candidates: [
        { candidate: "candidate:1 1 udp 1 10.0.0.1 5000 typ host", sdpMid: null, sdpMLineIndex: 0 },
      ],
      end: true,
    });
    expect(frag.media).toHaveLength(1);
    expect(frag.media[0]?.mid).toBeUndefined();
    expect(frag.endOfCandidates).toBe(true);
    expect(fragEnded(frag)).toBe(true);
    expect(serializeSdpFrag(frag)).toContain("a=end-of-candidates\r\nm=");
  });

  it("rejects a bad candidate and a bad ufrag with SdpFragError", () => {
    expect(() =>
      buildCandidateFrag({ ufrag: "EsAw", candidates: [{ candidate: "candidate:nonsense" }] }),
    ).toThrow(SdpFragError);
    expect(() => buildCandidateFrag({ ufrag: "a\r\nb", candidates: [] })).toThrow(SdpFragError);
  });
});

describe("serializeSdpFrag", () => {
  it("refuses injection through fields", () => {
    const base: SdpFrag = { candidates: [], media: [], endOfCandidates: false };
    expect(() => serializeSdpFrag({ ...base, iceUfrag: "EsAw\r\nv=0" })).toThrow(SdpFragError);
    expect(() =>
      serializeSdpFrag({
        ...base,
        media: [
          { mLine: "audio 9 RTP/AVP 0", mid: "0\r\na=x", candidates: [], endOfCandidates: false },
        ],
      }),
    ).toThrow(SdpFragError);
    expect(() =>
      serializeSdpFrag({
        ...base,
        candidates: ["candidate:1 1 udp 1 10.0.0.1 5000 typ host\r\nv=0"],
      }),
    ).toThrow(SdpFragError);
  });

  it("real-world bodies survive parse∘serialize∘parse", () => {
    for (const body of [
      RFC8840_INFO,
      RFC9725_TRICKLE,
      RFC9725_RESTART,
      MEDOOZE_CHROME,
      FIREFOX_LF,
    ]) {
      const f = parseSdpFrag(body);
      expect(parseSdpFrag(serializeSdpFrag(f))).toEqual(f);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const iceChars = fc.stringMatching(/^[A-Za-z0-9+/]{1,32}$/);
const ufrag = fc.stringMatching(/^[A-Za-z0-9+/]{4,12}$/);
const pwd = fc.stringMatching(/^[A-Za-z0-9+/]{22,32}$/);
const token = fc.stringMatching(/^[A-Za-z0-9._-]{1,8}$/);
const ipv4 = fc.ipV4();
const candidate = fc
  .record({
    foundation: iceChars,
    component: fc.integer({ min: 1, max: 2 }),
    transport: fc.constantFrom("udp", "UDP", "tcp"),
    priority: fc.integer({ min: 0, max: 0xffffffff }),
    address: fc.oneof(
      ipv4,
      fc.ipV6(),
      fc.uuid().map((u) => `${u}.local`),
    ),
    port: fc.integer({ min: 0, max: 65535 }),
    type: fc.constantFrom("host", "srflx", "prflx", "relay"),
    rel: fc.option(fc.tuple(ipv4, fc.integer({ min: 0, max: 65535 })), { nil: undefined }),
    ext: fc.array(fc.tuple(token, fc.stringMatching(/^[\x21-\x7e]{1,6}$/)), { maxLength: 3 }),
  })
  .map(
    (c) =>
      `candidate:${c.foundation} ${c.component} ${c.transport} ${c.priority} ${c.address} ${c.port} typ ${c.type}` +
      (c.rel ? ` raddr ${c.rel[0]} rport ${c.rel[1]}` : "") +
      c.ext.map(([n, v]) => ` x${n} ${v}`).join(""),
  );

function opt<K extends string, V>(key: K, arb: fc.Arbitrary<V>) {
  return fc
    .option(arb, { nil: undefined })
    .map((v) => (v === undefined ? {} : { [key]: v }) as { [P in K]?: V });
}

const media = fc
  .tuple(
    fc.constantFrom(
      PSEUDO_M_LINE,
      "application 9 UDP/DTLS/SCTP webrtc-datachannel",
      "video 9 UDP/TLS/RTP/SAVPF 96",
    ),
    opt("mid", token),
    opt("iceUfrag", ufrag),
    opt("icePwd", pwd),
    fc.array(candidate, { maxLength: 4 }),
    fc.boolean(),
  )
  .map(([mLine, mid, u, p, candidates, endOfCandidates]) => ({
    mLine,
    ...mid,
    ...u,
    ...p,
    candidates,
    endOfCandidates,
  }));

const frag: fc.Arbitrary<SdpFrag> = fc
  .tuple(
    opt("iceUfrag", ufrag),
    opt("icePwd", pwd),
    opt("iceOptions", fc.constantFrom("trickle", "trickle ice2", "ice2")),
    fc.array(candidate, { maxLength: 2 }),
    fc.array(media, { maxLength: 3 }),
    fc.boolean(),
  )
  .map(([u, p, o, candidates, m, endOfCandidates]) => ({
    ...u,
    ...p,
    ...o,
    candidates,
    media: m,
    endOfCandidates,
  }));

describe("properties", () => {
  it("parse ∘ serialize is the identity on the model", () => {
    fc.assert(
      fc.property(frag, (f) => {
        expect(parseSdpFrag(serializeSdpFrag(f))).toEqual(f);
      }),
      { numRuns: 500 },
    );
  });

  it("LF endings parse to the same model as CRLF", () => {
    fc.assert(
      fc.property(frag, (f) => {
        expect(parseSdpFrag(serializeSdpFrag(f).replaceAll("\r\n", "\n"))).toEqual(f);
      }),
      { numRuns: 200 },
    );
  });

  it("parse throws nothing but SdpFragError on arbitrary text", () => {
    const lineish = fc.oneof(
      fc.string(),
      fc.constantFrom(
        "a=",
        "m=",
        "a=candidate:",
        "a=mid:",
        "a=ice-ufrag:",
        "candidate:",
        "v=0",
        "\r\n",
        "\n",
        " ",
      ),
    );
    fc.assert(
      fc.property(fc.array(lineish, { maxLength: 12 }), (parts) => {
        const text = parts.join("");
        try {
          parseSdpFrag(text);
        } catch (e) {
          expect(e).toBeInstanceOf(SdpFragError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("parse throws nothing but SdpFragError on mutated valid bodies", () => {
    fc.assert(
      fc.property(frag, fc.nat(), fc.string({ maxLength: 3 }), (f, at, ins) => {
        const s = serializeSdpFrag(f);
        const i = s.length === 0 ? 0 : at % s.length;
        try {
          parseSdpFrag(s.slice(0, i) + ins + s.slice(i + 1));
        } catch (e) {
          expect(e).toBeInstanceOf(SdpFragError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
