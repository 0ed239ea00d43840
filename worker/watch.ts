/**
 * The Worker's side of a parked request: a WebSocket to the room object, subscribed to one
 * topic. The room object accepts it with the hibernation API, so it may sleep or be evicted
 * while we wait; it sends "wake" when something for the topic changed, and we re-read over RPC.
 * A watch opened with `push` (an SSE stream's) gets a peer's new events in the wake instead.
 */
import type { RoomEvent } from "../shared/protocol.ts";
import type { RoomRpc } from "./context.ts";
import type { EventPush } from "./room/room.ts";

export interface Watch {
  /** Resolves on a wake (true) or when `ms` passed (false). A dropped socket counts as a wake. */
  next(ms: number): Promise<boolean>;
  /** The socket dropped (room object restarted or evicted with its sockets closed): re-watch. */
  readonly dropped: boolean;
  /** A wake (or the socket's end) came that no `next()` has taken yet. */
  readonly pending: boolean;
  /** The last wake's message, when it said more than "wake" (taken: read once). */
  takeMessage(): string | null;
  /**
   * The events pushed since the last read, oldest first, taking the wake; null when something
   * came that needs a read (a wake without events, the socket's end) or nothing came.
   */
  takePushes(): EventPush[] | null;
  /** Forget a wake not taken yet: the caller is about to read, which covers what it announced. */
  clearWake(): void;
  /** End the current (or next) `next()` at once, as a wake would. */
  wakeNow(): void;
  close(): void;
}

/** Pushes kept between two reads at most; past this the caller reads. */
const MAX_PUSHES = 16;

/** An EventPush, or null when `m` is not one. */
function asPush(m: unknown): EventPush | null {
  if (typeof m !== "object" || m === null) return null;
  const { prev, events } = m as { prev?: unknown; events?: unknown };
  if (typeof prev !== "number" || !Array.isArray(events)) return null;
  return { prev, events: events as RoomEvent[] };
}

/**
 * `seen`: for a peer's topic, the cursor the caller has read up to; the room wakes the watch at
 * once when there is more (or the peer is gone), so the caller need not read again first.
 * `push`: the room sends a peer's new events with each wake (takePushes).
 */
export async function watch(
  stub: RoomRpc,
  topic: string,
  seen?: string,
  push = false,
): Promise<Watch> {
  const q = new URLSearchParams({ topic });
  if (seen !== undefined) q.set("seen", seen);
  if (push) q.set("push", "1");
  const res = await stub.fetch(`https://room/watch?${q}`, {
    headers: { Upgrade: "websocket" },
  });
  const ws = res.webSocket;
  if (!ws) throw new Error(`room object refused the watch (${res.status})`);
  ws.accept();
  let woken = false;
  let closed = false;
  let notify: (() => void) | null = null;
  const poke = () => {
    woken = true;
    notify?.();
  };
  let message: string | null = null;
  const pushes: EventPush[] = [];
  /** Something came since the last read that the pushes do not cover. */
  let mustRead = false;
  ws.addEventListener("message", (e: MessageEvent) => {
    if (typeof e.data !== "string" || e.data === "wake") mustRead = true;
    else if (!push) message = e.data;
    else {
      let p: EventPush | null = null;
      try {
        p = asPush(JSON.parse(e.data));
      } catch {
        // Not a push: read.
      }
      if (p !== null && pushes.length < MAX_PUSHES) pushes.push(p);
      else mustRead = true;
    }
    poke();
  });
  ws.addEventListener("close", () => {
    closed = true;
    poke();
  });
  ws.addEventListener("error", () => {
    closed = true;
    poke();
  });
  let dropped = false;
  ws.addEventListener("close", () => {
    dropped = true;
  });
  return {
    get dropped() {
      return dropped;
    },
    get pending() {
      return woken || closed;
    },
    wakeNow: poke,
    takePushes() {
      if (closed || mustRead || pushes.length === 0) return null;
      woken = false;
      return pushes.splice(0);
    },
    clearWake() {
      woken = false;
      mustRead = false;
      pushes.length = 0;
    },
    takeMessage() {
      const m = message;
      message = null;
      return m;
    },
    async next(ms) {
      if (!woken && !closed) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.max(0, ms));
          notify = () => {
            clearTimeout(t);
            resolve();
          };
        });
        notify = null;
      }
      const was = woken;
      woken = false;
      if (closed) {
        // The re-read decides; the caller keeps waiting by polling until its deadline.
        return true;
      }
      return was;
    },
    close() {
      if (closed) return;
      closed = true;
      try {
        ws.close(1000, "done");
      } catch {
        // already gone
      }
    },
  };
}
