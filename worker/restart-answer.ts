/**
 * The answer to an ICE restart by PATCH (RFC 9725 §4.3.2), split for WHIP clients that take at
 * most one candidate from it: medooze's whip-whep (1.2.0) joins the answer's a=candidate lines
 * with "," into one line of the remote SDP, which then fails to parse when there are two. The
 * 200 carries the ICE credentials, the end-of-candidates mark and the highest-priority candidate;
 * the other candidates go to the restarting peer's event log as a `candidates` event (clients
 * that read events apply them; the rest find the answerer's other paths as peer-reflexive ones
 * when its connectivity checks arrive, since the answerer has their candidates).
 */
import {
  parseCandidate,
  type SdpFrag,
  type SdpFragMedia,
  serializeSdpFrag,
} from "../shared/sdpfrag.ts";

export interface SplitAnswer {
  /** What the restarting request gets: credentials and at most one candidate. */
  response: string;
  /** The other candidates as an sdpfrag with the same credentials, or null when there are none. */
  rest: string | null;
}

function priority(candidate: string): number {
  try {
    return parseCandidate(candidate).priority;
  } catch {
    return -1;
  }
}

export function splitRestartAnswer(frag: SdpFrag, text: string): SplitAnswer {
  const all = [
    ...frag.candidates.map((c) => ({ c, media: -1 })),
    ...frag.media.flatMap((m, i) => m.candidates.map((c) => ({ c, media: i }))),
  ];
  if (all.length <= 1) return { response: text, rest: null };
  const best = all.reduce((a, b) => (priority(b.c) > priority(a.c) ? b : a));
  const only = (keep: (c: string, media: number) => boolean, ended: boolean): SdpFrag => ({
    ...frag,
    candidates: frag.candidates.filter((c) => keep(c, -1)),
    endOfCandidates: ended && frag.endOfCandidates,
    media: frag.media.map(
      (m, i): SdpFragMedia => ({
        ...m,
        candidates: m.candidates.filter((c) => keep(c, i)),
        endOfCandidates: ended && m.endOfCandidates,
      }),
    ),
  });
  const isBest = (c: string, media: number) => c === best.c && media === best.media;
  return {
    response: serializeSdpFrag(only(isBest, false)),
    rest: serializeSdpFrag(only((c, m) => !isBest(c, m), true)),
  };
}
