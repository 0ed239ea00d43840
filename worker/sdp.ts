/** Checks an SDP offer/answer is usable before it is relayed: parse, do not trust. */
import { parse } from "sdp-transform";

/** Returns null when the SDP is acceptable, otherwise a one-line reason. */
export function sdpProblem(text: string): string | null {
  if (!/^v=0\r?\n/.test(text)) return "SDP must start with v=0";
  let s: ReturnType<typeof parse>;
  try {
    s = parse(text);
  } catch {
    return "SDP does not parse";
  }
  if (!Array.isArray(s.media) || s.media.length === 0) return "SDP has no m= section";
  const every = (f: (m: (typeof s.media)[number]) => unknown) =>
    s.media.every((m) => Boolean(f(m)));
  if (!s.iceUfrag && !every((m) => m.iceUfrag)) return "SDP has no a=ice-ufrag";
  if (!s.icePwd && !every((m) => m.icePwd)) return "SDP has no a=ice-pwd";
  if (!s.fingerprint && !every((m) => m.fingerprint)) return "SDP has no a=fingerprint";
  return null;
}
