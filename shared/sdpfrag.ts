/**
 * RFC 8840 `application/trickle-ice-sdpfrag` codec: the body of a trickle or ICE-restart PATCH
 * and of the `restart` / `candidates` events. Runtime-agnostic (workerd, Node, browser).
 *
 * Accepted input (what real clients send, RFC 8840 §9.2 grammar plus common leniencies):
 * - CRLF, LF or CR line endings; blank lines and trailing whitespace are ignored.
 * - Session level: `a=ice-ufrag`, `a=ice-pwd`, `a=ice-options`, `a=end-of-candidates`, and
 *   (lenient, some WHIP clients do this) `a=candidate` lines before any `m=` line.
 * - Media level, after a (pseudo) `m=` line such as `m=audio 9 RTP/AVP 0`: `a=mid`,
 *   `a=ice-ufrag`, `a=ice-pwd`, `a=candidate`, `a=end-of-candidates`; `c=` lines are ignored.
 * - `candidate:...` / `end-of-candidates` without the `a=` prefix (as found in
 *   RTCIceCandidate.candidate strings pasted verbatim) are read as if prefixed.
 * - Other attributes (`a=group`, `a=ice-lite`, `a=ice-pacing`, `a=remote-candidates`, extension
 *   attributes) are allowed by the grammar and ignored: they are not part of the model.
 * Anything else (full-SDP lines like `v=`/`o=`/`s=`/`t=`, a line that is not `<type>=<value>`,
 * `a=mid` before any `m=`, duplicate ufrag/pwd/mid, bad ufrag/pwd/candidate grammar) throws
 * SdpFragError naming the line.
 *
 * Candidates in the model are kept verbatim as the full attribute `candidate:<value>`, exactly
 * the form of RTCIceCandidateInit.candidate, so they can be handed to addIceCandidate as is.
 */

export class SdpFragError extends Error {
  /** 1-based line number of the offending line, when the error is about one line. */
  readonly line: number | undefined;
  constructor(message: string, line?: number) {
    super(line === undefined ? message : `line ${line}: ${message}`);
    this.name = "SdpFragError";
    this.line = line;
  }
}

export interface SdpFragMedia {
  /** The m= line value without `m=`, e.g. `audio 9 RTP/AVP 0`. */
  mLine: string;
  mid?: string;
  iceUfrag?: string;
  icePwd?: string;
  /** Each `candidate:<foundation> <component> ...` (no `a=`). */
  candidates: string[];
  endOfCandidates: boolean;
}

export interface SdpFrag {
  iceUfrag?: string;
  icePwd?: string;
  /** Space-separated ice-options tokens, e.g. `trickle ice2`. */
  iceOptions?: string;
  /** Candidates given before any m= line (lenient; not in RFC 8840). Same form as media ones. */
  candidates: string[];
  media: SdpFragMedia[];
  /** Session-level `a=end-of-candidates`: applies to every media section. */
  endOfCandidates: boolean;
}

/** A candidate in the shape of RTCIceCandidateInit (the DOM type is not available in workerd). */
export interface IceCandidateInit {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
}

/** The fields of a candidate attribute (RFC 8839 §5.1). */
export interface ParsedCandidate {
  foundation: string;
  component: number;
  /** As written (`UDP`, `udp`, `tcp`...). */
  transport: string;
  priority: number;
  address: string;
  port: number;
  /** `host`, `srflx`, `prflx`, `relay` or an extension token. */
  type: string;
  relatedAddress?: string;
  relatedPort?: number;
  /** Extension name/value pairs in order, e.g. [["generation","0"],["tcptype","active"]]. */
  extensions: [string, string][];
}

/** RFC 8840 §4.4 suggests this dummy m= line when the real one does not matter. */
export const PSEUDO_M_LINE = "audio 9 RTP/AVP 0";

// ---------------------------------------------------------------------------------------------
// Field grammar (RFC 8839 §5, RFC 8866 §5.14)

