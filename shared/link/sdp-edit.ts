/**
 * The few SDP edits a WHIP-style ICE restart needs. A `restart` event carries only the peer's
 * new ufrag/pwd/candidates (an RFC 8840 sdpfrag), but werift takes whole descriptions: the
 * current remote description is rewritten with the new credentials, and our reply is cut out of
 * the new local description. Line-based on purpose: the rest of the SDP must stay byte-for-byte
 * as werift wrote or read it (a parse/write round trip would reorder and renormalize it).
 */

export interface IceCredentials {
  ufrag: string;
  pwd: string;
}

export interface SdpCandidate {
  /** `candidate:...` (no `a=`), as RTCIceCandidateInit.candidate. */
  candidate: string;
  sdpMid?: string;
  sdpMLineIndex: number;
}

function lines(sdp: string): string[] {
  return sdp.split(/\r?\n/).filter((l) => l.length > 0);
}

/** The first ice-ufrag/ice-pwd of an SDP (session or media level), or null. */
export function iceCredentials(sdp: string): IceCredentials | null {
  const ufrag = /^a=ice-ufrag:(\S+)/m.exec(sdp)?.[1];
  const pwd = /^a=ice-pwd:(\S+)/m.exec(sdp)?.[1];
  return ufrag && pwd ? { ufrag, pwd } : null;
}

/**
 * Our own session-level attribute naming the PeerConnection that wrote the SDP. werift gives no
 * such identity (its DTLS certificate is shared by every PeerConnection of a process, its o= line
 * changes with every description), and an ICE restart offered in a new session must tell "the
 * PeerConnection you already talk to" from "a new one". Endpoints ignore unknown attributes.
 */
const PC_ATTR = "a=x-roverlink-pc:";

/** The SDP with our PeerConnection id added at session level (before the first m= line). */
export function withPcId(sdp: string, id: string): string {
  const at = sdp.search(/^m=/m);
  const line = `${PC_ATTR}${id}\r\n`;
  return at < 0 ? sdp + line : sdp.slice(0, at) + line + sdp.slice(at);
}

/** The PeerConnection id a roverlink agent put in an SDP, or null (other endpoints). */
export function pcIdOf(sdp: string | undefined): string | null {
  return /^a=x-roverlink-pc:(\S+)/m.exec(sdp ?? "")?.[1] ?? null;
}

/**
 * The SDP with every ice-ufrag/ice-pwd replaced and the old generation's candidates removed
 * (the new ones arrive with the fragment and by trickle).
 */
export function withIceCredentials(sdp: string, creds: IceCredentials): string {
  const out: string[] = [];
  for (const l of lines(sdp)) {
    if (l.startsWith("a=ice-ufrag:")) out.push(`a=ice-ufrag:${creds.ufrag}`);
    else if (l.startsWith("a=ice-pwd:")) out.push(`a=ice-pwd:${creds.pwd}`);
    else if (l.startsWith("a=candidate:") || l === "a=end-of-candidates") continue;
    else out.push(l);
  }
  return `${out.join("\r\n")}\r\n`;
}

/** The a=candidate lines of an SDP with the mid and index of their media section. */
export function sdpCandidates(sdp: string): SdpCandidate[] {
  // A section's a=mid may come after its candidates: collect per section first.
  const sections: { mid?: string; candidates: string[] }[] = [{ candidates: [] }];
  for (const l of lines(sdp)) {
    if (l.startsWith("m=")) sections.push({ candidates: [] });
    const s = sections.at(-1) as { mid?: string; candidates: string[] };
    if (l.startsWith("a=mid:")) s.mid = l.slice(6).trim();
    else if (l.startsWith("a=candidate:")) s.candidates.push(l.slice(2));
  }
  // Session-level candidates (section 0 here) belong to the first m= line.
  return sections.flatMap((s, i) =>
    s.candidates.map((candidate) => ({
      candidate,
      sdpMLineIndex: Math.max(0, i - 1),
      ...(s.mid !== undefined ? { sdpMid: s.mid } : {}),
    })),
  );
}

/**
 * The SDP with no more than `max` a=candidate lines (the first ones kept), and how many went.
 * Unchanged, byte for byte, when it has no more.
 */
export function withCandidatesCapped(sdp: string, max: number): { sdp: string; dropped: number } {
  let kept = 0;
  let dropped = 0;
  const out: string[] = [];
  for (const l of lines(sdp)) {
    if (l.startsWith("a=candidate:") && kept++ >= max) dropped++;
    else out.push(l);
  }
  return dropped === 0 ? { sdp, dropped } : { sdp: `${out.join("\r\n")}\r\n`, dropped };
}

/**
 * Whether the writer of a description (offer or answer) will send audio (`sends`) and take it
 * (`takes`), from its first audio section; null when it has none. A rejected section (port 0) or
 * `inactive` does neither.
 */
export function sdpAudio(sdp: string): { sends: boolean; takes: boolean } | null {
  let inAudio = false;
  let rejected = false;
  let dir = "sendrecv";
  let found = false;
  for (const l of lines(sdp)) {
    if (l.startsWith("m=")) {
      if (found) break;
      inAudio = l.startsWith("m=audio ");
      if (inAudio) {
        found = true;
        rejected = /^m=audio 0 /.test(l);
      }
      continue;
    }
    if (inAudio && /^a=(sendrecv|sendonly|recvonly|inactive)$/.test(l)) dir = l.slice(2);
  }
  if (!found) return null;
  if (rejected) return { sends: false, takes: false };
  return {
    sends: dir === "sendrecv" || dir === "sendonly",
    takes: dir === "sendrecv" || dir === "recvonly",
  };
}
