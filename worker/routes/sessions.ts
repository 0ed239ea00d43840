/**
 * Sessions, WHIP style: POST an offer to a peer, re-POST (full SDP) or PATCH (sdpfrag with a new
 * ufrag/pwd) to restart ICE, PATCH to trickle, POST .../answer to answer, GET, DELETE.
 * The answer comes from the other peer, so the Worker parks the offerer's request (waits.ts).
 */
import { Hono } from "hono";
import { iceServerLinks } from "../../shared/link-header.ts";
import { CONTENT_TYPE, LIMITS, paths } from "../../shared/protocol.ts";
import { fragPwd, fragUfrag, parseSdpFrag, SdpFragError } from "../../shared/sdpfrag.ts";
import { checkRoom } from "../auth.ts";
import { cnfProblem } from "../cnf.ts";
import {
  type AppEnv,
  absolute,
  bodyText,
  type Ctx,
  claims,
  idParam,
  ifMatch,
  requireIfMatch,
  requireMediaType,
  roomStub,
  unwrap,
} from "../context.ts";
import { numVar } from "../env.ts";
import { iceServersForPeer } from "../ice-cache.ts";
import { sdpLimit } from "../limits.ts";
import { problem } from "../problem.ts";
import type { WaitState } from "../room/room.ts";
import { sdpProblem } from "../sdp.ts";
import { awaitAnswer } from "../waits.ts";

function room(c: Ctx): string {
  const r = idParam(c, "room");
  checkRoom(claims(c), r);
  return r;
}

/** `Prefer: wait=N`, clamped to 1..25 s; the deployment's OFFER_WAIT_S otherwise. */
function offerWaitS(c: Ctx): { waitS: number; applied: boolean } {
  const m = /(?:^|[,;\s])wait=(\d+)/i.exec(c.req.header("Prefer") ?? "");
  if (!m?.[1]) return { waitS: numVar(c.env.OFFER_WAIT_S, 10), applied: false };
  const n = Math.min(LIMITS.offerWaitMaxS, Math.max(LIMITS.offerWaitMinS, Number(m[1])));
  return { waitS: n, applied: true };
}

async function readSdp(c: Ctx): Promise<string> {
  requireMediaType(c, CONTENT_TYPE.sdp);
  const sdp = await bodyText(c);
  const why = sdpProblem(sdp);
  if (why) throw problem(400, "Bad SDP", why);
  const unbound = cnfProblem(claims(c), sdp);
  if (unbound) throw problem(403, "Forbidden", unbound);
  return sdp;
}

async function readFrag(c: Ctx): Promise<{ text: string; ufrag?: string; pwd?: string }> {
  requireMediaType(c, CONTENT_TYPE.sdpfrag);
  const text = await bodyText(c);
  try {
    const frag = parseSdpFrag(text);
    return { text, ufrag: fragUfrag(frag), pwd: fragPwd(frag) };
  } catch (e) {
    throw problem(
      400,
      "Bad sdpfrag",
      e instanceof SdpFragError ? e.message : "sdpfrag does not parse",
    );
  }
}

/** Who acts on a session: the token's subject; an admin stands in for a party. */
async function actor(c: Ctx, r: string, sid: string): Promise<string> {
  const cl = claims(c);
  if (cl.role !== "admin") return cl.sub;
  return (await roomStub(c, r).partyFor(sid)) ?? cl.sub;
}

/** The acting party, checked (404 unknown session, 403 not a party) before the body is read. */
async function party(c: Ctx, r: string, sid: string): Promise<string> {
  const by = await actor(c, r, sid);
  unwrap(await roomStub(c, r).ufragOf(sid, by));
  return by;
}

/** The answer in time (`ok`), or the 202 "later" response, or an error. */
async function answerOrLater(
  c: Ctx,
  r: string,
  sid: string,
  etag: string,
  st: WaitState,
  wait: { waitS: number; applied: boolean },
  answerType: string,
  okStatus: 200 | 201,
): Promise<Response> {
  const location = absolute(c, paths.session(r, sid));
  const cl = claims(c);
  const ice = await iceServersForPeer(c, roomStub(c, r), cl.sub, cl.exp).catch(() => ({
    iceServers: [],
    ttl: 0,
  }));
  const headers = new Headers({
    Location: location,
    ETag: `"${etag}"`,
    "Accept-Patch": CONTENT_TYPE.sdpfrag,
    "Cache-Control": "no-store",
  });
  for (const link of iceServerLinks(ice.iceServers)) headers.append("Link", link);
  if (wait.applied) headers.set("Preference-Applied", `wait=${wait.waitS}`);
  switch (st.state) {
    case "answered":
      headers.set("Content-Type", answerType);
      return new Response(st.answer, { status: okStatus, headers });
    case "pending":
      headers.set("Retry-After", "2");
      headers.set("Content-Type", CONTENT_TYPE.json);
      return new Response(JSON.stringify({ session: sid, state: "offered" }), {
        status: 202,
        headers,
      });
    case "closed":
      throw problem(
        409,
        "Session closed",
        "the other party closed the session or left before answering",
      );
    case "superseded":
      throw problem(
        409,
        "Offer superseded",
        "a newer offer replaced this one before it was answered",
      );
  }
}

