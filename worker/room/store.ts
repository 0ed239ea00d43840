/**
 * The room's durable state in the Durable Object's SQLite storage: peers, sessions and a
 * per-peer event log. Everything that must survive eviction or an edge restart lives here;
 * the room object keeps nothing important in memory.
 */
import type { IceServer, Peer, PeerMeta, Position, RoomEvent } from "../../shared/protocol.ts";
import type { CachedIce } from "../ice-cache.ts";
import { chatterToDrop, classOf, coalesceKey, type LogFacts, senderOf } from "./event-policy.ts";

/** Event body as stored: the cursor (`id`) is the row's sequence number, added on read. */
export type StoredEvent = RoomEvent extends infer E
  ? E extends RoomEvent
    ? Omit<E, "id">
    : never
  : never;

export type PendingKind = "offer" | "restart";
export interface Pending {
  kind: PendingKind;
  /** The peer that made the offer/restart and waits for its answer. */
  by: string;
  etag: string;
  /** Full SDP (kind offer) or sdpfrag (kind restart). */
  body: string;
  /** Its ICE ufrag, as the Worker parsed it (absent in rows written before it was kept). */
  ufrag?: string | null;
  createdAt: number;
  /** A Worker holds the offerer's request; the answer goes to it, not to the event log. */
  waiter: boolean;
  /** After this, a waiter is presumed gone (its Worker died) and the answer becomes an event. */
  waitUntil: number;
}

export interface SessionRow {
  id: string;
  offerer: string;
  answerer: string;
  state: "offered" | "answered";
  etag: string;
  offer: string;
  /** The answer in full, as GET shows it. */
  answer: string | null;
  /**
   * What the offerer's parked request was given instead of `answer`, when that differs: a PATCH
   * restart's answer cut to one candidate (worker/restart-answer.ts). Null otherwise.
   */
  reply: string | null;
  offererUfrag: string | null;
  answererUfrag: string | null;
  pending: Pending | null;
  createdAt: number;
  updatedAt: number;
}

interface PeerRecord extends Record<string, SqlStorageValue> {
  id: string;
  kind: string;
  meta: string;
  position: string | null;
  joined_at: number;
  last_seen: number;
  acked: number;
  nearby: string;
}

interface SessionRecord extends Record<string, SqlStorageValue> {
  id: string;
  offerer: string;
  answerer: string;
  state: string;
  etag: string;
  offer: string;
  answer: string | null;
  reply: string | null;
  offerer_ufrag: string | null;
  answerer_ufrag: string | null;
  pending: string | null;
  created_at: number;
  updated_at: number;
}

/**
 * Columns added after the first deployments (event-log policy, token expiry, what an SSE stream
 * wrote): ALTER TABLE for rooms created before them. Old events have no class and count as
 * protected.
 */
const ADDED_COLUMNS: [table: string, column: string, type: string][] = [
  ["events", "sender", "TEXT"],
  ["events", "cls", "TEXT"],
  ["events", "ckey", "TEXT"],
  ["peers", "token_exp", "INTEGER"],
  ["peers", "written", "INTEGER"],
  ["sessions", "reply", "TEXT"],
];

const SCHEMA = `
CREATE TABLE IF NOT EXISTS peers (
  id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  meta TEXT NOT NULL,
  position TEXT,
  joined_at INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  acked INTEGER NOT NULL DEFAULT 0,
  nearby TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  peer TEXT NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_peer ON events (peer, seq);
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY,
  offerer TEXT NOT NULL,
  answerer TEXT NOT NULL,
  state TEXT NOT NULL,
  etag TEXT NOT NULL,
  offer TEXT NOT NULL,
  answer TEXT,
  offerer_ufrag TEXT,
  answerer_ufrag TEXT,
  pending TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_offerer ON sessions (offerer);
CREATE TABLE IF NOT EXISTS ice (
  peer TEXT PRIMARY KEY,
  body TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS streams (
  id TEXT PRIMARY KEY,
  peer TEXT NOT NULL,
  opened INTEGER NOT NULL,
  lease INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_answerer ON sessions (answerer);
`;

function toPeer(r: PeerRecord): Peer {
  return {
    id: r.id,
    kind: r.kind,
    meta: JSON.parse(r.meta) as PeerMeta,
    position: r.position ? (JSON.parse(r.position) as Position) : null,
    joinedAt: r.joined_at,
    lastSeen: r.last_seen,
  };
}

