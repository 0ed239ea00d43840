/**
 * Small SDP edits the browser needs for WHIP-style ICE restarts (RFC 8840 sdpfrag): a restart
 * that arrives as a fragment (new ufrag/pwd) is applied by rewriting the current remote
 * description, since RTCPeerConnection only accepts whole descriptions.
 */
export interface IceCredentials {
  ufrag: string;
  pwd: string;
}

const CRLF = "\r\n";

function lines(sdp: string): string[] {
  return sdp.split(/\r?\n/).filter((l) => l.length > 0);
}

/** The first ice-ufrag/ice-pwd in an SDP or sdpfrag. */
export function iceCredentials(sdp: string): IceCredentials | null {
  const ufrag = /^a=ice-ufrag:(.+)$/m.exec(sdp)?.[1]?.trim();
  const pwd = /^a=ice-pwd:(.+)$/m.exec(sdp)?.[1]?.trim();
  return ufrag && pwd ? { ufrag, pwd } : null;
}

/** Replace every ice-ufrag/ice-pwd and drop old candidates (they belong to the old generation). */
export function withIceCredentials(sdp: string, creds: IceCredentials): string {
  const out: string[] = [];
  for (const l of lines(sdp)) {
    if (l.startsWith("a=ice-ufrag:")) out.push(`a=ice-ufrag:${creds.ufrag}`);
    else if (l.startsWith("a=ice-pwd:")) out.push(`a=ice-pwd:${creds.pwd}`);
    else if (l.startsWith("a=candidate:") || l === "a=end-of-candidates") continue;
    else out.push(l);
  }
  return out.join(CRLF) + CRLF;
}

export interface SdpCandidate {
  /** "candidate:..." without the "a=" */
  candidate: string;
  mid: string | null;
}

/** The a=candidate lines of an SDP with the mid of the media section they sit in. */
export function sdpCandidates(sdp: string): SdpCandidate[] {
  const out: SdpCandidate[] = [];
  let mid: string | null = null;
  for (const l of lines(sdp)) {
    if (l.startsWith("m=")) mid = null;
    else if (l.startsWith("a=mid:")) mid = l.slice(6).trim();
    else if (l.startsWith("a=candidate:")) out.push({ candidate: l.slice(2), mid });
  }
  return out;
}

/** True when the SDP has an audio m-line that is not rejected (port 0). */
export function hasAudio(sdp: string): boolean {
  return lines(sdp).some((l) => /^m=audio [1-9]/.test(l));
}
