import { describe, expect, it } from "vitest";
import { CandidateBuffer } from "../../../shared/link/candidate-buffer.ts";
import {
  buildCandidateFrag,
  type FragCandidate,
  fragCandidates,
  parseSdpFrag,
  serializeSdpFrag,
} from "../../../shared/sdpfrag.ts";

/** Candidates as a `candidates` event carries them: an sdpfrag through the wire format. */
function frag(ufrag: string | undefined, ...ports: number[]): FragCandidate[] {
  const candidates = ports.map((p) => ({
    candidate: `candidate:${p} 1 udp 2130706431 127.0.0.1 ${p} typ host`,
    sdpMid: "0",
  }));
  const built = buildCandidateFrag({ ufrag: ufrag ?? "none", candidates });
  if (ufrag === undefined) delete built.iceUfrag;
  return fragCandidates(parseSdpFrag(serializeSdpFrag(built)));
}

const ports = (cs: FragCandidate[]) => cs.map((c) => Number(c.candidate.split(" ")[5]));

describe("CandidateBuffer", () => {
  it("holds candidates that arrive before their description and hands them out once it is applied", () => {
    const b = new CandidateBuffer();
    b.hold("s1", frag("uAufrag", 5000, 5001));
    // The description applied so far is the old generation (ufrag uOld): nothing fits yet.
    expect(b.take("s1", "uOldufrag")).toEqual([]);
    expect(b.size).toBe(2);
    const got = b.take("s1", "uAufrag");
    expect(ports(got)).toEqual([5000, 5001]);
    expect(got[0]).toMatchObject({ sdpMid: "0", usernameFragment: "uAufrag" });
    expect(b.size).toBe(0);
    expect(b.take("s1", "uAufrag")).toEqual([]);
  });

  it("keeps candidates of a session not known yet, and per session", () => {
    const b = new CandidateBuffer();
    b.hold("s2", frag("uBufrag", 6000)); // the answer's candidates, before our POST returned
    b.hold("s1", frag("uAufrag", 5000));
    expect(b.take("s1", "uBufrag")).toEqual([]);
    expect(ports(b.take("s2", "uBufrag"))).toEqual([6000]);
    expect(ports(b.take("s1", "uAufrag"))).toEqual([5000]);
  });

  it("gives candidates without a ufrag to whatever description the session has, in order", () => {
    const b = new CandidateBuffer();
    b.hold("s1", frag(undefined, 7000));
    b.hold("s1", frag("uNextufrag", 7001));
    b.hold("s1", frag(undefined, 7002));
    expect(ports(b.take("s1", "uNowufrag"))).toEqual([7000, 7002]);
    expect(ports(b.take("s1", "uNextufrag"))).toEqual([7001]);
  });

  it("forgets other sessions when a new one replaces them", () => {
    const b = new CandidateBuffer();
    b.hold("old", frag("u1ufrag", 5000));
    b.hold("new", frag("u2ufrag", 5001));
    b.keepOnly("new");
    expect(b.size).toBe(1);
    expect(b.take("old", "u1ufrag")).toEqual([]);
    expect(ports(b.take("new", "u2ufrag"))).toEqual([5001]);
  });

  it("is bounded: past the limit the oldest are dropped and counted", () => {
    const b = new CandidateBuffer(3);
    b.hold("s1", frag("uufrag", 1, 2, 3, 4, 5));
    expect(b.size).toBe(3);
    expect(b.dropped).toBe(2);
    expect(ports(b.take("s1", "uufrag"))).toEqual([3, 4, 5]);
  });
});
