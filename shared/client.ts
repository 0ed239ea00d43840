/**
 * fetch-based client for every route of the roverlink edge protocol v1. Runtime-agnostic: the
 * rover agent passes an undici-backed `fetch` (to pick a dispatcher / local address), the
 * browser console uses the global one.
 *
 * Errors: a non-2xx answer throws ProblemError; no answer (refused, reset, DNS, timeout) throws
 * EdgeUnreachableError; a 2xx that breaks the contract throws EdgeProtocolError; bad arguments
 * throw ClientInputError. A caller's AbortSignal aborting rethrows the signal's reason.
 */
import {
  ClientInputError,
  EdgeProtocolError,
  EdgeUnreachableError,
  EventStreamEndedError,
  oneLine,
  ProblemError,
} from "./errors.ts";
import { iceServersFromLinks, LinkHeaderError } from "./link-header.ts";
import {
  CONTENT_TYPE,
  type EventsResponse,
  type IceServer,
  type IceServersResponse,
  ID_PATTERN,
  isProblem,
  type JoinBody,
  type JoinResponse,
  LIMITS,
  type Peer,
  type PeerPatch,
  type PeersResponse,
  type Problem,
  paths,
  quoteEtag,
  type RoomEvent,
  type SessionInfo,
} from "./protocol.ts";
import { type SdpFrag, serializeSdpFrag } from "./sdpfrag.ts";

export type TokenSource = string | (() => string | Promise<string>);
/** `typeof fetch` fits; so does `(url, init) => undici.fetch(url, { ...init, dispatcher })`. */
export type FetchFn = (input: string, init: RequestInit) => Promise<Response>;

export interface RoverlinkClientOptions {
  /** Edge origin, optionally with a path prefix: `http://127.0.0.1:8787`. */
  baseUrl: string;
  token: TokenSource;
  fetch?: FetchFn;
  /**
   * Per request, ms (default 15 000). Long-polls and offers get their server-side wait on top;
   * SSE streams use it until the response headers arrive, then `idleTimeoutMs`.
   */
  timeoutMs?: number;
}

export const DEFAULT_TIMEOUT_MS = 15_000;
/** Two missed keep-alive comments plus slack: the edge comments at least every 15 s. */
export const DEFAULT_SSE_IDLE_TIMEOUT_MS = LIMITS.sseKeepAliveS * 2 * 1000 + 5_000;

export interface JoinResult extends JoinResponse {
  status: 200 | 201;
  /** Absolute URL of the peer resource. */
  location: string;
}

export interface OfferResult {
  /** 201: answered in time (answer set); 202: pending, the answer comes as an `answer` event. */
  status: 201 | 202;
  session: string;
  /** Absolute URL of the session. */
  location: string;
  /** Quoted, as sent by the edge; pass it back in If-Match as is. */
  etag: string;
  answer?: string;
  /** From the `rel="ice-server"` Link headers (empty on 202 when none were sent). */
  iceServers: IceServer[];
  retryAfterS?: number;
}

export interface RestartOfferResult {
  status: 200 | 202;
  etag: string;
  answer?: string;
  iceServers: IceServer[];
  retryAfterS?: number;
}

export interface RestartFragResult {
  status: 200 | 202;
  etag: string;
  /** The other party's sdpfrag (new ufrag/pwd/candidates) on 200. */
  frag?: string;
  retryAfterS?: number;
}

export interface PollOptions {
  /** Cursor from join or the previous poll. */
  after?: string;
  /** Seconds the edge may hold the request (0..25, edge default 20). */
  wait?: number;
  signal?: AbortSignal;
}

export interface StreamOptions {
  /** Resume after this cursor (sent as Last-Event-ID and `after`). */
  lastEventId?: string;
  signal?: AbortSignal;
  /** Abort when nothing, not even a comment, arrives for this long. */
  idleTimeoutMs?: number;
  /** Called once the edge answered with an event stream (before any event). */
  onOpen?: () => void;
}

