/**
 * Peers and presence: join/resume, list, update, leave, and the peer's event feed (long-poll or
 * Server-Sent Events). Mounted at /v1/rooms/:room/peers.
 */
import { Hono } from "hono";
import { accepts } from "hono/accepts";
import { streamSSE } from "hono/streaming";
import { z } from "zod";
import { CONTENT_TYPE, LIMITS, paths } from "../../shared/protocol.ts";
import { joinBodySchema, kindSchema } from "../../shared/schemas.ts";
import { checkRoom, checkSelf } from "../auth.ts";
import {
  type AppEnv,
  authorizedUntilS,
  type Ctx,
  claims,
  idParam,
  ifMatch,
  roomStub,
  selfId,
  unwrap,
} from "../context.ts";
import { numVar } from "../env.ts";
import { iceServersForPeer } from "../ice-cache.ts";
import { jsonBody } from "../json-body.ts";
import { jsonLimit } from "../limits.ts";
import { peerEtag } from "../peer-etag.ts";
import { problem } from "../problem.ts";
import { type HeldWatch, pollEvents } from "../waits.ts";

export const peersRoutes = new Hono<AppEnv>();

/**
 * A merge patch (RFC 7396) of the peer's kind/meta/position. Objects merge key by key and `null`
 * removes, so `position` may be partial here; the room checks the merged result.
 */
const peerMergePatchSchema = z
  .object({
    kind: kindSchema.optional(),
    meta: z.record(z.string(), z.unknown()).nullable().optional(),
    position: z.record(z.string(), z.unknown()).nullable().optional(),
  })
  .strict();

function room(c: Ctx): string {
  const r = idParam(c, "room");
  checkRoom(claims(c), r);
  return r;
}

peersRoutes.post("/", jsonLimit, async (c) => {
  const r = room(c);
  const id = selfId(c);
  const body = await jsonBody(c, joinBodySchema, [CONTENT_TYPE.json], true);
  const stub = roomStub(c, r);
  const joined = unwrap(await stub.join(id, body, authorizedUntilS(claims(c))));
  // TURN trouble must not keep a peer out of the room: it can fetch /v1/ice-servers later.
  const ice = await iceServersForPeer(c, stub, id, claims(c).exp).catch(() => ({
    iceServers: [],
    ttl: 0,
  }));
  // With NEARBY_RADIUS set, the radius the `nearby` events use (the console draws it).
  const radius = numVar(c.env.NEARBY_RADIUS, Number.NaN);
  return c.json(
    {
      peer: joined.peer,
      peers: joined.peers,
      iceServers: ice.iceServers,
      cursor: joined.cursor,
      head: joined.head,
      ...(Number.isNaN(radius) ? {} : { room: { nearbyRadius: radius } }),
    },
    joined.status,
    { Location: paths.peer(r, id), ETag: `"${peerEtag(joined.peer)}"` },
  );
});

peersRoutes.get("/", async (c) => {
  const r = room(c);
  return c.json({ peers: await roomStub(c, r).listPeers() });
});

peersRoutes.patch("/:id", jsonLimit, async (c) => {
  const r = room(c);
  const id = idParam(c, "id");
  checkSelf(claims(c), id);
  const patch = await jsonBody(c, peerMergePatchSchema, [
    CONTENT_TYPE.mergePatch,
    CONTENT_TYPE.json,
  ]);
  const { peer } = unwrap(await roomStub(c, r).updatePeer(id, patch, ifMatch(c)));
  return c.json(peer, 200, { ETag: `"${peerEtag(peer)}"` });
});

peersRoutes.delete("/:id", async (c) => {
  const r = room(c);
  const id = idParam(c, "id");
  checkSelf(claims(c), id);
  unwrap(await roomStub(c, r).leave(id));
  return c.body(null, 204);
});

function cursorValue(v: string | undefined, what: string): number | null {
  if (v === undefined || v === "") return null;
  if (!/^\d{1,15}$/.test(v))
    throw problem(400, "Bad request", `${what} must be a cursor from this edge`);
  return Number(v);
}

/** An events request's parameters, checked (400) before any room call; GET and HEAD share them. */
function eventsRequest(c: Ctx) {
  const r = room(c);
  const id = idParam(c, "id");
  checkSelf(claims(c), id);
  const waitText = c.req.query("wait");
  let waitS: number = LIMITS.pollWaitDefaultS;
  if (waitText !== undefined) {
    if (!/^\d{1,2}$/.test(waitText) || Number(waitText) > LIMITS.pollWaitMaxS) {
      throw problem(400, "Bad request", `wait must be an integer 0..${LIMITS.pollWaitMaxS}`);
    }
    waitS = Number(waitText);
  }
  // Content negotiation as RFC 9110 §12.5.1 reads Accept (a range at q=0 is refused); JSON is the
  // default, so `*/*` and no header get the long-poll.
  const sse =
    accepts(c, {
      header: "Accept",
      supports: [CONTENT_TYPE.json, CONTENT_TYPE.sse],
      default: CONTENT_TYPE.json,
    }) === CONTENT_TYPE.sse;
  const after = cursorValue(c.req.query("after"), "after");
  const resumeFrom = sse
    ? (cursorValue(c.req.header("Last-Event-ID"), "Last-Event-ID") ?? after)
    : after;
  return { stub: roomStub(c, r), id, waitS, sse, resumeFrom };
}