const ICE_CHARS = /^[A-Za-z0-9+/]+$/;
const TOKEN = /^[!#$%&'*+\-.^_`{|}~A-Za-z0-9]+$/;
const VCHARS = /^[\x21-\x7e]+$/;
/** IPv4, IPv6 (no zone id) or FQDN (mDNS `<uuid>.local` included). */
const CONNECTION_ADDRESS = /^[A-Za-z0-9.:-]+$/;
const DIGITS = /^[0-9]+$/;

/** Why `v` is not an ice-ufrag of RFC 8839 (4..256 ice-chars), or undefined. Also for whole SDPs. */
export function checkUfrag(v: string): string | undefined {
  if (!ICE_CHARS.test(v)) return `ice-ufrag "${clip(v)}" may only contain A-Z a-z 0-9 + /`;
  if (v.length < 4 || v.length > 256) return `ice-ufrag must be 4..256 characters, got ${v.length}`;
  return undefined;
}

/** Why `v` is not an ice-pwd of RFC 8839 (22..256 ice-chars), or undefined. Also for whole SDPs. */
export function checkPwd(v: string): string | undefined {
  if (!ICE_CHARS.test(v)) return "ice-pwd may only contain A-Z a-z 0-9 + /";
  if (v.length < 22 || v.length > 256) return `ice-pwd must be 22..256 characters, got ${v.length}`;
  return undefined;
}

function checkIceOptions(v: string): string | undefined {
  const tokens = v.split(" ");
  if (tokens.some((t) => !TOKEN.test(t))) {
    return `ice-options "${clip(v)}" must be tokens separated by single spaces`;
  }
  return undefined;
}

function checkMid(v: string): string | undefined {
  // mid is a token (RFC 5888 identification-tag).
  return TOKEN.test(v) ? undefined : `mid "${clip(v)}" is not a token`;
}

function checkMLine(v: string): string | undefined {
  // <media> <port>[/<n>] <proto> <fmt>...; the fmt list is required by RFC 8866 but some
  // clients leave it out of pseudo m-lines, so it is optional here.
  const parts = v.split(" ");
  const [media, port, proto] = parts;
  if (
    parts.length < 3 ||
    !TOKEN.test(media ?? "") ||
    !/^[0-9]{1,5}(\/[0-9]+)?$/.test(port ?? "") ||
    !/^[A-Za-z0-9/._+-]+$/.test(proto ?? "") ||
    parts.slice(3).some((f) => !TOKEN.test(f))
  ) {
    return `m= line "${clip(v)}" is not "<media> <port> <proto> <fmt>..."`;
  }
  return undefined;
}

function portOk(s: string): boolean {
  return DIGITS.test(s) && s.length <= 5 && Number(s) <= 65535;
}

/**
 * Parse and validate a candidate attribute: `candidate:...`, `a=candidate:...` or the bare value.
 * Throws SdpFragError with a message naming the bad field.
 */
export function parseCandidate(text: string): ParsedCandidate {
  let v = text.trim();
  if (v.startsWith("a=")) v = v.slice(2);
  if (v.startsWith("candidate:")) v = v.slice("candidate:".length);
  const f = v.split(/[ \t]+/);
  const bad = (what: string) =>
    new SdpFragError(`bad candidate "${clip(text.trim())}": ${what} (RFC 8839 §5.1)`);
  if (f.length < 8) {
    throw bad(
      "expected <foundation> <component> <transport> <priority> <address> <port> typ <type>",
    );
  }
  const [foundation, component, transport, priority, address, port, typ, type] = f as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  if (!ICE_CHARS.test(foundation) || foundation.length > 32) {
    throw bad("foundation must be 1..32 of A-Z a-z 0-9 + /");
  }
  if (!/^[0-9]{1,3}$/.test(component) || Number(component) < 1) {
    throw bad("component must be 1..999");
  }
  if (!TOKEN.test(transport)) throw bad("transport must be a token such as UDP or TCP");
  if (!/^[0-9]{1,10}$/.test(priority) || Number(priority) > 0xffffffff) {
    throw bad("priority must be an integer 0..4294967295");
  }
  if (!CONNECTION_ADDRESS.test(address))
    throw bad(`address "${clip(address)}" is not an IP or FQDN`);
  if (!portOk(port)) throw bad(`port "${clip(port)}" is not 0..65535`);
  if (typ !== "typ") throw bad(`expected "typ" after the port, got "${clip(typ)}"`);
  if (!TOKEN.test(type)) throw bad("candidate type must be a token (host, srflx, prflx, relay)");
  const rest = f.slice(8);
  if (rest.length % 2 !== 0) throw bad("extensions must be name/value pairs");
  const out: ParsedCandidate = {
    foundation,
    component: Number(component),
    transport,
    priority: Number(priority),
    address,
    port: Number(port),
    type,
    extensions: [],
  };
  for (let i = 0; i < rest.length; i += 2) {
    const name = rest[i] as string;
    const value = rest[i + 1] as string;
    if (!TOKEN.test(name) || !VCHARS.test(value)) throw bad(`bad extension "${clip(name)}"`);
    if (name === "raddr" && out.relatedAddress === undefined) {
      if (!CONNECTION_ADDRESS.test(value)) throw bad(`raddr "${clip(value)}" is not an IP or FQDN`);
      out.relatedAddress = value;
    } else if (name === "rport" && out.relatedPort === undefined) {
      if (!portOk(value)) throw bad(`rport "${clip(value)}" is not 0..65535`);
      out.relatedPort = Number(value);
    } else {
      out.extensions.push([name, value]);
    }
  }
  return out;
}

/** Normalize `a=candidate:x` / `candidate:x` / `x` to `candidate:x`, validating it. */
export function normalizeCandidate(text: string): string {
  parseCandidate(text);
  let v = text.trim();
  if (v.startsWith("a=")) v = v.slice(2);
  return v.startsWith("candidate:") ? v : `candidate:${v}`;
}

// ---------------------------------------------------------------------------------------------
// Parse

/** Parse an sdpfrag body. Throws SdpFragError (and nothing else) on malformed input. */
export function parseSdpFrag(text: string): SdpFrag {
  if (typeof text !== "string") throw new SdpFragError("sdpfrag body must be text");
  const frag: SdpFrag = { candidates: [], media: [], endOfCandidates: false };
  let media: SdpFragMedia | undefined;
  const lines = text.split(/\r\n|\r|\n/);
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const line = (lines[i] as string).replace(/[ \t]+$/, "");
    if (line === "") continue;
    const fail = (msg: string, quoteLine = true): never => {
      throw new SdpFragError(quoteLine ? `${msg}: "${clip(line)}"` : msg, n);
    };
    let type: string;
    let value: string;
    const m = /^([a-z])=(.*)$/.exec(line);
    if (m) {
      type = m[1] as string;
      value = m[2] as string;
    } else if (line.startsWith("candidate:") || line === "end-of-candidates") {
      // A bare RTCIceCandidate.candidate string: read it as the attribute it is.
      type = "a";
      value = line;
    } else {
      return fail('expected "<type>=<value>" (an sdpfrag holds a= and m= lines)');
    }
    if (type === "m") {
      const err = checkMLine(value);
      if (err) fail(err);
      media = { mLine: value, candidates: [], endOfCandidates: false };
      frag.media.push(media);
      continue;
    }
    if (type === "c" && media) continue; // connection line inside a pseudo media section: harmless
    if (type !== "a") {
      const hint = "vost".includes(type)
        ? " (this looks like a full SDP; send application/sdp)"
        : "";
      fail(
        `"${type}=" lines are not allowed ${media ? "in a media section" : "at session level"} of an sdpfrag${hint}`,
      );
    }
    const colon = value.indexOf(":");
    const name = colon === -1 ? value : value.slice(0, colon);
    const attr = colon === -1 ? undefined : value.slice(colon + 1);
    const need = (): string => attr ?? fail(`a=${name} needs a value`);
    switch (name) {
      case "ice-ufrag": {
        const v = need();
        const err = checkUfrag(v);
        if (err) fail(err);
        const target = media ?? frag;
        if (target.iceUfrag !== undefined) fail("duplicate a=ice-ufrag");
        target.iceUfrag = v;
        break;
      }
      case "ice-pwd": {
        const v = need();
        const err = checkPwd(v);
        if (err) fail(err);
        const target = media ?? frag;
        if (target.icePwd !== undefined) fail("duplicate a=ice-pwd");
        target.icePwd = v;
        break;
      }
      case "ice-options": {
        // RFC 8839 allows it at media level too; the model keeps the session-level one only.
        const v = need();
        const err = checkIceOptions(v);
        if (err) fail(err);
        if (!media) {
          if (frag.iceOptions !== undefined) fail("duplicate a=ice-options");
          frag.iceOptions = v;
        }
        break;
      }
      case "mid": {
        if (!media) fail("a=mid before any m= line");
        const v = need();
        const err = checkMid(v);
        if (err) fail(err);
        if ((media as SdpFragMedia).mid !== undefined) fail("duplicate a=mid in one media section");
        (media as SdpFragMedia).mid = v;
        break;
      }
      case "candidate": {
        need();
        try {
          parseCandidate(value);
        } catch (e) {
          fail(e instanceof Error ? e.message : String(e), false);
        }
        (media ?? frag).candidates.push(value);
        break;
      }
      case "end-of-candidates":
        if (attr !== undefined) fail("a=end-of-candidates takes no value");
        (media ?? frag).endOfCandidates = true;
        break;
      default:
        // Extension attributes (a=group, a=ice-lite, a=ice-pacing, ...): allowed, not modeled.
        if (!TOKEN.test(name)) fail("not an attribute");
    }
  }
  return frag;
}