function toSession(r: SessionRecord): SessionRow {
  return {
    id: r.id,
    offerer: r.offerer,
    answerer: r.answerer,
    state: r.state === "answered" ? "answered" : "offered",
    etag: r.etag,
    offer: r.offer,
    answer: r.answer,
    reply: r.reply ?? null,
    offererUfrag: r.offerer_ufrag,
    answererUfrag: r.answerer_ufrag,
    pending: r.pending ? (JSON.parse(r.pending) as Pending) : null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export class RoomStore {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
    sql.exec(SCHEMA);
    for (const [table, column, type] of ADDED_COLUMNS) {
      const has = sql
        .exec("SELECT 1 FROM pragma_table_info(?) WHERE name = ?", table, column)
        .toArray();
      if (has.length === 0) sql.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
    }
  }

  // --- peers -----------------------------------------------------------------------------

  peer(id: string): Peer | null {
    const r = this.#sql.exec<PeerRecord>("SELECT * FROM peers WHERE id = ?", id).toArray()[0];
    return r ? toPeer(r) : null;
  }

  peers(): Peer[] {
    return this.#sql
      .exec<PeerRecord>("SELECT * FROM peers ORDER BY joined_at, id")
      .toArray()
      .map(toPeer);
  }

  peerCount(): number {
    return Number(this.#sql.exec("SELECT count(*) AS n FROM peers").one().n);
  }

  insertPeer(p: Peer, acked: number): void {
    this.#sql.exec(
      "INSERT INTO peers (id, kind, meta, position, joined_at, last_seen, acked) VALUES (?, ?, ?, ?, ?, ?, ?)",
      p.id,
      p.kind,
      JSON.stringify(p.meta),
      p.position ? JSON.stringify(p.position) : null,
      p.joinedAt,
      p.lastSeen,
      acked,
    );
  }

  updatePeer(p: Peer): void {
    this.#sql.exec(
      "UPDATE peers SET kind = ?, meta = ?, position = ?, last_seen = ? WHERE id = ?",
      p.kind,
      JSON.stringify(p.meta),
      p.position ? JSON.stringify(p.position) : null,
      p.lastSeen,
      p.id,
    );
  }

  touch(id: string, now: number): void {
    this.#sql.exec("UPDATE peers SET last_seen = max(last_seen, ?) WHERE id = ?", now, id);
  }

  /** The cursor the peer has acknowledged (moved past). */
  acked(id: string): number {
    const r = this.#sql.exec("SELECT acked FROM peers WHERE id = ?", id).toArray()[0];
    return r ? Number(r.acked) : 0;
  }

  /**
   * Record that a live event stream of the peer has written its events up to `cursor`. They stay
   * in the log until acknowledged (a resumed stream sends them again), but the peer is reading:
   * they no longer count against their senders' quotas (logFacts).
   */
  markWritten(id: string, cursor: number): void {
    this.#sql.exec(
      "UPDATE peers SET written = max(coalesce(written, 0), ?) WHERE id = ?",
      cursor,
      id,
    );
  }

  /** Record that the peer moved its cursor to `cursor`: events up to it are delivered, drop them. */
  ack(id: string, cursor: number): void {
    this.#sql.exec("UPDATE peers SET acked = max(acked, ?) WHERE id = ?", cursor, id);
    this.#sql.exec("DELETE FROM events WHERE peer = ? AND seq <= ?", id, cursor);
  }

  deletePeer(id: string): void {
    this.#sql.exec("DELETE FROM peers WHERE id = ?", id);
    this.#sql.exec("DELETE FROM events WHERE peer = ?", id);
    this.#sql.exec("DELETE FROM streams WHERE peer = ?", id);
    this.#sql.exec("DELETE FROM ice WHERE peer = ?", id);
  }

  nearby(id: string): string[] {
    const r = this.#sql.exec("SELECT nearby FROM peers WHERE id = ?", id).toArray()[0];
    return r ? (JSON.parse(String(r.nearby)) as string[]) : [];
  }

  setNearby(id: string, ids: readonly string[]): void {
    this.#sql.exec("UPDATE peers SET nearby = ? WHERE id = ?", JSON.stringify(ids), id);
  }

  /** Peers whose last poll is older than `before` (ms). */
  staleBefore(before: number): string[] {
    return this.#sql
      .exec("SELECT id FROM peers WHERE last_seen < ?", before)
      .toArray()
      .map((r) => String(r.id));
  }

  /** Record the expiry (ms) of a token the peer presented; the latest-expiring one counts. */
  noteTokenExp(id: string, expMs: number): void {
    this.#sql.exec(
      "UPDATE peers SET token_exp = max(coalesce(token_exp, 0), ?) WHERE id = ?",
      expMs,
      id,
    );
  }

  /** Peers whose every presented token had expired by `now` (ms). */
  tokenExpiredBy(now: number): string[] {
    return this.#sql
      .exec("SELECT id FROM peers WHERE token_exp IS NOT NULL AND token_exp <= ?", now)
      .toArray()
      .map((r) => String(r.id));
  }

  earliestTokenExp(): number | null {
    const r = this.#sql.exec("SELECT min(token_exp) AS t FROM peers").one();
    return r.t === null ? null : Number(r.t);
  }

  oldestLastSeen(): number | null {
    const r = this.#sql.exec("SELECT min(last_seen) AS t FROM peers").one();
    return r.t === null ? null : Number(r.t);
  }

  // --- events ----------------------------------------------------------------------------

  /** The highest cursor handed out in this room so far (0 when none). */
  lastSeq(): number {
    const r = this.#sql.exec("SELECT seq FROM sqlite_sequence WHERE name = 'events'").toArray()[0];
    return r ? Number(r.seq) : 0;
  }

  /**
   * Append one event to a peer's log; returns its cursor. A chatter event replaces the pending
   * one with the same coalescing key; past `keep` events the oldest chatter goes
   * (worker/room/event-policy.ts). Protected events are never dropped here.
   */
  append(peer: string, event: StoredEvent, keep: number): number {
    const ckey = coalesceKey(event);
    if (ckey !== null) this.#sql.exec("DELETE FROM events WHERE peer = ? AND ckey = ?", peer, ckey);
    const r = this.#sql
      .exec(
        "INSERT INTO events (peer, body, sender, cls, ckey) VALUES (?, ?, ?, ?, ?) RETURNING seq",
        peer,
        JSON.stringify(event),
        senderOf(event),
        classOf(event),
        ckey,
      )
      .one();
    const seq = Number(r.seq);
    const drop = chatterToDrop(this.logFacts(peer, null), keep);
    if (drop > 0) {
      this.#sql.exec(
        `DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE peer = ? AND cls = 'chatter'
           ORDER BY seq LIMIT ?)`,
        peer,
        drop,
      );
    }
    return seq;
  }

  /**
   * The size of a peer's log, its chatter and (when given) what `sender` put there: the events not
   * yet written to a live stream of the peer (markWritten). Written ones wait only for their
   * acknowledgement, which an SSE stream gives a while later.
   */
  logFacts(peer: string, sender: string | null): LogFacts {
    const r = this.#sql
      .exec(
        `SELECT count(*) AS total, count(CASE WHEN cls = 'chatter' THEN 1 END) AS chatter,
           count(CASE WHEN sender = ? THEN 1 END) AS mine FROM events
         WHERE peer = ? AND seq > coalesce((SELECT written FROM peers WHERE id = ?), 0)`,
        sender,
        peer,
        peer,
      )
      .one();
    return { total: Number(r.total), chatter: Number(r.chatter), fromSender: Number(r.mine) };
  }

  /** The cursor of the peer's last event before `seq` (0: none left in its log). */
  eventBefore(peer: string, seq: number): number {
    const r = this.#sql
      .exec("SELECT max(seq) AS s FROM events WHERE peer = ? AND seq < ?", peer, seq)
      .one();
    return r.s === null ? 0 : Number(r.s);
  }

  events(peer: string, after: number, limit: number): RoomEvent[] {
    return this.#sql
      .exec(
        "SELECT seq, body FROM events WHERE peer = ? AND seq > ? ORDER BY seq LIMIT ?",
        peer,
        after,
        limit,
      )
      .toArray()
      .map(
        (r) => ({ id: String(r.seq), ...(JSON.parse(String(r.body)) as StoredEvent) }) as RoomEvent,
      );
  }

  // --- sessions --------------------------------------------------------------------------

  session(id: string): SessionRow | null {
    const r = this.#sql.exec<SessionRecord>("SELECT * FROM sessions WHERE id = ?", id).toArray()[0];
    return r ? toSession(r) : null;
  }

  sessionsOf(peer: string): SessionRow[] {
    return this.#sql
      .exec<SessionRecord>("SELECT * FROM sessions WHERE offerer = ? OR answerer = ?", peer, peer)
      .toArray()
      .map(toSession);
  }

  /** Sessions `offerer` opened to `answerer`, oldest first. */
  sessionsBetween(offerer: string, answerer: string): SessionRow[] {
    return this.#sql
      .exec<SessionRecord>(
        "SELECT * FROM sessions WHERE offerer = ? AND answerer = ? ORDER BY created_at, id",
        offerer,
        answerer,
      )
      .toArray()
      .map(toSession);
  }

  sessionsWithPending(): SessionRow[] {
    return this.#sql
      .exec<SessionRecord>("SELECT * FROM sessions WHERE pending IS NOT NULL")
      .toArray()
      .map(toSession);
  }

  saveSession(s: SessionRow): void {
    this.#sql.exec(
      `INSERT INTO sessions (id, offerer, answerer, state, etag, offer, answer, reply,
         offerer_ufrag, answerer_ufrag, pending, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET state = excluded.state, etag = excluded.etag,
         offer = excluded.offer, answer = excluded.answer, reply = excluded.reply,
         offerer_ufrag = excluded.offerer_ufrag,
         answerer_ufrag = excluded.answerer_ufrag, pending = excluded.pending,
         updated_at = excluded.updated_at`,
      s.id,
      s.offerer,
      s.answerer,
      s.state,
      s.etag,
      s.offer,
      s.answer,
      s.reply,
      s.offererUfrag,
      s.answererUfrag,
      s.pending ? JSON.stringify(s.pending) : null,
      s.createdAt,
      s.updatedAt,
    );
  }

  deleteSession(id: string): void {
    this.#sql.exec("DELETE FROM sessions WHERE id = ?", id);
  }

  // --- cached TURN credentials ----------------------------------------------------------

  /** The body is `{config, iceServers}`; a bare array is an entry from before `config`. */
  ice(peer: string): CachedIce | null {
    const r = this.#sql.exec("SELECT body, expires_at FROM ice WHERE peer = ?", peer).toArray()[0];
    if (!r) return null;
    const body = JSON.parse(String(r.body)) as
      | IceServer[]
      | { config: string; iceServers: IceServer[] };
    const { config, iceServers } = Array.isArray(body) ? { config: "", iceServers: body } : body;
    return { iceServers, expiresAt: Number(r.expires_at), config };
  }

  setIce(peer: string, value: CachedIce): void {
    this.#sql.exec(
      "INSERT OR REPLACE INTO ice (peer, body, expires_at) VALUES (?, ?, ?)",
      peer,
      JSON.stringify({ config: value.config, iceServers: value.iceServers }),
      value.expiresAt,
    );
  }

  // --- event streams (SSE) held by Workers ------------------------------------------------

  /** Register a stream; drops lapsed leases; returns the peer's live streams, oldest first. */
  openStream(peer: string, id: string, now: number, leaseMs: number): string[] {
    this.#sql.exec("DELETE FROM streams WHERE lease < ?", now);
    this.#sql.exec(
      "INSERT OR REPLACE INTO streams (id, peer, opened, lease) VALUES (?, ?, ?, ?)",
      id,
      peer,
      now,
      now + leaseMs,
    );
    return this.#sql
      .exec("SELECT id FROM streams WHERE peer = ? ORDER BY opened, id", peer)
      .toArray()
      .map((r) => String(r.id));
  }

  /** Extend a stream's lease; false when it is no longer registered (closed as superseded). */
  renewStream(id: string, now: number, leaseMs: number): boolean {
    this.#sql.exec("UPDATE streams SET lease = ? WHERE id = ?", now + leaseMs, id);
    return this.#sql.exec("SELECT 1 FROM streams WHERE id = ?", id).toArray().length > 0;
  }

  closeStream(id: string): void {
    this.#sql.exec("DELETE FROM streams WHERE id = ?", id);
  }
}
