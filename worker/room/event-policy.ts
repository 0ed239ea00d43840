/**
 * What a peer's event log keeps when others write into it faster than it reads. Pure: the room
 * object asks, the store carries it out.
 *
 * - Signaling (offer, answer, restart, candidates, session-closed) and membership (peer-joined,
 *   peer-left) are protected: chatter never evicts them.
 * - Chatter (peer-updated, nearby) is coalesced: one pending event per subject, a newer one
 *   replaces the older undelivered one. When the log is full, the oldest chatter goes first.
 * - Each sender may hold at most `perSender` undelivered events in another peer's log; past
 *   that, or when protected events alone fill the log, a request that would add one is refused
 *   (429) instead of evicting anything. Requests that end things (leave, hang-up, answer,
 *   expiry) are never refused: each needs an earlier refusable one, so they overflow the cap by
 *   at most the peers and sessions that exist.
 */
import type { StoredEvent } from "./store.ts";

export type EventClass = "protected" | "chatter";

export function classOf(event: StoredEvent): EventClass {
  return event.type === "peer-updated" || event.type === "nearby" ? "chatter" : "protected";
}

/** Events with the same key in one log replace each other (the newest wins); null: never. */
export function coalesceKey(event: StoredEvent): string | null {
  if (event.type === "peer-updated") return `peer-updated:${event.peer.id}`;
  if (event.type === "nearby") return "nearby";
  // Only the newest matters (the process now holding the seat); repeated joins cannot pile up.
  if (event.type === "seat-taken") return "seat-taken";
  return null;
}

/** The peer whose request put the event in the log; null for the room's own (nearby). */
export function senderOf(event: StoredEvent): string | null {
  switch (event.type) {
    case "peer-joined":
    case "peer-updated":
      return event.peer.id;
    case "peer-left":
    case "seat-taken":
      return event.peer;
    case "nearby":
      return null;
    case "session-closed":
      return event.by;
    default:
      return event.from;
  }
}

export interface LogLimits {
  /** Undelivered events a log holds before chatter is dropped (MAX_EVENTS_PER_PEER). */
  keep: number;
  /** Undelivered events one sender may hold in another peer's log (MAX_EVENTS_PER_SENDER). */
  perSender: number;
}

/** Default per-sender quota: an eighth of the log, so it takes 8 senders to fill it. */
export function defaultPerSender(keep: number): number {
  return Math.max(1, Math.floor(keep / 8));
}

/** What one recipient's log holds right now, as far as admitting one more event goes. */
export interface LogFacts {
  /** Undelivered events in the log. */
  total: number;
  /** Of which chatter (evictable). */
  chatter: number;
  /** Of which put there by this sender. */
  fromSender: number;
}

export type Refusal = "sender-quota" | "log-full";

/** May a refusable request add one protected event from this sender to this log? */
export function admit(log: LogFacts, limits: LogLimits): Refusal | null {
  if (log.fromSender >= limits.perSender) return "sender-quota";
  if (log.total - log.chatter >= limits.keep) return "log-full";
  return null;
}

/** How many of the oldest chatter events to drop so that the log is back to `keep`. */
export function chatterToDrop(log: { total: number; chatter: number }, keep: number): number {
  return Math.max(0, Math.min(log.chatter, log.total - keep));
}