// ---------------------------------------------------------------------------------------------
// Serialize

/** Serialize to CRLF-terminated lines. Validates every field (no header/line injection). */
export function serializeSdpFrag(frag: SdpFrag): string {
  const out: string[] = [];
  const check = (err: string | undefined) => {
    if (err) throw new SdpFragError(err);
  };
  const candidateLine = (c: string) => {
    if (!c.startsWith("candidate:")) {
      throw new SdpFragError(`candidate "${clip(c)}" must start with "candidate:"`);
    }
    if (/[\r\n]/.test(c)) throw new SdpFragError("candidate must be a single line");
    parseCandidate(c);
    out.push(`a=${c}`);
  };
  if (frag.iceOptions !== undefined) {
    check(checkIceOptions(frag.iceOptions));
    out.push(`a=ice-options:${frag.iceOptions}`);
  }
  if (frag.iceUfrag !== undefined) {
    check(checkUfrag(frag.iceUfrag));
    out.push(`a=ice-ufrag:${frag.iceUfrag}`);
  }
  if (frag.icePwd !== undefined) {
    check(checkPwd(frag.icePwd));
    out.push(`a=ice-pwd:${frag.icePwd}`);
  }
  for (const c of frag.candidates) candidateLine(c);
  if (frag.endOfCandidates) out.push("a=end-of-candidates");
  for (const m of frag.media) {
    check(checkMLine(m.mLine));
    out.push(`m=${m.mLine}`);
    if (m.mid !== undefined) {
      check(checkMid(m.mid));
      out.push(`a=mid:${m.mid}`);
    }
    if (m.iceUfrag !== undefined) {
      check(checkUfrag(m.iceUfrag));
      out.push(`a=ice-ufrag:${m.iceUfrag}`);
    }
    if (m.icePwd !== undefined) {
      check(checkPwd(m.icePwd));
      out.push(`a=ice-pwd:${m.icePwd}`);
    }
    for (const c of m.candidates) candidateLine(c);
    if (m.endOfCandidates) out.push("a=end-of-candidates");
  }
  return out.map((l) => `${l}\r\n`).join("");
}

