/** Helpers for edge tests: tokens, requests through the Worker's own fetch, sample SDPs. */
import { exports } from "cloudflare:workers";
import { expect } from "vitest";
import { mintToken } from "../../shared/token.ts";

export const SECRET = "test-secret-test-secret-test-secret";

export function token(
  sub: string,
  room = "r1",
  extra: { role?: "peer" | "admin"; ttlS?: number; secret?: string; nowS?: number } = {},
) {
  return mintToken({
    secret: extra.secret ?? SECRET,
    sub,
    room,
    ttlSeconds: extra.ttlS ?? 600,
    role: extra.role ?? "peer",
    ...(extra.nowS !== undefined ? { nowS: extra.nowS } : {}),
  });
}

/** A response body as text without workerd's warning for non-text media types. */
export async function text(res: Response): Promise<string> {
  return new TextDecoder().decode(await res.arrayBuffer());
}

/** Expect an RFC 9457 problem with this status; returns it. */
export async function problemOf(res: Response, status: number) {
  expect(res.status).toBe(status);
  expect(res.headers.get("Content-Type")).toBe("application/problem+json");
  const p = (await res.json()) as { type: string; title: string; status: number; detail: string };
  expect(p.status).toBe(status);
  expect(typeof p.type).toBe("string");
  expect(typeof p.title).toBe("string");
  expect(typeof p.detail).toBe("string");
  return p;
}

/** A fresh room name per test: all test files share one workerd and its storage. */
export function freshRoom(prefix = "room"): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 13)}`;
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

/** `id`'s events as Server-Sent Events, from `after` (a cursor) or resumed after `lastEventId`. */
export function sse(
  room: string,
  id: string,
  tok: string,
  from: { after?: string; lastEventId?: string } = {},
): Promise<Response> {
  const q = from.after === undefined ? "" : `?after=${from.after}`;
  const headers: Record<string, string> = { Accept: "text/event-stream" };
  if (from.lastEventId !== undefined) headers["Last-Event-ID"] = from.lastEventId;
  return call("GET", `/v1/rooms/${room}/peers/${id}/events${q}`, { token: tok, headers });
}

/** Two joined peers a and b in a fresh room, with tokens and cursors. */
export async function pair(prefix = "pair") {
  const room = freshRoom(prefix);
  const ta = await token("a", room);
  const tb = await token("b", room);
  const ja = await join(room, ta);
  const jb = await join(room, tb);
  const ea = await poll(room, "a", ta, ja.body.cursor);
  return { room, ta, tb, ca: ea.cursor, cb: jb.body.cursor };
}

/**
 * a offers to b (parked up to 10 s) and b sees the offer event: a's request still in flight, the
 * event (session, etag) and b's cursor after it.
 */
export async function heldOffer(p: Awaited<ReturnType<typeof pair>>) {
  const offered = call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
    token: p.ta,
    headers: { "Content-Type": "application/sdp", Prefer: "wait=10" },
    body: sdp("ufragA1"),
  });
  const eb = await poll(p.room, "b", p.tb, p.cb, 10);
  const ev = eb.events.find((e) => e.type === "offer") as unknown as {
    session: string;
    etag: string;
  };
  return { offered, ev, cb: eb.cursor };
}

/** a offers to b and b answers in time: the session, its ETag and b's cursor after the offer. */
export async function session(p: Awaited<ReturnType<typeof pair>>) {
  const { offered: offer, ev, cb } = await heldOffer(p);
  const ans = await call("POST", `/v1/rooms/${p.room}/sessions/${ev.session}/answer`, {
    token: p.tb,
    headers: { "Content-Type": "application/sdp", "If-Match": ev.etag },
    body: sdp("ufragB1"),
  });
  expect(ans.status).toBe(204);
  const res = await offer;
  expect(res.status).toBe(201);
  await res.arrayBuffer();
  return { sid: ev.session, etag: res.headers.get("ETag") as string, cb };
}

/** `tok`'s peer offers to `to`, which does not answer within 1 s: 202, the session and ETag. */
export async function offerUnanswered(room: string, tok: string, to: string, ufrag: string) {
  const r = await call("POST", `/v1/rooms/${room}/peers/${to}/sessions`, {
    token: tok,
    headers: { "Content-Type": "application/sdp", Prefer: "wait=1" },
    body: sdp(ufrag),
  });
  expect(r.status).toBe(202);
  await r.arrayBuffer();
  return {
    sid: (r.headers.get("Location") as string).split("/").pop() as string,
    etag: r.headers.get("ETag") as string,
  };
}

/** One trickled candidate on a session (sender's current ufrag). */
export function trickle(room: string, tok: string, sid: string, etag: string, ufrag: string) {
  return call("PATCH", `/v1/rooms/${room}/sessions/${sid}`, {
    token: tok,
    headers: { "Content-Type": "application/trickle-ice-sdpfrag", "If-Match": etag },
    body: frag(ufrag, { candidates: [CAND] }),
  });
}

/** Every pending event of a peer, polling from `after` until nothing is left. */
export async function drain(room: string, id: string, tok: string, after: string) {
  const all: Awaited<ReturnType<typeof poll>>["events"] = [];
  let cursor = after;
  for (;;) {
    const r = await poll(room, id, tok, cursor);
    if (r.events.length === 0) return { events: all, cursor };
    all.push(...r.events);
    cursor = r.cursor;
  }
}

/** HMAC of `text` with `secret` (Web Crypto), for checks made independently of the edge's code. */
export async function hmac(
  hash: "SHA-1" | "SHA-256",
  secret: string,
  text: string,
): Promise<Uint8Array> {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey(
    "raw",
    enc.encode(secret),
    { name: "HMAC", hash },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(text)));
}

/**
 * coturn's TURN REST credential for `username` (base64 HMAC-SHA1 with the shared secret: the
 * test config's, unless given), computed here independently of worker/ice-servers.ts.
 */
export async function turnCredential(
  username: string,
  secret = "turn-secret-for-tests",
): Promise<string> {
  return btoa(String.fromCharCode(...(await hmac("SHA-1", secret, username))));
}