/**
 * HEAD: the status and headers a GET would get, and nothing else (RFC 9110 §9.3.2, a safe
 * method). Hono answers HEAD with the GET handler: before, a HEAD opened a stream (closing the
 * peer's live one past MAX_STREAMS_PER_PEER) and acknowledged events.
 */
async function headEvents(c: Ctx, q: ReturnType<typeof eventsRequest>): Promise<Response> {
  // A read: no acknowledgement, no stream, no token expiry recorded (a 404 or 400 as for GET).
  await pollEvents(q.stub, q.id, { after: q.resumeFrom, ack: null, waitMs: 0, tokenExpS: null });
  return c.body(null, 200, {
    "Content-Type": q.sse ? CONTENT_TYPE.sse : CONTENT_TYPE.json,
    "Cache-Control": "no-store",
  });
}

peersRoutes.get("/:id/events", async (c) => {
  const q = eventsRequest(c);
  if (c.req.method === "HEAD") return headEvents(c, q);
  const { stub, id, waitS, sse, resumeFrom } = q;
  // The peer's own token bounds its presence (an admin reading its events does not).
  const cl = claims(c);
  const tokenExp = cl.sub === id ? authorizedUntilS(cl) : null;
  if (!sse) {
    // A long-poll's `after` is where it resumes, and what it acknowledges.
    const got = await pollEvents(stub, id, {
      after: resumeFrom,
      ack: resumeFrom,
      waitMs: waitS * 1000,
      signal: c.req.raw.signal,
      tokenExpS: tokenExp,
    });
    return c.json({ events: got.events, cursor: got.cursor }, 200, { "Cache-Control": "no-store" });
  }
  // Fail before the stream starts if the peer is unknown: a clean 404, not a broken stream.
  const first = await pollEvents(stub, id, {
    after: resumeFrom,
    ack: resumeFrom,
    waitMs: 0,
    tokenExpS: tokenExp,
  });
  // Past MAX_STREAMS_PER_PEER, registering this stream closes the peer's oldest one.
  const streamId = crypto.randomUUID();
  unwrap(await stub.openStream(id, streamId));
  c.header("X-Accel-Buffering", "no");
  const ackDelayMs = numVar(c.env.SSE_ACK_DELAY_S, 60) * 1000;
  const res = streamSSE(c, async (stream) => {
    let open = true;
    stream.onAbort(() => {
      open = false;
    });
    /**
     * Batches written and not yet acknowledged, oldest first. A write into a connection that died
     * silently (a blackholed uplink) still succeeds here; acknowledging at once would lose those
     * events. They are acknowledged once the client had time to notice a dead stream and resume
     * with Last-Event-ID (which sends them again): protocol-v1's "delivered again until the
     * client has moved its cursor past it".
     */
    const written: { cursor: number; at: number }[] = [];
    const held: HeldWatch = { watch: null, readAt: Date.now() };
    try {
      await stream.write("retry: 2000\n\n");
      let batch = first;
      while (open) {
        if (batch.superseded) {
          const detail = "a newer event stream of this peer replaced this one";
          await stream.writeSSE({ event: "error", data: JSON.stringify({ detail }) });
          break;
        }
        for (const ev of batch.events) {
          await stream.writeSSE({ id: ev.id, event: ev.type, data: JSON.stringify(ev) });
        }
        if (batch.events.length === 0) await stream.write(": keep-alive\n\n");
        const cursor = Number(batch.cursor);
        const now = Date.now();
        if (batch.events.length > 0) written.push({ cursor, at: now });
        // Acknowledge what went out long enough ago on this still-open stream (otherwise an SSE
        // peer would hold every event it was ever sent).
        let delivered: number | null = null;
        while (open && !stream.aborted && written.length > 0) {
          const w = written[0] as { cursor: number; at: number };
          if (now - w.at < ackDelayMs) break;
          delivered = w.cursor;
          written.shift();
        }
        // Wake for the next acknowledgement due, at the latest for the keep-alive.
        const nextDue = written[0] ? written[0].at + ackDelayMs - now : Number.POSITIVE_INFINITY;
        const waitMs = Math.max(0, Math.min(LIMITS.sseKeepAliveS * 1000, nextDue));
        try {
          batch = await pollEvents(stub, id, {
            after: cursor,
            ack: delivered,
            waitMs,
            signal: c.req.raw.signal,
            stream: streamId,
            held,
          });
        } catch (e) {
          const detail = e instanceof Error ? e.message : "stream ended";
          await stream.writeSSE({ event: "error", data: JSON.stringify({ detail }) });
          break;
        }
      }
    } finally {
      held.watch?.close();
      // The stream's lease lapses by itself (60 s) if the room cannot be told now.
      await stub.closeStream(streamId).catch((e: unknown) => {
        console.warn("closeStream:", e instanceof Error ? e.message : String(e));
      });
    }
  });
  // streamSSE sets `no-cache` (may be stored, revalidated); events are per peer and never reused.
  res.headers.set("Cache-Control", "no-store");
  return res;
});