// ---------------------------------------------------------------------------------------------
// Helpers for the edge and the agent

/** The effective ufrag: session-level, else the first media-level one. */
export function fragUfrag(frag: SdpFrag): string | undefined {
  return frag.iceUfrag ?? frag.media.find((m) => m.iceUfrag !== undefined)?.iceUfrag;
}

/** The effective pwd: session-level, else the first media-level one. */
export function fragPwd(frag: SdpFrag): string | undefined {
  return frag.icePwd ?? frag.media.find((m) => m.icePwd !== undefined)?.icePwd;
}

/** True when the sender signalled end-of-candidates for everything it described. */
export function fragEnded(frag: SdpFrag): boolean {
  return (
    frag.endOfCandidates || (frag.media.length > 0 && frag.media.every((m) => m.endOfCandidates))
  );
}

export interface FragCandidate {
  /** `candidate:...`, as RTCIceCandidateInit.candidate. */
  candidate: string;
  sdpMid?: string;
  /**
   * The position of the m= line within the fragment. Equal to the real m-line index when the
   * sender listed its m-lines in order (RFC 8840) or there is one (a BUNDLEd data channel).
   * Session-level candidates get 0.
   */
  sdpMLineIndex: number;
  usernameFragment?: string;
}

/** Flatten into RTCIceCandidateInit-shaped values for addIceCandidate. */
export function fragCandidates(frag: SdpFrag): FragCandidate[] {
  const out: FragCandidate[] = [];
  const ufrag = fragUfrag(frag);
  for (const candidate of frag.candidates) {
    out.push(withOptional({ candidate, sdpMLineIndex: 0 }, undefined, ufrag));
  }
  frag.media.forEach((m, index) => {
    for (const candidate of m.candidates) {
      out.push(withOptional({ candidate, sdpMLineIndex: index }, m.mid, m.iceUfrag ?? ufrag));
    }
  });
  return out;
}

