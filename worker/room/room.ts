/**
 * Room: one Durable Object per room name. It owns the room's state (room/store.ts, SQLite) and
 * its rules: presence, the per-peer event log, sessions (offers, answers, ICE restarts, glare),
 * proximity. The Worker calls it over RPC; every method returns data (never throws for a
 * client error) so that problems cross the RPC boundary intact.
 *
 * Parked requests (long-polls, SSE, offers waiting for an answer) stay in the Worker. The Worker
 * subscribes to a topic over a WebSocket accepted with the hibernation API, so the room object
 * can be evicted while requests are parked; when an event is appended, the object wakes and
 * sends "wake" to the topic's sockets, and the Worker re-reads over RPC. An SSE stream's watch
 * gets the new events in the wake itself (EventPush), so that it need not read them back.
 */
import { DurableObject } from "cloudflare:workers";
import { z } from "zod";
import {
  type JoinBody,
  LIMITS,
  type Peer,
  type PeerLeftReason,
  type RoomEvent,
  type SessionInfo,
} from "../../shared/protocol.ts";
import { kindSchema, positionSchema } from "../../shared/schemas.ts";
import { type EdgeEnv, numVar } from "../env.ts";
import type { CachedIce } from "../ice-cache.ts";
import { type IfMatch, ifMatchHits } from "../if-match.ts";
import { mergePatch } from "../merge-patch.ts";
import { peerEtag } from "../peer-etag.ts";
import type { RoomProblem } from "../problem.ts";
import { admit, defaultPerSender, type LogLimits, type Refusal } from "./event-policy.ts";
import { nearbySets } from "./nearby.ts";
import { type Pending, RoomStore, type SessionRow, type StoredEvent } from "./store.ts";

/** A merge patch of a peer (validated for shape by the route; the merged result here). */
export interface PeerMergePatch {
  kind?: string;
  meta?: Record<string, unknown> | null;
  position?: Record<string, unknown> | null;
}

const peerStateSchema = z.object({
  kind: kindSchema,
  meta: z.record(z.string(), z.unknown()).default({}),
  position: positionSchema.optional(),
});

const failWith = (
  status: number,
  title: string,
  detail: string,
  slug: string,
  retryAfter: number,
): { ok: false; problem: RoomProblem } => ({
  ok: false,
  problem: { status, title, detail, slug, retryAfter },
});

/** Whether an update changes what others see of a peer. */
function changed(a: Peer, b: Peer): boolean {
  return (
    a.kind !== b.kind ||
    JSON.stringify(a.meta) !== JSON.stringify(b.meta) ||
    JSON.stringify(a.position) !== JSON.stringify(b.position)
  );
}

export type Result<T> = ({ ok: true } & T) | { ok: false; problem: RoomProblem };

/** A description the Worker has parsed: its text and ICE ufrag (null: it names none). */
export interface Described {
  body: string;
  ufrag: string | null;
}

/** A parked PATCH restart's answer cut for WHIP clients (worker/restart-answer.ts). */
export interface RestartAnswerSplit {
  response: string;
  rest: string | null;
}

const fail = (
  status: number,
  title: string,
  detail: string,
  retryAfter?: number,
): { ok: false; problem: RoomProblem } => ({
  ok: false,
  problem:
    retryAfter === undefined ? { status, title, detail } : { status, title, detail, retryAfter },
});

/** Events returned per poll at most; the client polls again at once for the rest. */
const POLL_BATCH = 100;
/** An SSE stream re-reads at least every 15 s (keep-alive); past this lease it is presumed gone. */
const STREAM_LEASE_MS = 60_000;

export type WaitState =
  | { state: "answered"; answer: string; etag: string }
  | { state: "pending" }
  | { state: "superseded" }
  | { state: "closed" };

export const peerTopic = (id: string) => `peer:${id}`;
export const sessionTopic = (sid: string) => `session:${sid}`;
/** The tag of a peer topic's watches that take their events in the wake (SSE streams). */
export const pushTag = (topic: string) => `push:${topic}`;

/**
 * A wake that carries the peer's new events: every event of the peer after `prev` (its event
 * before the first new one) at the time of the wake. A stream that has written up to `prev` or
 * past it writes these without reading; one behind `prev` missed a push and reads.
 */
export interface EventPush {
  prev: number;
  events: RoomEvent[];
}
/** Longer pushes (in UTF-16 code units) go as a plain wake and the stream reads. */
const PUSH_MAX_CHARS = 32 * 1024;

function randomId(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...b))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");
}

export class Room extends DurableObject<EdgeEnv> {
  readonly #store: RoomStore;
  /** Topics to wake once the current RPC call has finished its writes. */
  readonly #toWake = new Set<string>();
  /** What a topic's wake says when it is more than "wake" (an answer, for its parked offer). */
  readonly #wakeMessages = new Map<string, string>();
  /** Peers given events in the current RPC call, with the first event's sequence number. */
  readonly #appended = new Map<string, number>();

