/** Checks an SDP offer/answer is usable before it is relayed: parse, do not trust. */
import { parse } from "sdp-transform";
import { checkPwd, checkUfrag } from "../shared/sdpfrag.ts";

/** A usable SDP's ICE ufrag (session level, else the first m= section's), or why it is not. */
export type SdpCheck = { ok: true; ufrag: string } | { ok: false; problem: string };

export function checkSdp(text: string): SdpCheck {
  const no = (problem: string): SdpCheck => ({ ok: false, problem });
  if (!/^v=0\r?\n/.test(text)) return no("SDP must start with v=0");
  let s: ReturnType<typeof parse>;
  try {
    s = parse(text);
  } catch {
    return no("SDP does not parse");
  }
  if (!Array.isArray(s.media) || s.media.length === 0) return no("SDP has no m= section");
  // A rejected section (port 0, JSEP §5.3.1) and a bundle-only one (RFC 8843 §6) may carry no
  // transport of their own: ICE and DTLS ride on the bundle's other section.
  const transport = s.media.filter((m) => m.port !== 0 && !m.bundleOnly);
  if (transport.length === 0) return no("SDP has no m= section with a port (all rejected)");
  const every = (f: (m: (typeof s.media)[number]) => unknown) =>
    transport.every((m) => Boolean(f(m)));
  const ufrag = s.iceUfrag ?? transport[0]?.iceUfrag;
  if (!s.iceUfrag && !every((m) => m.iceUfrag)) return no("SDP has no a=ice-ufrag");
  if (!s.icePwd && !every((m) => m.icePwd)) return no("SDP has no a=ice-pwd");
  if (!s.fingerprint && !every((m) => m.fingerprint)) return no("SDP has no a=fingerprint");
  // The grammar a later PATCH's sdpfrag is held to (RFC 8839 §5.4): a session the edge accepts
  // must be able to trickle and restart with the same kind of credentials.
  for (const v of [s.iceUfrag, ...s.media.map((m) => m.iceUfrag)]) {
    const bad = v === undefined ? undefined : checkUfrag(String(v));
    if (bad) return no(bad);
  }
  for (const v of [s.icePwd, ...s.media.map((m) => m.icePwd)]) {
    const bad = v === undefined ? undefined : checkPwd(String(v));
    if (bad) return no(bad);
  }
  return { ok: true, ufrag: String(ufrag) };
}
