/** Helpers for edge tests: tokens, requests through the Worker's own fetch, sample SDPs. */
import { exports } from "cloudflare:workers";
import { mintToken } from "../../shared/token.ts";

export const SECRET = "test-secret-test-secret-test-secret";

export function token(
  sub: string,
  room = "r1",
  extra: { role?: "peer" | "admin"; ttlS?: number; secret?: string } = {},
) {
  return mintToken({
    secret: extra.secret ?? SECRET,
    sub,
    room,
    ttlSeconds: extra.ttlS ?? 600,
    role: extra.role ?? "peer",
  });
}

let roomCounter = 0;
/** A fresh room name per test: tests share one workerd. */
export function freshRoom(prefix = "room"): string {
  roomCounter += 1;
  return `${prefix}-${Date.now().toString(36)}-${roomCounter}`;
}

export interface CallOpts {
  token?: string;
  headers?: Record<string, string>;
  body?: string;
  json?: unknown;
  signal?: AbortSignal;
}

export async function call(method: string, path: string, opts: CallOpts = {}): Promise<Response> {
  const headers = new Headers(opts.headers);
  if (opts.token) headers.set("Authorization", `Bearer ${opts.token}`);
  let body = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    if (!headers.has("Content-Type")) headers.set("Content-Type", "application/json");
  }
  return exports.default.fetch(`http://edge.test${path}`, {
    method,
    headers,
    body,
    signal: opts.signal,
  });
}

/** A minimal but complete offer/answer SDP (data channel only). */
export function sdp(ufrag: string, pwd = "0123456789abcdefghijkl"): string {
  return [
    "v=0",
    "o=- 1 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 0.0.0.0",
    `a=ice-ufrag:${ufrag}`,
    `a=ice-pwd:${pwd}`,
    "a=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89",
    "a=setup:actpass",
    "a=mid:0",
    "a=sctp-port:5000",
    "",
  ].join("\r\n");
}

export function frag(ufrag: string, opts: { pwd?: string; candidates?: string[] } = {}): string {
  const lines = [`a=ice-ufrag:${ufrag}`];
  if (opts.pwd) lines.push(`a=ice-pwd:${opts.pwd}`);
  lines.push("m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=mid:0");
  for (const c of opts.candidates ?? []) lines.push(`a=${c}`);
  return `${lines.join("\r\n")}\r\n`;
}

export const CAND = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host";

export async function join(room: string, tok: string, body?: unknown) {
  const r = await call("POST", `/v1/rooms/${room}/peers`, { token: tok, json: body ?? {} });
  return {
    res: r,
    body: (await r.json()) as { cursor: string; peer: { id: string }; peers: { id: string }[] },
  };
}

export async function poll(room: string, id: string, tok: string, after?: string, wait = 0) {
  const q = new URLSearchParams({ wait: String(wait) });
  if (after !== undefined) q.set("after", after);
  const r = await call("GET", `/v1/rooms/${room}/peers/${id}/events?${q}`, { token: tok });
  return (await r.json()) as {
    events: Array<Record<string, unknown> & { type: string; id: string }>;
    cursor: string;
  };
}