function withOptional(
  c: FragCandidate,
  sdpMid: string | undefined,
  usernameFragment: string | undefined,
): FragCandidate {
  if (sdpMid !== undefined) c.sdpMid = sdpMid;
  if (usernameFragment !== undefined) c.usernameFragment = usernameFragment;
  return c;
}

export interface BuildCandidateFragOptions {
  ufrag: string;
  pwd?: string;
  iceOptions?: string;
  /**
   * Candidates as from onicecandidate (`candidate:...`, `a=candidate:...` accepted). An empty
   * `candidate` string is the browser's end-of-candidates marker for its m-line.
   */
  candidates: readonly IceCandidateInit[];
  /** Add a session-level a=end-of-candidates. */
  end?: boolean;
  /** The m= line to use for each media section; default PSEUDO_M_LINE. */
  mLine?: string;
}

/**
 * Build an sdpfrag for a trickle or ICE-restart PATCH: session-level ufrag/pwd, one media section
 * per distinct sdpMid (or sdpMLineIndex when there is no mid), in first-seen order.
 */
export function buildCandidateFrag(opts: BuildCandidateFragOptions): SdpFrag {
  const frag: SdpFrag = { iceUfrag: opts.ufrag, candidates: [], media: [], endOfCandidates: false };
  if (opts.pwd !== undefined) frag.icePwd = opts.pwd;
  if (opts.iceOptions !== undefined) frag.iceOptions = opts.iceOptions;
  const byKey = new Map<string, SdpFragMedia>();
  for (const c of opts.candidates) {
    const mid = c.sdpMid ?? undefined;
    const key = mid !== undefined ? `mid:${mid}` : `idx:${c.sdpMLineIndex ?? 0}`;
    let m = byKey.get(key);
    if (!m) {
      m = { mLine: opts.mLine ?? PSEUDO_M_LINE, candidates: [], endOfCandidates: false };
      if (mid !== undefined) m.mid = mid;
      byKey.set(key, m);
      frag.media.push(m);
    }
    if (c.candidate.trim() === "") m.endOfCandidates = true;
    else m.candidates.push(normalizeCandidate(c.candidate));
  }
  if (opts.end) frag.endOfCandidates = true;
  // Validate the whole model now so that callers get the error here, not at send time.
  serializeSdpFrag(frag);
  return frag;
}

function clip(s: string, max = 80): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
