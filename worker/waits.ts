/**
 * Parked requests, held by the Worker (not the room object): a long-poll waiting for events and
 * an offer waiting for its answer. Each re-reads the room over RPC whenever its watch wakes; an
 * SSE stream takes the events its wakes carry instead, while they continue what it wrote.
 */
import type { RoomEvent } from "../shared/protocol.ts";
import { type RoomRpc, unwrap } from "./context.ts";
import { eventsFromPushes } from "./event-push.ts";
import { peerTopic, sessionTopic, type WaitState } from "./room/room.ts";
import { type Watch, watch } from "./watch.ts";

type Stub = RoomRpc;

async function rewatchIfDropped(
  stub: Stub,
  topic: string,
  w: Watch,
  seen?: string,
  push = false,
): Promise<Watch> {
  if (!w.dropped) return w;
  await new Promise((r) => setTimeout(r, 50));
  return watch(stub, topic, seen, push);
}

/**
 * An SSE stream's watch, kept across its batches: one WebSocket to the room object for the
 * stream's life instead of one per batch (each opening and closing is a request to the object),
 * and no read before waiting when nothing woke it since the last read.
 */
export interface HeldWatch {
  watch: Watch | null;
  /** When the stream last read (ms). Reads renew its lease: after a quiet wait it reads again. */
  readAt: number;
}

/** A held watch's last read is recent enough to wait on without reading first (lease: 60 s). */
const HELD_READ_FRESH_MS = 5_000;

export interface EventBatch {
  events: RoomEvent[];
  cursor: string;
  /** Only for a registered SSE stream: a newer stream of the peer replaced it. */
  superseded?: true;
}

/** What a read of a peer's events is (pollEvents). */
export interface EventRead {
  /** Events after this cursor (null: after what the peer acknowledged). */
  after: number | null;
  /** What the client acknowledged: the long-poll's own `after`; for SSE, what the stream delivered. */
  ack: number | null;
  /** How long to wait for the first event (0: read once). */
  waitMs: number;
  /** The client went away: stop waiting. */
  signal?: AbortSignal;
  /** A registered SSE stream's id: its lease is renewed on every read. */
  stream?: string | null;
  /** The end of the peer's own token (recorded: its presence ends then). */
  tokenExpS?: number | null;
  /** An SSE stream's watch, kept for the stream's life (HeldWatch). */
  held?: HeldWatch;
}

/** Events for `peer` as `how` says, waiting up to `how.waitMs` for the first one. */
export async function pollEvents(stub: Stub, peer: string, how: EventRead): Promise<EventBatch> {
  const { after, ack, waitMs, signal, held } = how;
  const stream = how.stream ?? null;
  const tokenExpS = how.tokenExpS ?? null;
  const deadline = Date.now() + waitMs;
  const read = async (): Promise<EventBatch> => {
    // A wake that came before this read is answered by it.
    held?.watch?.clearWake();
    const r = unwrap(await stub.poll(peer, after, ack, stream, tokenExpS));
    if (held) held.readAt = Date.now();
    return r.superseded
      ? { events: r.events, cursor: r.cursor, superseded: true }
      : { events: r.events, cursor: r.cursor };
  };
  /**
   * The events a held watch's wakes carried, when this stream may write them without reading:
   * no acknowledgement is due, its lease is fresh, and they continue what it wrote (`after`).
   * Null: read.
   */
  const pushed = (w: Watch): EventBatch | null => {
    if (!held || after === null || ack !== null) return null;
    if (Date.now() - held.readAt >= HELD_READ_FRESH_MS) return null;
    const pushes = w.takePushes();
    const got = pushes === null ? null : eventsFromPushes(after, pushes);
    return got === null ? null : { events: got.events, cursor: String(got.cursor) };
  };
  const kept = held?.watch && !held.watch.dropped ? held.watch : null;
  // A held watch open since the last read and not woken: nothing was appended since, so wait
  // first (unless an acknowledgement is due, or the lease wants renewing). Woken with events
  // that continue what was written: those, without a read.
  const quiet =
    kept !== null &&
    !kept.pending &&
    after !== null &&
    ack === null &&
    Date.now() - (held?.readAt ?? 0) < HELD_READ_FRESH_MS;
  let r: EventBatch = quiet
    ? { events: [], cursor: String(after) }
    : ((kept && pushed(kept)) ?? (await read()));
  if (r.events.length > 0 || r.superseded || waitMs <= 0) return r;
  const topic = peerTopic(peer);
  const push = held !== undefined;
  // Subscribed saying what was read: an event appended before the subscription wakes it at once.
  let w = kept ?? (await watch(stub, topic, r.cursor, push));
  if (held) held.watch = w;
  const gone = () => w.wakeNow();
  signal?.addEventListener("abort", gone);
  try {
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) return r;
      if (!(await w.next(left))) continue;
      r = pushed(w) ?? (await read());
      if (r.events.length > 0 || r.superseded) return r;
      w = await rewatchIfDropped(stub, topic, w, r.cursor, push);
      if (held) held.watch = w;
    }
  } finally {
    signal?.removeEventListener("abort", gone);
    if (!held) w.close();
  }
}

/**
 * Wait up to `waitMs` for the answer to the offer tagged `etag`; then detach (-> 202 path). When
 * the client goes away first (`signal`), detach at once: the answer must then travel as an event.
 * `opened`: a watch on the session's topic already open (taken over and closed here).
 */
export async function awaitAnswer(
  stub: Stub,
  sid: string,
  etag: string,
  waitMs: number,
  signal?: AbortSignal,
  opened?: Watch,
): Promise<WaitState> {
  const deadline = Date.now() + waitMs;
  const topic = sessionTopic(sid);
  // A watch opened with the offer itself saves a round trip; the first read below covers any
  // answer that came before it was open.
  let w = opened ?? (await watch(stub, topic));
  const gone = () => w.wakeNow();
  signal?.addEventListener("abort", gone);
  // With the watch opened alongside the offer, the room wakes it at once if the answer came
  // first, so the first read can wait for a wake.
  let read = opened === undefined;
  try {
    for (;;) {
      if (read) {
        const st = await stub.waitState(sid, etag);
        if (st.state !== "pending") return st;
      }
      read = true;
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) return await stub.detach(sid, etag);
      await w.next(left);
      // The answer in the wake itself (for this offer): no read needed.
      const said = answeredIn(w.takeMessage(), etag);
      if (said) return said;
      w = await rewatchIfDropped(stub, topic, w);
    }
  } finally {
    signal?.removeEventListener("abort", gone);
    w.close();
  }
}

/** The answered state a session wake carried, when it is for the offer tagged `etag`. */
function answeredIn(message: string | null, etag: string): WaitState | null {
  if (message === null) return null;
  try {
    const m = JSON.parse(message) as { state?: unknown; answer?: unknown; etag?: unknown };
    if (m.state === "answered" && m.etag === etag && typeof m.answer === "string") {
      return { state: "answered", answer: m.answer, etag };
    }
  } catch {
    // Not ours to understand: the re-read decides.
  }
  return null;
}
