/**
 * RFC 8288 Link header parsing and formatting, and the WHIP (RFC 9725 §4.6) mapping between
 * `Link: <turn:...>; rel="ice-server"; username=...; credential=...` and ICE servers.
 *
 * Hand-written rather than a package: it must be ESM and dependency-free for workerd and the
 * browser, it needs both directions (the edge formats, the clients parse), and the grammar is
 * small. Handles several Link headers joined by ", " (what Headers.get returns), commas and
 * semicolons inside quoted strings and inside <URI>, token or quoted-string parameter values,
 * and valueless parameters.
 */
import type { IceServer } from "./protocol.ts";

export class LinkHeaderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LinkHeaderError";
  }
}

export interface LinkValue {
  uri: string;
  /** Relation types from `rel` (space-separated in the header), lower-cased. */
  rel: string[];
  /** Parameters by lower-cased name; the first occurrence wins (RFC 8288 §3). Valueless: "". */
  params: Record<string, string>;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~A-Za-z0-9]/;
const OWS = /[ \t]/;

/** Parse one or more Link field values (pass each header, or them joined by ","). */
export function parseLinkHeader(value: string | readonly string[] | null | undefined): LinkValue[] {
  if (value == null) return [];
  const text = typeof value === "string" ? value : value.join(", ");
  const out: LinkValue[] = [];
  let i = 0;
  const n = text.length;
  const skipWs = () => {
    while (i < n && OWS.test(text[i] as string)) i++;
  };
  const fail = (what: string): never => {
    throw new LinkHeaderError(`bad Link header at offset ${i}: ${what}`);
  };
  const token = (): string => {
    const start = i;
    while (i < n && TOKEN_CHAR.test(text[i] as string)) i++;
    if (i === start) fail("expected a token");
    return text.slice(start, i);
  };
  const quoted = (): string => {
    i++; // opening quote
    let s = "";
    while (i < n) {
      const c = text[i] as string;
      if (c === "\\") {
        if (i + 1 >= n) break;
        s += text[i + 1];
        i += 2;
      } else if (c === '"') {
        i++;
        return s;
      } else {
        s += c;
        i++;
      }
    }
    return fail("unterminated quoted string");
  };

  while (i < n) {
    skipWs();
    if (text[i] === ",") {
      // empty list element (RFC 9110 §5.6.1 says to ignore them)
      i++;
      continue;
    }
    if (i >= n) break;
    if (text[i] !== "<") fail('expected "<"');
    const close = text.indexOf(">", i + 1);
    if (close === -1) fail('missing ">"');
    const uri = text.slice(i + 1, close).trim();
    i = close + 1;
    const params: Record<string, string> = {};
    for (;;) {
      skipWs();
      if (i >= n || text[i] === ",") break;
      if (text[i] !== ";") fail('expected ";" or ","');
      i++;
      skipWs();
      if (i >= n || text[i] === "," || text[i] === ";") continue; // tolerate "; ;" and trailing ";"
      const name = token().toLowerCase();
      skipWs();
      let val = "";
      if (text[i] === "=") {
        i++;
        skipWs();
        val = text[i] === '"' ? quoted() : token();
      }
      if (!(name in params)) params[name] = val;
    }
    const rel = (params.rel ?? "")
      .split(/[ \t]+/)
      .filter((r) => r !== "")
      .map((r) => r.toLowerCase());
    out.push({ uri, rel, params });
  }
  return out;
}

function quote(v: string): string {
  // Control characters other than HTAB cannot appear in a quoted-string (RFC 9110 §5.6.4).
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) {
      throw new LinkHeaderError("control character in Link parameter");
    }
  }
  return `"${v.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** Format one Link field value. Parameter values are always quoted. */
export function formatLinkValue(uri: string, params: Record<string, string | undefined>): string {
  if (/[<>\s]/.test(uri)) throw new LinkHeaderError(`URI "${uri}" cannot go in a Link header`);
  let s = `<${uri}>`;
  for (const [name, v] of Object.entries(params)) {
    if (v === undefined) continue;
    if (![...name].every((c) => TOKEN_CHAR.test(c))) {
      throw new LinkHeaderError(`bad Link parameter name "${name}"`);
    }
    s += `; ${name}=${quote(v)}`;
  }
  return s;
}

/** One `rel="ice-server"` Link value per URL of each server (RFC 9725 §4.6). */
export function iceServerLinks(servers: readonly IceServer[]): string[] {
  const out: string[] = [];
  for (const s of servers) {
    const urls = typeof s.urls === "string" ? [s.urls] : s.urls;
    for (const url of urls) {
      out.push(
        formatLinkValue(url, {
          rel: "ice-server",
          username: s.username,
          credential: s.credential,
          "credential-type": s.credential !== undefined ? "password" : undefined,
        }),
      );
    }
  }
  return out;
}

/** The ICE servers among the Link values; other relations are ignored. */
export function iceServersFromLinks(
  value: string | readonly string[] | null | undefined,
): IceServer[] {
  const out: IceServer[] = [];
  for (const link of parseLinkHeader(value)) {
    if (!link.rel.includes("ice-server")) continue;
    const server: IceServer = { urls: link.uri };
    if (link.params.username !== undefined) server.username = link.params.username;
    if (link.params.credential !== undefined) server.credential = link.params.credential;
    out.push(server);
  }
  return out;
}
