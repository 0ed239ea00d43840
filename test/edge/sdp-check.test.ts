import { describe, expect, it } from "vitest";
import { checkSdp } from "../../worker/sdp.ts";
import { sdp } from "./helpers.ts";

/** An m= section appended to a complete offer, with no ICE or DTLS lines of its own. */
const bare = (...lines: string[]) => `${sdp("ufr1")}${lines.join("\r\n")}\r\n`;

describe("checkSdp", () => {
  it("takes a rejected (port 0) or bundle-only section with no transport lines of its own", () => {
    const rejected = bare(
      "m=audio 0 UDP/TLS/RTP/SAVPF 111",
      "c=IN IP4 0.0.0.0",
      "a=mid:1",
      "a=rtpmap:111 opus/48000/2",
    );
    expect(checkSdp(rejected)).toEqual({ ok: true, ufrag: "ufr1" });
    const bundleOnly = bare(
      "m=audio 9 UDP/TLS/RTP/SAVPF 111",
      "c=IN IP4 0.0.0.0",
      "a=bundle-only",
      "a=mid:1",
      "a=rtpmap:111 opus/48000/2",
    );
    expect(checkSdp(bundleOnly)).toEqual({ ok: true, ufrag: "ufr1" });
  });

  it("still wants ICE and DTLS lines in every section with a port of its own", () => {
    const open = bare("m=audio 9 UDP/TLS/RTP/SAVPF 111", "c=IN IP4 0.0.0.0", "a=mid:1");
    expect(checkSdp(open)).toEqual({ ok: false, problem: "SDP has no a=ice-ufrag" });
  });

  it("refuses a description whose every section is rejected", () => {
    const all = sdp("ufr1").replace("m=application 9 ", "m=application 0 ");
    expect(checkSdp(all)).toEqual({
      ok: false,
      problem: "SDP has no m= section with a port (all rejected)",
    });
  });

  it("reads the ufrag from the first section with a transport", () => {
    const first = sdp("ufr1").replace(
      "a=group:BUNDLE 0\r\n",
      "a=group:BUNDLE 0\r\nm=audio 0 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:olde\r\na=ice-pwd:0123456789abcdefghijkl\r\na=mid:9\r\n",
    );
    expect(checkSdp(first)).toEqual({ ok: true, ufrag: "ufr1" });
  });
});