/** POST /v1/rooms/:room/peers/:target/sessions — mounted under the peers routes. */
export const offerRoutes = new Hono<AppEnv>();

offerRoutes.post("/:target/sessions", sdpLimit, async (c) => {
  const r = room(c);
  const target = idParam(c, "target");
  const from = claims(c).sub;
  if (target === from) throw problem(400, "Bad request", "a peer cannot offer to itself");
  const sdp = await readSdp(c);
  const wait = offerWaitS(c);
  const stub = roomStub(c, r);
  const { session, etag } = unwrap(await stub.offer(from, target, sdp, wait.waitS * 1000));
  const st = await awaitAnswer(stub, session, etag, wait.waitS * 1000, c.req.raw.signal);
  return answerOrLater(c, r, session, etag, st, wait, CONTENT_TYPE.sdp, 201);
});

/** /v1/rooms/:room/sessions/:sid[/answer] */
export const sessionRoutes = new Hono<AppEnv>();

sessionRoutes.get("/:sid", async (c) => {
  const r = room(c);
  const sid = idParam(c, "sid");
  const { info } = unwrap(await roomStub(c, r).getSession(sid, await actor(c, r, sid)));
  return c.json(info, 200, { ETag: info.etag, "Cache-Control": "no-store" });
});

// Re-POST: an ICE-restart offer (full SDP).
sessionRoutes.post("/:sid", sdpLimit, async (c) => {
  const r = room(c);
  const sid = idParam(c, "sid");
  const stub = roomStub(c, r);
  const by = await party(c, r, sid);
  const sdp = await readSdp(c);
  const match = requireIfMatch(c);
  const wait = offerWaitS(c);
  const { etag } = unwrap(await stub.restart(sid, by, "offer", sdp, match, wait.waitS * 1000));
  const st = await awaitAnswer(stub, sid, etag, wait.waitS * 1000, c.req.raw.signal);
  return answerOrLater(c, r, sid, etag, st, wait, CONTENT_TYPE.sdp, 200);
});

// Trickle (sender's current ufrag) or ICE restart (a new ufrag/pwd), RFC 8840 / RFC 9725 §4.3.
sessionRoutes.patch("/:sid", sdpLimit, async (c) => {
  const r = room(c);
  const sid = idParam(c, "sid");
  const stub = roomStub(c, r);
  const by = await party(c, r, sid);
  const frag = await readFrag(c);
  const match = requireIfMatch(c);
  const known = unwrap(await stub.ufragOf(sid, by));
  // Before its description reached the edge (an answerer trickles while it answers), a party's
  // ufrag is unknown: its candidates are a trickle, kept in order for the other party.
  const isRestart =
    frag.ufrag !== undefined &&
    known.ufrag !== null &&
    frag.ufrag !== known.ufrag &&
    frag.ufrag !== known.pendingUfrag;
  if (!isRestart) {
    if (match === "*") {
      throw problem(
        412,
        "Precondition failed",
        "trickle needs If-Match with the session's current ETag",
      );
    }
    unwrap(await stub.trickle(sid, by, frag.text, match));
    return c.body(null, 204);
  }
  if (frag.pwd === undefined)
    throw problem(400, "Bad sdpfrag", "an ICE restart needs a=ice-pwd with the new a=ice-ufrag");
  const wait = offerWaitS(c);
  const { etag } = unwrap(
    await stub.restart(sid, by, "restart", frag.text, match, wait.waitS * 1000),
  );
  const st = await awaitAnswer(stub, sid, etag, wait.waitS * 1000, c.req.raw.signal);
  return answerOrLater(c, r, sid, etag, st, wait, CONTENT_TYPE.sdpfrag, 200);
});

sessionRoutes.post("/:sid/answer", sdpLimit, async (c) => {
  const r = room(c);
  const sid = idParam(c, "sid");
  const by = await party(c, r, sid);
  const type = requireMediaType(c, CONTENT_TYPE.sdp, CONTENT_TYPE.sdpfrag);
  const body = type === CONTENT_TYPE.sdp ? await readSdp(c) : (await readFrag(c)).text;
  const kind = type === CONTENT_TYPE.sdp ? "offer" : "restart";
  unwrap(await roomStub(c, r).answer(sid, by, kind, body, ifMatch(c)));
  return c.body(null, 204);
});

sessionRoutes.delete("/:sid", async (c) => {
  const r = room(c);
  const sid = idParam(c, "sid");
  unwrap(await roomStub(c, r).closeSessionBy(sid, await actor(c, r, sid)));
  return c.json({ session: sid, state: "closed" }, 200);
});