  constructor(ctx: DurableObjectState, env: EdgeEnv) {
    super(ctx, env);
    this.#store = new RoomStore(ctx.storage.sql);
  }

  get #ttlMs(): number {
    return numVar(this.env.PRESENCE_TTL_S, 30) * 1000;
  }
  get #maxPeers(): number {
    return numVar(this.env.MAX_PEERS_PER_ROOM, 64);
  }
  get #keepEvents(): number {
    return numVar(this.env.MAX_EVENTS_PER_PEER, 1000);
  }
  get #logLimits(): LogLimits {
    const keep = this.#keepEvents;
    return { keep, perSender: numVar(this.env.MAX_EVENTS_PER_SENDER, defaultPerSender(keep)) };
  }
  get #maxSessionsPerPair(): number {
    return numVar(this.env.MAX_SESSIONS_PER_PAIR, 1);
  }
  get #maxStreams(): number {
    return numVar(this.env.MAX_STREAMS_PER_PEER, 2);
  }
  get #offerTtlMs(): number {
    return numVar(this.env.SESSION_OFFER_TTL_S, 120) * 1000;
  }
  get #radius(): number | null {
    const r = numVar(this.env.NEARBY_RADIUS, Number.NaN);
    return Number.isNaN(r) ? null : r;
  }

  // --- presence ----------------------------------------------------------------------------

  /** `tokenExpS`: the `exp` of the token the peer joined with (its presence ends then). */
  async join(
    id: string,
    body: JoinBody,
    tokenExpS: number | null = null,
  ): Promise<
    Result<{ status: 200 | 201; peer: Peer; peers: Peer[]; cursor: string; head: string }>
  > {
    const now = Date.now();
    const existing = this.#store.peer(id);
    let peer: Peer;
    let status: 200 | 201;
    /** Another process under this id: its incarnation. */
    let taken: string | null = null;
    if (existing) {
      status = 200;
      peer = {
        ...existing,
        kind: body.kind ?? existing.kind,
        meta: body.meta ?? existing.meta,
        position: body.position ?? existing.position,
        lastSeen: now,
      };
      this.#store.updatePeer(peer);
      const was = existing.meta.incarnation;
      const is = peer.meta.incarnation;
      if (typeof was === "string" && typeof is === "string" && was !== is) taken = is;
      if (changed(existing, peer)) {
        this.#broadcast(id, { type: "peer-updated", peer });
        this.#updateNearby();
      }
    } else {
      if (this.#store.peerCount() >= this.#maxPeers) {
        return fail(503, "Room full", `room has its maximum of ${this.#maxPeers} peers`, 30);
      }
      const refused = this.#admit(
        id,
        this.#store.peers().map((p) => p.id),
      );
      if (refused) return refused;
      status = 201;
      peer = {
        id,
        kind: body.kind ?? "rover",
        meta: body.meta ?? {},
        position: body.position ?? null,
        joinedAt: now,
        lastSeen: now,
      };
      // The new peer's log starts after everything already in the room.
      this.#store.insertPeer(peer, this.#store.lastSeq());
      this.#broadcast(id, { type: "peer-joined", peer });
      this.#updateNearby();
    }
    if (tokenExpS !== null) this.#store.noteTokenExp(id, tokenExpS * 1000);
    await this.#scheduleAlarm();
    this.#wake();
    const peers = this.#seenNow(
      this.#store.peers().filter((p) => p.id !== id),
      now,
    );
    // The room's newest event now: a new process of this peer starts here (what lies between
    // `cursor` and this was for the one before it; `peers` says what the room is now).
    const head = String(this.#store.lastSeq());
    if (taken !== null) {
      // Another process under this id (a new incarnation), told in the peer's own log after
      // `head`: the process that held the seat reads it at once (its stream or parked poll is
      // woken) before the new one, which ignores its own, acknowledges it. A second agent with
      // one id took the other's events and links without a word.
      this.#emit(id, { type: "seat-taken", peer: id, incarnation: taken });
      this.#wake();
    }
    return {
      ok: true,
      status,
      peer,
      peers,
      cursor: String(this.#store.acked(id)),
      head,
    };
  }

  async listPeers(): Promise<Peer[]> {
    return this.#seenNow(this.#store.peers(), Date.now());
  }

  /**
   * A peer whose event stream or long-poll is open is seen now: last_seen moves when it makes a
   * request, or when the alarm finds it stale, so a live rover on one stream looked up to a
   * presence TTL old in every list.
   */
  #seenNow(peers: Peer[], now: number): Peer[] {
    return peers.map((p) =>
      this.ctx.getWebSockets(peerTopic(p.id)).length > 0 ? { ...p, lastSeen: now } : p,
    );
  }

  /**
   * Apply a merge patch (RFC 7396) to the peer's kind/meta/position; the result must be valid.
   * With `ifMatch`, only if it matches the peer's current ETag (worker/peer-etag.ts), else 412.
   */
  async updatePeer(
    id: string,
    patch: PeerMergePatch,
    ifMatch: IfMatch | null = null,
  ): Promise<Result<{ peer: Peer }>> {
    const existing = this.#store.peer(id);
    if (!existing) return fail(404, "Not found", `peer "${id}" is not in this room`);
    if (ifMatch !== null) {
      const current = peerEtag(existing);
      if (!ifMatchHits(ifMatch, current))
        return fail(
          412,
          "Precondition failed",
          `If-Match does not match: the peer changed since that ETag (now "${current}")`,
        );
    }
    const merged = peerStateSchema.safeParse(
      mergePatch(
        { kind: existing.kind, meta: existing.meta, position: existing.position ?? undefined },
        patch,
      ),
    );
    if (!merged.success) {
      const issue = merged.error.issues[0];
      const where = issue && issue.path.length > 0 ? issue.path.join(".") : "body";
      return fail(400, "Bad request", `patched peer is invalid: ${where}: ${issue?.message}`);
    }
    // Merging lets meta grow patch by patch: the result obeys the JSON body limit too.
    if (JSON.stringify(merged.data.meta).length > LIMITS.jsonBytes) {
      return fail(413, "Payload too large", `meta is limited to ${LIMITS.jsonBytes / 1024} KiB`);
    }
    const peer: Peer = {
      ...existing,
      kind: merged.data.kind,
      meta: merged.data.meta,
      position: merged.data.position ?? null,
    };
    // A patch that changes nothing is silent: no event for anyone.
    if (!changed(existing, peer)) return { ok: true, peer: existing };
    this.#store.updatePeer(peer);
    this.#broadcast(id, { type: "peer-updated", peer });
    this.#updateNearby();
    this.#wake();
    return { ok: true, peer };
  }

  async leave(id: string): Promise<Result<object>> {
    if (!this.#store.peer(id)) return fail(404, "Not found", `peer "${id}" is not in this room`);
    this.#removePeer(id, "left");
    await this.#scheduleAlarm();
    this.#wake();
    return { ok: true };
  }

  #removePeer(id: string, why: PeerLeftReason | "token-expired"): void {
    const sessionReason = { left: "peer-left", expired: "peer-expired" }[why as string];
    for (const s of this.#store.sessionsOf(id)) {
      this.#closeSession(s, id, sessionReason ?? why);
    }
    this.#store.deletePeer(id);
    // v1 fixes peer-left's reasons ("left", "expired"): a token's expiry says so in `cause`.
    this.#broadcast(
      id,
      why === "token-expired"
        ? { type: "peer-left", peer: id, reason: "expired", cause: "token-expired" }
        : { type: "peer-left", peer: id, reason: why },
    );
    this.#updateNearby();
    // A parked poll of the removed peer must end (it will get a 404 and re-join).
    this.#toWake.add(peerTopic(id));
  }

  // --- events ------------------------------------------------------------------------------

  /**
   * Read a peer's events after `after` (null: after its acknowledged cursor). `ack` moves the
   * acknowledged cursor (long-poll: the `after` the client sent; SSE: the Last-Event-ID it
   * resumed from). Counts as presence.
   */
  async poll(
    id: string,
    after: number | null,
    ack: number | null,
    stream: string | null = null,
    tokenExpS: number | null = null,
  ): Promise<Result<{ events: RoomEvent[]; cursor: string; superseded?: true }>> {
    if (!this.#store.peer(id)) {
      return fail(
        404,
        "Not found",
        `peer "${id}" is not in this room (it left, or its presence or token expired): join again`,
      );
    }
    // A cursor this room never handed out would acknowledge (drop) events not yet written.
    const last = this.#store.lastSeq();
    if ((after ?? 0) > last || (ack ?? 0) > last) {
      return fail(
        400,
        "Bad request",
        "cursor is ahead of this room's events: use the cursor from your join or last poll",
      );
    }
    const now = Date.now();
    if (stream !== null && !this.#store.renewStream(stream, now, STREAM_LEASE_MS)) {
      // A newer stream of this peer replaced this one: it ends without reading or acknowledging.
      return {
        ok: true,
        events: [],
        cursor: String(after ?? this.#store.acked(id)),
        superseded: true,
      };
    }
    if (ack !== null) this.#store.ack(id, ack);
    // A stream reads from what it has written: the peer is reading (the senders' quotas).
    if (stream !== null && after !== null) this.#store.markWritten(id, after);
    this.#store.touch(id, now);
    if (tokenExpS !== null) {
      // A renewed token extends the peer's authorization; the alarm may need to move.
      const before = this.#store.earliestTokenExp();
      this.#store.noteTokenExp(id, tokenExpS * 1000);
      if (this.#store.earliestTokenExp() !== before) await this.#scheduleAlarm();
    }
    const from = after ?? this.#store.acked(id);
    const events = this.#store.events(id, from, POLL_BATCH);
    if (events.length === POLL_BATCH) {
      // Maybe more: an SSE stream waits on its watch after a read unless woken, and no push
      // will come for events already in the log.
      this.#toWake.add(peerTopic(id));
      this.#wake();
    }
    return { ok: true, events, cursor: events.at(-1)?.id ?? String(from) };
  }

  /**
   * Register an SSE stream of `id`. Past MAX_STREAMS_PER_PEER the oldest streams are closed
   * (their next read says so): a client that reconnects is never locked out by its own stale
   * stream, and a flood of streams holds at most the cap.
   */
  async openStream(id: string, stream: string): Promise<Result<object>> {
    if (!this.#store.peer(id)) {
      return fail(
        404,
        "Not found",
        `peer "${id}" is not in this room (it left, or its presence or token expired): join again`,
      );
    }
    const live = this.#store.openStream(id, stream, Date.now(), STREAM_LEASE_MS);
    const excess = live.length - this.#maxStreams;
    if (excess > 0) {
      for (const old of live.slice(0, excess)) this.#store.closeStream(old);
      this.#toWake.add(peerTopic(id));
      this.#wake();
    }
    return { ok: true };
  }

  async closeStream(stream: string): Promise<void> {
    this.#store.closeStream(stream);
  }

  // --- TURN credentials (worker/ice-cache.ts) ---------------------------------------------

  /**
   * The peer's cached ICE servers. Credentials are cached for members only: `member` false means
   * the peer has not joined, and what it is given is not kept.
   */
  async cachedIce(id: string): Promise<Result<{ cached: CachedIce | null; member: boolean }>> {
    if (!this.#store.peer(id)) return { ok: true, cached: null, member: false };
    return { ok: true, cached: this.#store.ice(id), member: true };
  }

  async storeIce(id: string, value: CachedIce): Promise<void> {
    if (this.#store.peer(id)) this.#store.setIce(id, value);
  }

  // --- sessions ----------------------------------------------------------------------------

  /** `sid`: chosen by the Worker, so that it can watch the session while this call runs. */
  async offer(
    from: string,
    to: string,
    offer: Described,
    waitMs: number,
    sid: string = randomId(16),
  ): Promise<Result<{ session: string; etag: string; ice: CachedIce | null }>> {
    const sdp = offer.body;
    if (!this.#store.peer(from)) {
      return fail(409, "Not joined", `join the room before offering (POST /v1/rooms/{room}/peers)`);
    }
    if (!this.#store.peer(to)) {
      return fail(409, "Target absent", `peer "${to}" is not in this room`, 5);
    }
    const refused = this.#admit(from, [to]);
    if (refused) return refused;
    if (this.#store.session(sid)) return fail(409, "Conflict", "that session id is taken");
    // A new offer from the same offerer to the same answerer supersedes its older sessions
    // (a rebuilt PeerConnection): at most MAX_SESSIONS_PER_PAIR stay, the oldest close.
    const older = this.#store.sessionsBetween(from, to);
    for (const old of older.slice(0, Math.max(0, older.length - this.#maxSessionsPerPair + 1))) {
      this.#closeSession(old, from, "superseded");
    }
    const now = Date.now();
    const etag = randomId(12);
    const s: SessionRow = {
      id: sid,
      offerer: from,
      answerer: to,
      state: "offered",
      etag,
      offer: sdp,
      answer: null,
      reply: null,
      offererUfrag: offer.ufrag,
      answererUfrag: null,
      pending: this.#pending("offer", from, etag, offer, now, waitMs),
      createdAt: now,
      updatedAt: now,
    };
    this.#store.saveSession(s);
    this.#emit(to, { type: "offer", session: s.id, from, sdp, etag: `"${etag}"` });
    await this.#scheduleAlarm();
    this.#wake();
    // The offerer's cached ICE servers ride along: the route needs no second room call for them.
    return { ok: true, session: s.id, etag, ice: this.#store.ice(from) };
  }

  /**
   * A new offer on an existing session: re-POST (full SDP) or PATCH with a new ufrag/pwd
   * (sdpfrag). Glare: another party's offer still pending -> 409. The same party's own pending
   * offer is superseded (its answer would then get 412).
   */
  async restart(
    sid: string,
    by: string,
    kind: "offer" | "restart",
    described: Described,
    ifMatch: IfMatch,
    waitMs: number,
  ): Promise<Result<{ etag: string; ice: CachedIce | null }>> {
    const body = described.body;
    const s = this.#store.session(sid);
    const denied = this.#party(s, sid, by);
    if (denied) return denied;
    if (!s) return fail(404, "Not found", `no session "${sid}"`);
    if (!ifMatchHits(ifMatch, s.etag, s.pending?.etag)) {
      return fail(412, "Precondition failed", "If-Match does not match the session's current ETag");
    }
    // An ICE restart restarts an ICE session, which an unanswered offer has not started. Taken,
    // it replaced the pending offer: the answer to it got 412, and the session read "answered"
    // with an sdpfrag for its answer, no DTLS fingerprint ever, and no offer expiry.
    if (kind === "restart" && s.state !== "answered") {
      return fail(
        409,
        "Not answered",
        "this session's offer has no answer yet, so there is no ICE session to restart: wait for the answer, or re-POST a full offer (If-Match: its ETag)",
      );
    }
    if (s.pending && s.pending.by !== by) {
      return fail(
        409,
        "Offer pending",
        "the other party's offer on this session is pending: answer it",
        1,
      );
    }
    const other = s.offerer === by ? s.answerer : s.offerer;
    const refused = this.#admit(by, [other]);
    if (refused) return refused;
    const now = Date.now();
    const etag = randomId(12);
    s.pending = this.#pending(kind, by, etag, described, now, waitMs);
    s.updatedAt = now;
    this.#store.saveSession(s);
    const quoted = `"${etag}"`;
    this.#emit(
      other,
      kind === "offer"
        ? { type: "offer", session: sid, from: by, sdp: body, etag: quoted }
        : { type: "restart", session: sid, from: by, frag: body, etag: quoted },
    );
    this.#toWake.add(sessionTopic(sid));
    await this.#scheduleAlarm();
    this.#wake();
    return { ok: true, etag, ice: this.#store.ice(by) };
  }

  /** `split`: for a restart answer (sdpfrag), what a parked PATCH request is given instead. */
  async answer(
    sid: string,
    by: string,
    kind: "offer" | "restart",
    described: Described,
    ifMatch: IfMatch | null,
    split: RestartAnswerSplit | null = null,
  ): Promise<Result<object>> {
    const body = described.body;
    const s = this.#store.session(sid);
    const denied = this.#party(s, sid, by);
    if (denied) return denied;
    if (!s) return fail(404, "Not found", `no session "${sid}"`);
    const p = s.pending;
    if (!p) {
      if (ifMatch !== null && ifMatch !== "*" && !ifMatchHits(ifMatch, s.etag)) {
        return fail(412, "Precondition failed", "that offer was superseded or has expired");
      }
      return fail(409, "Nothing to answer", "no offer is pending on this session");
    }
    if (p.by === by) return fail(409, "Own offer", "you cannot answer your own offer");
    if (ifMatch === null) {
      return fail(
        428,
        "Precondition required",
        "send If-Match with the etag of the offer you answer",
      );
    }
    // `*` cannot say which offer this answers: an answer made for an older offer would be taken
    // for the one pending now, the race If-Match is here to stop.
    if (ifMatch === "*") {
      return fail(
        412,
        "Precondition failed",
        "If-Match: * cannot say which offer you answer: send the etag of its offer or restart event",
      );
    }
    if (!ifMatchHits(ifMatch, p.etag)) {
      return fail(
        412,
        "Precondition failed",
        "If-Match is not the etag of the pending offer: it was superseded (answer the latest one) or the tag is wrong",
      );
    }
    if (p.kind !== kind) {
      const want = p.kind === "offer" ? "application/sdp" : "application/trickle-ice-sdpfrag";
      return fail(
        415,
        "Unsupported media type",
        `the pending ${p.kind} takes an answer of type ${want}`,
      );
    }
    const now = Date.now();
    s.state = "answered";
    s.etag = p.etag;
    const parked = p.waiter && now <= p.waitUntil;
    // A parked PATCH restart gets at most one candidate; the rest follow as an event.
    const cut = parked && p.kind === "restart" && split !== null && split.rest !== null;
    // GET shows the answer whole; only the parked request gets the cut one.
    s.answer = body;
    s.reply = cut ? split.response : null;
    if (p.by === s.offerer) {
      s.offererUfrag = p.ufrag ?? s.offererUfrag;
      s.answererUfrag = described.ufrag ?? s.answererUfrag;
    } else {
      s.answererUfrag = p.ufrag ?? s.answererUfrag;
      s.offererUfrag = described.ufrag ?? s.offererUfrag;
    }
    if (p.kind === "offer") s.offer = p.body;
    s.pending = null;
    s.updatedAt = now;
    this.#store.saveSession(s);
    if (cut && split.rest !== null) {
      this.#emit(p.by, { type: "candidates", session: sid, from: by, frag: split.rest });
    }
    // The offerer's request is still parked in a Worker: it takes the answer. Otherwise (202
    // already sent, or the Worker or its client is gone: detach, webSocketClose) the answer
    // travels as an event.
    if (!parked) {
      this.#emit(
        p.by,
        p.kind === "offer"
          ? { type: "answer", session: sid, from: by, sdp: body, etag: `"${p.etag}"` }
          : { type: "answer", session: sid, from: by, frag: body, etag: `"${p.etag}"` },
      );
    }
    this.#toWake.add(sessionTopic(sid));
    // The parked request's wake carries the answer itself: it need not read it back.
    this.#wakeMessages.set(
      sessionTopic(sid),
      JSON.stringify({ state: "answered", answer: s.reply ?? s.answer, etag: p.etag }),
    );
    this.#wake();
    return { ok: true };
  }

  /**
   * A PATCH with an sdpfrag (RFC 8840, RFC 9725 §4.3): a trickle when it carries `by`'s current
   * ufrag (or none, or one not known yet), else an ICE restart. Decided here, in the one call.
   */
  async patchSession(
    sid: string,
    by: string,
    frag: Described & { hasPwd: boolean },
    ifMatch: IfMatch,
    waitMs: number,
  ): Promise<Result<{ restart: false } | { restart: true; etag: string; ice: CachedIce | null }>> {
    const s = this.#store.session(sid);
    const denied = this.#party(s, sid, by);
    if (denied) return denied;
    if (!s) return fail(404, "Not found", `no session "${sid}"`);
    const known = by === s.offerer ? s.offererUfrag : s.answererUfrag;
    const pendingUfrag = s.pending?.by === by ? (s.pending.ufrag ?? null) : null;
    // Before its description reached the edge (an answerer trickles while it answers), a party's
    // ufrag is unknown: its candidates are a trickle, kept in order for the other party.
    const isRestart =
      frag.ufrag !== null && known !== null && frag.ufrag !== known && frag.ufrag !== pendingUfrag;
    if (!isRestart) {
      if (ifMatch === "*") {
        return fail(
          412,
          "Precondition failed",
          "trickle needs If-Match with the session's current ETag",
        );
      }
      const t = this.#trickle(s, by, frag.body, ifMatch);
      return t.ok ? { ok: true, restart: false } : t;
    }
    if (!frag.hasPwd) {
      return fail(400, "Bad sdpfrag", "an ICE restart needs a=ice-pwd with the new a=ice-ufrag");
    }
    const r = await this.restart(sid, by, "restart", frag, ifMatch, waitMs);
    return r.ok ? { ok: true, restart: true, etag: r.etag, ice: r.ice } : r;
  }

  /** Trickled candidates from `by` (its current ufrag, or none). */
  #trickle(s: SessionRow, by: string, frag: string, ifMatch: readonly string[]): Result<object> {
    if (!ifMatchHits(ifMatch, s.etag, s.pending?.etag)) {
      return fail(412, "Precondition failed", "If-Match does not match the session's current ETag");
    }
    // An empty sdpfrag carries nothing to relay: accepted, and no event for the other party.
    if (frag.trim() === "") return { ok: true };
    const other = s.offerer === by ? s.answerer : s.offerer;
    const refused = this.#admit(by, [other]);
    if (refused) return refused;
    this.#emit(other, { type: "candidates", session: s.id, from: by, frag });
    this.#wake();
    return { ok: true };
  }

  /** 404 unknown session, 403 not a party, or null: for a Worker that failed to parse a body. */
  async checkParty(sid: string, by: string): Promise<RoomProblem | null> {
    return this.#party(this.#store.session(sid), sid, by)?.problem ?? null;
  }

  /** For a Worker waiting on an offer with `etag`: where it stands. */
  async waitState(sid: string, etag: string): Promise<WaitState> {
    return this.#waitState(this.#store.session(sid), etag);
  }

  /** The Worker gives up waiting (it answers 202): later answers go to the event log. */
  async detach(sid: string, etag: string): Promise<WaitState> {
    const s = this.#store.session(sid);
    const st = this.#waitState(s, etag);
    if (st.state === "pending" && s?.pending) {
      s.pending.waiter = false;
      this.#store.saveSession(s);
    }
    return st;
  }

  #waitState(s: SessionRow | null, etag: string): WaitState {
    if (!s) return { state: "closed" };
    if (s.pending?.etag === etag) return { state: "pending" };
    if (s.etag === etag && s.answer !== null) {
      return { state: "answered", answer: s.reply ?? s.answer, etag };
    }
    return { state: "superseded" };
  }

  async getSession(sid: string, by: string): Promise<Result<{ info: SessionInfo }>> {
    const s = this.#store.session(sid);
    const denied = this.#party(s, sid, by);
    if (denied) return denied;
    if (!s) return fail(404, "Not found", `no session "${sid}"`);
    const info: SessionInfo & { pending?: { by: string; etag: string; kind: string } } = {
      session: s.id,
      from: s.offerer,
      to: s.answerer,
      state: s.state,
      etag: `"${s.etag}"`,
    };
    if (s.answer !== null) info.answer = s.answer;
    if (s.pending)
      info.pending = { by: s.pending.by, etag: `"${s.pending.etag}"`, kind: s.pending.kind };
    return { ok: true, info };
  }

  async closeSessionBy(sid: string, by: string): Promise<Result<object>> {
    const s = this.#store.session(sid);
    const denied = this.#party(s, sid, by);
    if (denied) return denied;
    if (!s) return fail(404, "Not found", `no session "${sid}"`);
    this.#closeSession(s, by, "hangup");
    await this.#scheduleAlarm();
    this.#wake();
    return { ok: true };
  }

  /**
   * Admin tokens act as any party: the session's offerer stands in, or, to answer, the party the
   * pending offer or restart waits for (an admin answering was refused as "your own offer").
   */
  async partyFor(sid: string, answering = false): Promise<string | null> {
    const s = this.#store.session(sid);
    if (!s) return null;
    if (!answering) return s.offerer;
    return s.pending?.by === s.answerer ? s.offerer : s.answerer;
  }

  #closeSession(s: SessionRow, by: string, reason: string): void {
    this.#store.deleteSession(s.id);
    for (const party of [s.offerer, s.answerer]) {
      if (party !== by && this.#store.peer(party)) {
        this.#emit(party, { type: "session-closed", session: s.id, by, reason });
      }
    }
    this.#toWake.add(sessionTopic(s.id));
  }

  #party(
    s: SessionRow | null,
    sid: string,
    by: string,
  ): { ok: false; problem: RoomProblem } | null {
    if (!s) return fail(404, "Not found", `no session "${sid}" in this room`);
    if (s.offerer !== by && s.answerer !== by) {
      return fail(403, "Forbidden", "this session belongs to other peers");
    }
    return null;
  }

  #pending(
    kind: Pending["kind"],
    by: string,
    etag: string,
    described: Described,
    now: number,
    waitMs: number,
  ): Pending {
    // waitUntil: slack for RPC and clock skew; past it a still-flagged waiter is presumed gone.
    return {
      kind,
      by,
      etag,
      body: described.body,
      ufrag: described.ufrag,
      createdAt: now,
      waiter: waitMs > 0,
      waitUntil: now + waitMs + 5_000,
    };
  }

  // --- fan-out -----------------------------------------------------------------------------

  /**
   * May `sender` add one more protected event to each of these logs? A refusal is a 429: the
   * recipient is not reading its events, and we keep what it has rather than evict it.
   */
  #admit(
    sender: string,
    recipients: readonly string[],
  ): { ok: false; problem: RoomProblem } | null {
    const limits = this.#logLimits;
    for (const r of recipients) {
      if (r === sender) continue;
      const why: Refusal | null = admit(this.#store.logFacts(r, sender), limits);
      if (why === "sender-quota") {
        return failWith(
          429,
          "Too many undelivered events",
          `peer "${r}" has not yet read ${limits.perSender} events from you: wait until it catches up`,
          "event-quota",
          5,
        );
      }
      if (why === "log-full") {
        return failWith(
          429,
          "Event log full",
          `peer "${r}" has ${limits.keep} undelivered events: wait until it catches up`,
          "event-log-full",
          5,
        );
      }
    }
    return null;
  }

  #emit(peer: string, event: StoredEvent): void {
    const seq = this.#store.append(peer, event, this.#keepEvents);
    if (!this.#appended.has(peer)) this.#appended.set(peer, seq);
    this.#toWake.add(peerTopic(peer));
  }

  #broadcast(except: string, event: StoredEvent): void {
    for (const p of this.#store.peers()) if (p.id !== except) this.#emit(p.id, event);
  }

  #updateNearby(): void {
    const radius = this.#radius;
    if (radius === null) return;
    const sets = nearbySets(this.#store.peers(), radius);
    for (const [id, near] of sets) {
      if (JSON.stringify(near) === JSON.stringify(this.#store.nearby(id))) continue;
      this.#store.setNearby(id, near);
      this.#emit(id, { type: "nearby", peers: near });
    }
  }

  #wake(): void {
    for (const topic of this.#toWake) {
      const message = this.#wakeMessages.get(topic) ?? "wake";
      const sockets = this.ctx.getWebSockets(topic);
      const pushed = this.#pushFor(topic, sockets);
      for (const ws of sockets) {
        try {
          ws.send(pushed?.to.has(ws) ? pushed.message : message);
        } catch {
          // Closing socket: its Worker re-reads on close anyway.
        }
      }
    }
    this.#toWake.clear();
    this.#wakeMessages.clear();
    this.#appended.clear();
  }

  /**
   * The push for a peer topic given events in this call, and the SSE streams' watches to send it
   * to; null when there is none to send (no such watch, or the events are too many or too large:
   * those watches get "wake" and read). The events count as written for the senders' quotas, as
   * after a stream's read: the stream writes them at once.
   */
  #pushFor(topic: string, sockets: WebSocket[]): { message: string; to: Set<WebSocket> } | null {
    if (!topic.startsWith("peer:") || sockets.length === 0) return null;
    const peer = topic.slice("peer:".length);
    const first = this.#appended.get(peer);
    if (first === undefined) return null;
    const to = new Set(this.ctx.getWebSockets(pushTag(topic)));
    if (to.size === 0) return null;
    const prev = this.#store.eventBefore(peer, first);
    const events = this.#store.events(peer, prev, POLL_BATCH);
    const last = events.at(-1);
    if (last === undefined || events.length >= POLL_BATCH) return null;
    const push: EventPush = { prev, events };
    const message = JSON.stringify(push);
    if (message.length > PUSH_MAX_CHARS) return null;
    this.#store.markWritten(peer, Number(last.id));
    return { message, to };
  }

  // --- Worker subscriptions (hibernatable WebSockets) ----------------------------------------

  override async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const topic = url.searchParams.get("topic");
    if (url.pathname !== "/watch" || !topic || request.headers.get("Upgrade") !== "websocket") {
      return new Response("room object: expected a /watch WebSocket upgrade", { status: 400 });
    }
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    const push = topic.startsWith("peer:") && url.searchParams.get("push") === "1";
    this.ctx.acceptWebSocket(server, push ? [topic, pushTag(topic)] : [topic]);
    // A watch opened alongside its offer may come after the answer, and a poll's watch after
    // new events: wake it at once, so that the Worker holding it waits instead of reading first.
    if (topic.startsWith("session:")) {
      const s = this.#store.session(topic.slice("session:".length));
      if (s && !s.pending) server.send("wake");
    }
    const seen = url.searchParams.get("seen");
    if (topic.startsWith("peer:") && seen !== null) {
      const id = topic.slice("peer:".length);
      const from = /^\d{1,15}$/.test(seen) ? Number(seen) : 0;
      if (!this.#store.peer(id) || this.#store.events(id, from, 1).length > 0) server.send("wake");
    }
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(): Promise<void> {
    // Workers only listen; nothing to do.
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    try {
      ws.close(code === 1005 ? 1000 : code);
    } catch {
      // already closed
    }
    this.#waiterGone(ws);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.#waiterGone(ws);
  }

  /**
   * A parked offer's watch closed while its offer is still pending: the Worker holding it was
   * cancelled (its client went away) without detaching. The answer must then go to the event
   * log, as after a 202. (A Worker closes its watch itself only once it has the answer or has
   * detached, so this never takes an answer from a request that is still waiting.)
   */
  #waiterGone(ws: WebSocket): void {
    const topic = this.ctx.getTags(ws).find((t) => t.startsWith("session:"));
    if (!topic) return;
    const s = this.#store.session(topic.slice("session:".length));
    if (!s?.pending?.waiter) return;
    if (this.ctx.getWebSockets(topic).some((other) => other !== ws)) return;
    s.pending.waiter = false;
    this.#store.saveSession(s);
  }

  // --- expiry (one alarm, earliest deadline first) -----------------------------------------

  async #scheduleAlarm(): Promise<void> {
    const deadlines: number[] = [];
    const oldest = this.#store.oldestLastSeen();
    if (oldest !== null) deadlines.push(oldest + this.#ttlMs);
    const tokenExp = this.#store.earliestTokenExp();
    if (tokenExp !== null) deadlines.push(tokenExp);
    for (const s of this.#store.sessionsWithPending()) {
      if (s.pending) deadlines.push(s.pending.createdAt + this.#offerTtlMs);
    }
    if (deadlines.length === 0) return;
    const next = Math.min(...deadlines);
    const current = await this.ctx.storage.getAlarm();
    // last_seen only grows, so an earlier alarm is never wrong: it re-plans when it fires.
    if (current === null || current > next) await this.ctx.storage.setAlarm(next);
  }

  /** Idempotent: expires whatever is due now, re-plans for the rest. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    // A peer is present only while authorized: its token's expiry ends it, parked poll or not.
    for (const id of this.#store.tokenExpiredBy(now)) this.#removePeer(id, "token-expired");
    for (const id of this.#store.staleBefore(now - this.#ttlMs)) {
      // A Worker holding this peer's SSE stream or long-poll keeps it present.
      if (this.ctx.getWebSockets(peerTopic(id)).length > 0) this.#store.touch(id, now);
      else this.#removePeer(id, "expired");
    }
    for (const s of this.#store.sessionsWithPending()) {
      const p = s.pending;
      if (!p || p.createdAt + this.#offerTtlMs > now) continue;
      if (s.state === "offered") {
        this.#closeSession(s, p.by === s.offerer ? s.answerer : s.offerer, "expired");
      } else {
        // An unanswered restart lapses; the session keeps its last answered state.
        s.pending = null;
        this.#store.saveSession(s);
        this.#toWake.add(sessionTopic(s.id));
      }
    }
    await this.#scheduleAlarm();
    this.#wake();
  }
}
