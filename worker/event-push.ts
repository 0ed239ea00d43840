/**
 * What an SSE stream may write from the events its wakes carried (EventPush, worker/room/room.ts)
 * without reading the room back: the events after `after`, when the pushes continue from there.
 */
import type { RoomEvent } from "../shared/protocol.ts";
import type { EventPush } from "./room/room.ts";

/**
 * The events of `pushes` (oldest first) past `after`, and the cursor after them; null when one
 * push starts past `after` (one in between went missing: the stream must read). Events at or
 * before `after` (already written, from a read that overlapped the push) are left out.
 */
export function eventsFromPushes(
  after: number,
  pushes: readonly EventPush[],
): { events: RoomEvent[]; cursor: number } | null {
  let cursor = after;
  const events: RoomEvent[] = [];
  for (const p of pushes) {
    if (p.prev > cursor) return null;
    for (const e of p.events) {
      if (Number(e.id) <= cursor) continue;
      events.push(e);
      cursor = Number(e.id);
    }
  }
  return { events, cursor };
}