export interface OfferOptions {
  /** `Prefer: wait=N`, seconds (1..25). Without it the edge uses its default (10). */
  waitS?: number;
  signal?: AbortSignal;
}

export interface RestartOptions extends OfferOptions {
  /** Current ETag, or `*` (default). */
  ifMatch?: string;
}

interface Request {
  method: string;
  path: string;
  query?: Record<string, string | number | undefined>;
  headers?: Record<string, string>;
  body?: string;
  auth?: boolean;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

interface Opened {
  res: Response;
  url: string;
  ctrl: AbortController;
  /** Stop the request timeout (the caller's signal still aborts). */
  clearTimer: () => void;
  /** Stop the timeout and forget the caller's signal. */
  release: () => void;
  timedOut: () => boolean;
}

interface Answered {
  res: Response;
  text: string;
  method: string;
  url: string;
}

export class RoverlinkClient {
  readonly baseUrl: string;
  readonly #token: TokenSource;
  readonly #fetch: FetchFn;
  readonly #timeoutMs: number;

  constructor(opts: RoverlinkClientOptions) {
    let base: URL;
    try {
      base = new URL(opts.baseUrl);
    } catch {
      throw new ClientInputError(`edge URL "${opts.baseUrl}" is not an absolute URL`);
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new ClientInputError(`edge URL "${opts.baseUrl}" must be http: or https:`);
    }
    this.baseUrl = `${base.origin}${base.pathname.replace(/\/+$/, "")}`;
    this.#token = opts.token;
    // Bind: a bare global fetch called as a method throws "Illegal invocation" in browsers.
    this.#fetch = opts.fetch ?? ((input, init) => fetch(input, init));
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  // -------------------------------------------------------------------------------------------
  // Health, ICE servers, peers

  /** `GET /healthz` (no auth) -> the body, `ok`. */
  async healthz(signal?: AbortSignal): Promise<string> {
    const a = await this.#send({
      method: "GET",
      path: paths.healthz(),
      auth: false,
      timeoutMs: this.#timeoutMs,
      signal,
    });
    this.#expect(a, [200]);
    return a.text.trim();
  }

