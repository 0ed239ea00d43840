/**
 * RFC 7800 proof-of-possession binding (docs/protocol.md "Certificate-bound tokens"): a token
 * with `cnf.x5t#S256` may only send descriptions whose every `a=fingerprint` is that
 * certificate's. A token copied to another machine then cannot link from there: werift and
 * browsers only accept a DTLS certificate that matches the description, and the thief lacks the
 * key. This guards against a stolen token at an honest edge, not against the edge itself
 * (rovers' trust files do that, docs/rover.md).
 */
import { checkSdpFingerprints, fingerprintFromX5t } from "../shared/fingerprint.ts";
import type { TokenClaims } from "../shared/protocol.ts";

/** Why `sdp` may not be sent with a token bound to another certificate, or null. */
export function cnfProblem(claims: TokenClaims, sdp: string): string | null {
  const x5t = claims.cnf?.["x5t#S256"];
  if (x5t === undefined) return null;
  const why = checkSdpFingerprints(sdp, [fingerprintFromX5t(x5t)]);
  return why === null ? null : `this token is bound to another certificate (cnf): ${why}`;
}
