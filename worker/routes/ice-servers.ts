/** GET /v1/ice-servers: the STUN/TURN servers this peer may use, with short-lived credentials. */
import { Hono } from "hono";
import { type AppEnv, claims } from "../context.ts";
import { IceServersUnavailable, iceServersFor } from "../ice-servers.ts";
import { problem } from "../problem.ts";

export const iceServersRoutes = new Hono<AppEnv>();

iceServersRoutes.get("/", async (c) => {
  try {
    return c.json(await iceServersFor(c.env, claims(c).sub), 200, { "Cache-Control": "no-store" });
  } catch (e) {
    if (e instanceof IceServersUnavailable)
      throw problem(503, "TURN unavailable", e.message, { retryAfter: 5 });
    throw e;
  }
});