  /**
   * ICE servers for a peer joined to `room` (the edge hands TURN credentials to members only;
   * `room` may be left out with a token for one room).
   */
  async iceServers(room?: string, signal?: AbortSignal): Promise<IceServersResponse> {
    const a = await this.#send({
      method: "GET",
      path: room ? `${paths.iceServers()}?room=${encodeURIComponent(room)}` : paths.iceServers(),
      headers: ACCEPT_JSON,
      timeoutMs: this.#timeoutMs,
      signal,
    });
    this.#expect(a, [200]);
    const body = this.#json(a) as IceServersResponse;
    if (!Array.isArray(body.iceServers)) throw protocolError(a, "no iceServers array");
    return body;
  }

  /** Join or resume: 201 first time, 200 when the peer was still present. */
  async join(room: string, body: JoinBody = {}, signal?: AbortSignal): Promise<JoinResult> {
    checkId("room", room);
    const a = await this.#send({
      method: "POST",
      path: paths.peers(room),
      headers: { ...ACCEPT_JSON, "Content-Type": CONTENT_TYPE.json },
      body: JSON.stringify(body),
      timeoutMs: this.#timeoutMs,
      signal,
    });
    const status = this.#expect(a, [200, 201]) as 200 | 201;
    const json = this.#json(a) as JoinResponse;
    if (
      typeof json.peer !== "object" ||
      !Array.isArray(json.peers) ||
      typeof json.cursor !== "string"
    ) {
      throw protocolError(a, "join answer lacks peer, peers or cursor");
    }
    const location = a.res.headers.get("location");
    const { head, ...rest } = json;
    return {
      ...rest,
      ...(typeof head === "string" ? { head } : {}),
      iceServers: Array.isArray(json.iceServers) ? json.iceServers : [],
      status,
      location: location
        ? new URL(location, a.url).href
        : new URL(paths.peer(room, json.peer.id), this.baseUrl).href,
    };
  }

  async peers(room: string, signal?: AbortSignal): Promise<PeersResponse> {
    checkId("room", room);
    const a = await this.#send({
      method: "GET",
      path: paths.peers(room),
      headers: ACCEPT_JSON,
      timeoutMs: this.#timeoutMs,
      signal,
    });
    this.#expect(a, [200]);
    const body = this.#json(a) as PeersResponse;
    if (!Array.isArray(body.peers)) throw protocolError(a, "no peers array");
    return body;
  }

  /** RFC 7396 merge patch of the own kind/meta/position; null removes meta/position. */
  async updatePeer(
    room: string,
    id: string,
    patch: PeerPatch,
    signal?: AbortSignal,
  ): Promise<Peer> {
    checkId("room", room);
    checkId("peer", id);
    const a = await this.#send({
      method: "PATCH",
      path: paths.peer(room, id),
      headers: { ...ACCEPT_JSON, "Content-Type": CONTENT_TYPE.mergePatch },
      body: JSON.stringify(patch),
      timeoutMs: this.#timeoutMs,
      signal,
    });
    this.#expect(a, [200]);
    const peer = this.#json(a) as Peer;
    if (typeof peer.id !== "string") throw protocolError(a, "no peer object");
    return peer;
  }

  async leave(room: string, id: string, signal?: AbortSignal): Promise<void> {
    checkId("room", room);
    checkId("peer", id);
    const a = await this.#send({
      method: "DELETE",
      path: paths.peer(room, id),
      timeoutMs: this.#timeoutMs,
      signal,
    });
    this.#expect(a, "2xx");
  }

  // -------------------------------------------------------------------------------------------
  // Events

  /** Long-poll. Resolves with events newer than `after`, or none after `wait` seconds. */
  async poll(room: string, id: string, opts: PollOptions = {}): Promise<EventsResponse> {
    checkId("room", room);
    checkId("peer", id);
    checkWait("wait", opts.wait);
    const a = await this.#send({
      method: "GET",
      path: paths.events(room, id),
      query: { after: opts.after, wait: opts.wait },
      headers: ACCEPT_JSON,
      timeoutMs: (opts.wait ?? LIMITS.pollWaitMaxS) * 1000 + this.#timeoutMs,
      signal: opts.signal,
    });
    this.#expect(a, [200]);
    const body = this.#json(a) as EventsResponse;
    if (!Array.isArray(body.events) || typeof body.cursor !== "string") {
      throw protocolError(a, "events answer lacks events or cursor");
    }
    return body;
  }

  /**
   * Server-Sent Events over one connection. Yields each event (its `id` is the cursor) and ends
   * when the edge closes the stream. Reconnecting is the caller's job: call again with
   * `lastEventId` = the last event's id (delivery is at-least-once, in order). Throws
   * EdgeUnreachableError when the connection breaks or stays silent for `idleTimeoutMs`.
   * Event types unknown to this version are yielded as they are; ignore them.
   */
  async *stream(
    room: string,
    id: string,
    opts: StreamOptions = {},
  ): AsyncGenerator<RoomEvent, void, undefined> {
    checkId("room", room);
    checkId("peer", id);
    const idleMs = opts.idleTimeoutMs ?? DEFAULT_SSE_IDLE_TIMEOUT_MS;
    const headers: Record<string, string> = { Accept: CONTENT_TYPE.sse };
    if (opts.lastEventId !== undefined) headers["Last-Event-ID"] = opts.lastEventId;
    const opened = await this.#open({
      method: "GET",
      path: paths.events(room, id),
      query: { after: opts.lastEventId },
      headers,
      timeoutMs: this.#timeoutMs,
      signal: opts.signal,
    });
    const { res, url, ctrl, clearTimer, release } = opened;
    const meta = { method: "GET", url };
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    let idle = false;
    try {
      if (!res.ok) {
        const text = await res.text().catch(() => "");
        throw problemError({ res, text, ...meta });
      }
      if (mediaType(res) !== CONTENT_TYPE.sse || !res.body) {
        // Only frees the connection; the error thrown next is what the caller needs.
        await res.body?.cancel().catch(() => undefined);
        throw new EdgeProtocolError({
          ...meta,
          status: res.status,
          reason: `expected ${CONTENT_TYPE.sse}, got "${mediaType(res)}"`,
        });
      }
      clearTimer(); // the request timeout covered the headers; from here on the idle timer rules
      opts.onOpen?.();
      const arm = () => {
        if (idleTimer !== undefined) clearTimeout(idleTimer);
        idleTimer = setTimeout(() => {
          idle = true;
          ctrl.abort();
        }, idleMs);
      };
      arm();
      const reader = res.body.getReader();
      const sse = new SseParser();
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (e) {
          if (opts.signal?.aborted) throw opts.signal.reason ?? e;
          throw new EdgeUnreachableError({
            ...meta,
            reason: idle
              ? `event stream silent for ${Math.round(idleMs / 1000)} s`
              : `event stream broken: ${describeNetworkError(e)}`,
            timedOut: idle,
            cause: e,
          });
        }
        if (chunk.done) return;
        arm();
        for (const msg of sse.push(chunk.value)) {
          // Its reason, not "SSE event lacks id or type": the stream ends here.
          if (msg.event === "error") throw new EventStreamEndedError(streamEndReason(msg.data));
          const ev = parseEventData(msg, meta, res.status);
          if (ev) yield ev;
        }
      }
    } finally {
      if (idleTimer !== undefined) clearTimeout(idleTimer);
      release();
      ctrl.abort(); // release the connection when the consumer stops early
    }
  }

  // -------------------------------------------------------------------------------------------
  // Sessions

  /** Offer to `target`. 201 with the answer, or 202 when the target did not answer in time. */
  async offer(
    room: string,
    target: string,
    sdp: string,
    opts: OfferOptions = {},
  ): Promise<OfferResult> {
    checkId("room", room);
    checkId("peer", target);
    checkWait("waitS", opts.waitS);
    const a = await this.#send({
      method: "POST",
      path: paths.offer(room, target),
      headers: {
        "Content-Type": CONTENT_TYPE.sdp,
        Accept: CONTENT_TYPE.sdp,
        ...prefer(opts.waitS),
      },
      body: sdp,
      timeoutMs: (opts.waitS ?? LIMITS.offerWaitMaxS) * 1000 + this.#timeoutMs,
      signal: opts.signal,
    });
    const status = this.#expect(a, [201, 202]) as 201 | 202;
    const location = a.res.headers.get("location");
    if (!location) throw protocolError(a, "no Location header");
    const abs = new URL(location, a.url);
    const session = decodeURIComponent(abs.pathname.split("/").filter(Boolean).pop() ?? "");
    if (!session) throw protocolError(a, `Location "${location}" names no session`);
    const out: OfferResult = {
      status,
      session,
      location: abs.href,
      etag: requireEtag(a),
      iceServers: linkIceServers(a),
    };
    if (status === 201) out.answer = requireBody(a, CONTENT_TYPE.sdp);
    const retry = parseRetryAfter(a.res.headers.get("retry-after"));
    if (retry !== undefined) out.retryAfterS = retry;
    return out;
  }

  /** Re-POST a full ICE-restart offer on an existing session: 200 with the answer, or 202. */
  async restartOffer(
    room: string,
    sid: string,
    sdp: string,
    opts: RestartOptions = {},
  ): Promise<RestartOfferResult> {
    checkId("room", room);
    checkWait("waitS", opts.waitS);
    const a = await this.#send({
      method: "POST",
      path: sessionPath(room, sid),
      headers: {
        "Content-Type": CONTENT_TYPE.sdp,
        Accept: CONTENT_TYPE.sdp,
        "If-Match": ifMatch(opts.ifMatch ?? "*"),
        ...prefer(opts.waitS),
      },
      body: sdp,
      timeoutMs: (opts.waitS ?? LIMITS.offerWaitMaxS) * 1000 + this.#timeoutMs,
      signal: opts.signal,
    });
    const status = this.#expect(a, [200, 202]) as 200 | 202;
    const out: RestartOfferResult = { status, etag: requireEtag(a), iceServers: linkIceServers(a) };
    if (status === 200) out.answer = requireBody(a, CONTENT_TYPE.sdp);
    const retry = parseRetryAfter(a.res.headers.get("retry-after"));
    if (retry !== undefined) out.retryAfterS = retry;
    return out;
  }

  /**
   * Answer a pending `offer` (SDP) or `restart` (sdpfrag) event. `ifMatch` is the event's etag.
   * An SdpFrag object is serialized (and validated); strings are sent as they are.
   */
  async answer(
    room: string,
    sid: string,
    body: string | SdpFrag,
    opts: { contentType?: "sdp" | "sdpfrag"; ifMatch: string; signal?: AbortSignal },
  ): Promise<void> {
    checkId("room", room);
    const isFrag = typeof body !== "string" || opts.contentType === "sdpfrag";
    const a = await this.#send({
      method: "POST",
      path: `${sessionPath(room, sid)}/answer`,
      headers: {
        "Content-Type": isFrag ? CONTENT_TYPE.sdpfrag : CONTENT_TYPE.sdp,
        "If-Match": ifMatch(opts.ifMatch),
      },
      body: typeof body === "string" ? body : serializeSdpFrag(body),
      timeoutMs: this.#timeoutMs,
      signal: opts.signal,
    });
    this.#expect(a, "2xx");
  }

  /** Trickle candidates with the current ufrag. `ifMatch` = the session's current ETag. */
  async trickle(
    room: string,
    sid: string,
    frag: string | SdpFrag,
    opts: { ifMatch: string; signal?: AbortSignal },
  ): Promise<void> {
    checkId("room", room);
    const a = await this.#send({
      method: "PATCH",
      path: sessionPath(room, sid),
      headers: { "Content-Type": CONTENT_TYPE.sdpfrag, "If-Match": ifMatch(opts.ifMatch) },
      body: typeof frag === "string" ? frag : serializeSdpFrag(frag),
      timeoutMs: this.#timeoutMs,
      signal: opts.signal,
    });
    this.#expect(a, "2xx");
  }

  /** WHIP-style ICE restart by PATCH (new ufrag/pwd): 200 with the other side's frag, or 202. */
  async restartFrag(
    room: string,
    sid: string,
    frag: string | SdpFrag,
    opts: RestartOptions = {},
  ): Promise<RestartFragResult> {
    checkId("room", room);
    checkWait("waitS", opts.waitS);
    const a = await this.#send({
      method: "PATCH",
      path: sessionPath(room, sid),
      headers: {
        "Content-Type": CONTENT_TYPE.sdpfrag,
        Accept: CONTENT_TYPE.sdpfrag,
        "If-Match": ifMatch(opts.ifMatch ?? "*"),
        ...prefer(opts.waitS),
      },
      body: typeof frag === "string" ? frag : serializeSdpFrag(frag),
      timeoutMs: (opts.waitS ?? LIMITS.offerWaitMaxS) * 1000 + this.#timeoutMs,
      signal: opts.signal,
    });
    const status = this.#expect(a, [200, 202]) as 200 | 202;
    const out: RestartFragResult = { status, etag: requireEtag(a) };
    if (status === 200) out.frag = requireBody(a, CONTENT_TYPE.sdpfrag);
    const retry = parseRetryAfter(a.res.headers.get("retry-after"));
    if (retry !== undefined) out.retryAfterS = retry;
    return out;
  }

  async getSession(room: string, sid: string, signal?: AbortSignal): Promise<SessionInfo> {
    checkId("room", room);
    const a = await this.#send({
      method: "GET",
      path: sessionPath(room, sid),
      headers: ACCEPT_JSON,
      timeoutMs: this.#timeoutMs,
      signal,
    });
    this.#expect(a, [200]);
    const info = this.#json(a) as SessionInfo;
    if (typeof info.session !== "string" || typeof info.state !== "string") {
      throw protocolError(a, "session answer lacks session or state");
    }
    return info;
  }

  /** Hang up (either party). */
  async closeSession(room: string, sid: string, signal?: AbortSignal): Promise<void> {
    checkId("room", room);
    const a = await this.#send({
      method: "DELETE",
      path: sessionPath(room, sid),
      timeoutMs: this.#timeoutMs,
      signal,
    });
    this.#expect(a, "2xx");
  }

  // -------------------------------------------------------------------------------------------
  // Plumbing

  async #open(req: Request): Promise<Opened> {
    let url = this.baseUrl + req.path;
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(req.query ?? {})) if (v !== undefined) qs.set(k, String(v));
    if ([...qs].length > 0) url += `?${qs}`;
    const headers: Record<string, string> = { ...req.headers };
    if (req.auth !== false) {
      const token = typeof this.#token === "function" ? await this.#token() : this.#token;
      headers.Authorization = `Bearer ${token}`;
    }
    const { signal } = req;
    if (signal?.aborted) throw signal.reason;
    const ctrl = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ctrl.abort();
    }, req.timeoutMs);
    const onAbort = () => ctrl.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const clearTimer = () => clearTimeout(timer);
    const release = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const init: RequestInit = { method: req.method, headers, signal: ctrl.signal };
    if (req.body !== undefined) init.body = req.body;
    try {
      const res = await this.#fetch(url, init);
      return { res, url, ctrl, clearTimer, release, timedOut: () => timedOut };
    } catch (e) {
      release();
      throw this.#networkError(e, req, url, timedOut);
    }
  }

  async #send(req: Request): Promise<Answered> {
    const opened = await this.#open(req);
    try {
      const text = await opened.res.text();
      return { res: opened.res, text, method: req.method, url: opened.url };
    } catch (e) {
      throw this.#networkError(e, req, opened.url, opened.timedOut());
    } finally {
      opened.release();
    }
  }

  #networkError(e: unknown, req: Request, url: string, timedOut: boolean): unknown {
    if (req.signal?.aborted) return req.signal.reason ?? e;
    if (timedOut) {
      return new EdgeUnreachableError({
        method: req.method,
        url,
        reason: `no answer within ${formatSeconds(req.timeoutMs)}`,
        timedOut: true,
        cause: e,
      });
    }
    return new EdgeUnreachableError({
      method: req.method,
      url,
      reason: describeNetworkError(e),
      cause: e,
    });
  }

  /** Throw ProblemError on non-2xx, EdgeProtocolError on an unexpected 2xx; return the status. */
  #expect(a: Answered, ok: number[] | "2xx"): number {
    const s = a.res.status;
    if (s < 200 || s > 299) throw problemError(a);
    if (ok !== "2xx" && !ok.includes(s)) throw protocolError(a, `expected ${ok.join(" or ")}`);
    return s;
  }

  #json(a: Answered): unknown {
    try {
      const v: unknown = JSON.parse(a.text);
      if (typeof v !== "object" || v === null) throw new Error("not an object");
      return v;
    } catch {
      throw protocolError(
        a,
        `expected a JSON object, got ${a.text.length} bytes of ${mediaType(a.res) || "untyped data"}`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

const ACCEPT_JSON = { Accept: CONTENT_TYPE.json } as const;

/**
 * Where a client's events continue after a join, given its own cursor (undefined: a new process,
 * a reloaded page). On a resumed seat (200) a new process starts at `head`: what came before was
 * for the process before it (its offers and answers, the room's changes, which `peers` shows);
 * within one process its own cursor stays, unless the seat is new (201).
 */
export function cursorAfterJoin(
  own: string | undefined,
  j: { status: 200 | 201; cursor: string; head?: string },
): string {
  if (own === undefined) return j.status === 200 ? (j.head ?? j.cursor) : j.cursor;
  return j.status === 201 ? j.cursor : own;
}

export function checkId(what: "room" | "peer", id: string): void {
  // "." and ".." match ID_PATTERN but URL parsers collapse them as path segments.
  if (typeof id !== "string" || !ID_PATTERN.test(id) || id === "." || id === "..") {
    throw new ClientInputError(
      `${what} id "${String(id).slice(0, 80)}" must match [A-Za-z0-9._-]{1,64} (and not be "." or "..")`,
    );
  }
}

function checkWait(name: string, v: number | undefined): void {
  if (v !== undefined && (!Number.isFinite(v) || v < 0 || v > 3600)) {
    throw new ClientInputError(`${name} must be a number of seconds, got ${v}`);
  }
}

function sessionPath(room: string, sid: string): string {
  if (typeof sid !== "string" || sid === "" || sid === "." || sid === "..") {
    throw new ClientInputError(`session id "${String(sid).slice(0, 80)}" is not valid`);
  }
  return paths.session(room, encodeURIComponent(sid));
}

function ifMatch(tag: string): string {
  const t = tag.trim();
  if (t === "" || /[\r\n]/.test(t))
    throw new ClientInputError("If-Match value is empty or not one line");
  return t === "*" || t === '"*"' ? "*" : quoteEtag(t);
}

function prefer(waitS: number | undefined): Record<string, string> {
  return waitS === undefined ? {} : { Prefer: `wait=${Math.round(waitS)}` };
}

function mediaType(res: Response): string {
  return (res.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}

function requireEtag(a: Answered): string {
  const etag = a.res.headers.get("etag");
  if (!etag) throw protocolError(a, "no ETag header");
  return etag;
}

function requireBody(a: Answered, type: string): string {
  if (mediaType(a.res) !== type)
    throw protocolError(a, `expected ${type}, got "${mediaType(a.res)}"`);
  return a.text;
}

function linkIceServers(a: Answered): IceServer[] {
  try {
    return iceServersFromLinks(a.res.headers.get("link"));
  } catch (e) {
    if (e instanceof LinkHeaderError) throw protocolError(a, e.message);
    throw e;
  }
}

function protocolError(a: Answered, reason: string): EdgeProtocolError {
  return new EdgeProtocolError({ method: a.method, url: a.url, status: a.res.status, reason });
}

const REASON: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  412: "Precondition Failed",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  428: "Precondition Required",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** Build a ProblemError from a non-2xx answer: the problem+json body, or one synthesized. */
function problemError(a: Answered): ProblemError {
  const { res, text } = a;
  let problem: Problem | undefined;
  const type = mediaType(res);
  if (type === CONTENT_TYPE.problem || type === CONTENT_TYPE.json) {
    try {
      const v: unknown = JSON.parse(text);
      if (isProblem(v)) problem = { ...v, type: v.type ?? "about:blank", detail: v.detail ?? "" };
    } catch {
      // fall through to a synthesized problem
    }
  }
  problem ??= {
    type: "about:blank",
    title: REASON[res.status] ?? (res.statusText || "HTTP error"),
    status: res.status,
    detail: type.startsWith("text/plain") ? oneLine(text, 200) : "",
  };
  return new ProblemError({
    problem,
    retryAfterS: parseRetryAfter(res.headers.get("retry-after")),
    method: a.method,
    url: a.url,
  });
}

/** Retry-After: delta-seconds or an HTTP-date -> whole seconds from now (>= 0). */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMs = Date.now(),
): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^[0-9]+$/.test(v)) return Number(v);
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, Math.ceil((t - nowMs) / 1000));
}

