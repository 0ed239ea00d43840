/**
 * GET /v1/ice-servers: the STUN/TURN servers this peer may use, with credentials that live no
 * longer than its token. The room is `?room=`, else the token's room (a token for every room must
 * name one); the peer need not have joined it yet (a WHIP client asks before it offers).
 */
import { Hono } from "hono";
import { ID_PATTERN } from "../../shared/protocol.ts";
import { checkRoom } from "../auth.ts";
import { type AppEnv, claims, roomStub } from "../context.ts";
import { iceServersForPeer } from "../ice-cache.ts";
import { IceServersUnavailable } from "../ice-servers.ts";
import { problem } from "../problem.ts";

export const iceServersRoutes = new Hono<AppEnv>();

iceServersRoutes.get("/", async (c) => {
  const cl = claims(c);
  const room = c.req.query("room") ?? (cl.room === "*" ? undefined : cl.room);
  if (room === undefined) {
    throw problem(400, "Bad request", "this token is for every room: name one with ?room=");
  }
  if (!ID_PATTERN.test(room) || room === "." || room === "..") {
    throw problem(400, "Bad request", "room must match [A-Za-z0-9._-]{1,64}");
  }
  checkRoom(cl, room);
  try {
    const ice = await iceServersForPeer(c, roomStub(c, room), cl.sub, cl.exp);
    return c.json(ice, 200, { "Cache-Control": "no-store" });
  } catch (e) {
    if (e instanceof IceServersUnavailable)
      throw problem(503, "TURN unavailable", e.message, { retryAfter: 5 });
    throw e;
  }
});