function describeNetworkError(e: unknown): string {
  // Node/undici: TypeError("fetch failed") with the socket error as `cause` (sometimes an
  // AggregateError from happy eyeballs with an empty message); browsers: "Failed to fetch".
  const parts: string[] = [];
  let cur: unknown = e;
  for (let depth = 0; depth < 4 && cur; depth++) {
    if (cur instanceof Error || (typeof cur === "object" && cur !== null)) {
      const err = cur as { message?: string; code?: string; errors?: unknown[]; cause?: unknown };
      const msg = err.message && err.message !== "fetch failed" ? err.message : "";
      if (msg) parts.push(msg);
      else if (err.code) parts.push(err.code);
      cur = err.cause ?? err.errors?.[0];
    } else {
      parts.push(String(cur));
      break;
    }
  }
  return parts[parts.length - 1] ?? "network error";
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

// ---------------------------------------------------------------------------------------------
// SSE (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation)

interface SseMessage {
  id: string | undefined;
  event: string;
  data: string;
}

/** Incremental text/event-stream parser: push bytes, get complete messages. */
export class SseParser {
  #decoder = new TextDecoder();
  #buf = "";
  #first = true;
  #id: string | undefined;
  #event = "";
  #data: string[] = [];

  push(bytes: Uint8Array): SseMessage[] {
    this.#buf += this.#decoder.decode(bytes, { stream: true });
    if (this.#first && this.#buf.length > 0) {
      if (this.#buf.charCodeAt(0) === 0xfeff) this.#buf = this.#buf.slice(1);
      this.#first = false;
    }
    const out: SseMessage[] = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.#buf);
      if (!m) break;
      // A lone trailing \r may be the first half of \r\n split across chunks: wait for more.
      if (m[0] === "\r" && m.index === this.#buf.length - 1) break;
      const line = this.#buf.slice(0, m.index);
      this.#buf = this.#buf.slice(m.index + m[0].length);
      const msg = this.#line(line);
      if (msg) out.push(msg);
    }
    return out;
  }

  #line(line: string): SseMessage | undefined {
    if (line === "") {
      const data = this.#data;
      const event = this.#event || "message";
      this.#data = [];
      this.#event = "";
      if (data.length === 0) return undefined;
      return { id: this.#id, event, data: data.join("\n") };
    }
    if (line.startsWith(":")) return undefined; // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.#data.push(value);
    else if (field === "event") this.#event = value;
    else if (field === "id" && !value.includes("\0")) this.#id = value;
    return undefined;
  }
}

/** The `detail` of an `event: error`'s data (`{"detail": "…"}`), else the data as it came. */
function streamEndReason(data: string): string {
  try {
    const v = JSON.parse(data) as { detail?: unknown };
    if (typeof v?.detail === "string") return v.detail;
  } catch {
    // not JSON: the text itself
  }
  return data || "no reason given";
}

function parseEventData(
  msg: SseMessage,
  meta: { method: string; url: string },
  status: number,
): RoomEvent | undefined {
  let v: unknown;
  try {
    v = JSON.parse(msg.data);
  } catch {
    throw new EdgeProtocolError({
      ...meta,
      status,
      reason: `SSE data is not JSON (event "${oneLine(msg.event, 40)}")`,
    });
  }
  if (typeof v !== "object" || v === null) {
    throw new EdgeProtocolError({ ...meta, status, reason: "SSE data is not a JSON object" });
  }
  const ev = v as Record<string, unknown>;
  if (ev.type === undefined && msg.event !== "message") ev.type = msg.event;
  if (ev.id === undefined && msg.id !== undefined) ev.id = msg.id;
  if (typeof ev.type !== "string" || typeof ev.id !== "string") {
    throw new EdgeProtocolError({ ...meta, status, reason: "SSE event lacks id or type" });
  }
  return ev as unknown as RoomEvent;
}
