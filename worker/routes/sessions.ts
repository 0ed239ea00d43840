/**
 * Sessions, WHIP style: POST an offer to a peer, re-POST (full SDP) or PATCH (sdpfrag with a new
 * ufrag/pwd) to restart ICE, PATCH to trickle, POST .../answer to answer, GET, DELETE.
 * The answer comes from the other peer, so the Worker parks the offerer's request (waits.ts).
 */
import { Hono } from "hono";
import { iceServerLinks } from "../../shared/link-header.ts";
import { CONTENT_TYPE, LIMITS, paths } from "../../shared/protocol.ts";
import {
  fragPwd,
  fragUfrag,
  parseSdpFrag,
  type SdpFrag,
  SdpFragError,
} from "../../shared/sdpfrag.ts";
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
import { type CachedIce, iceServersFromCache } from "../ice-cache.ts";
import { sdpLimit } from "../limits.ts";
import { EdgeProblem, problem } from "../problem.ts";
import { splitRestartAnswer } from "../restart-answer.ts";
import { type Described, sessionTopic, type WaitState } from "../room/room.ts";
import { checkSdp } from "../sdp.ts";
import { awaitAnswer } from "../waits.ts";
import { watch } from "../watch.ts";

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

/**
 * A body that does not parse is a 400, but only for a party to the session: 404 (unknown
 * session) and 403 (not a party) come first, as they would before the body were read. The room
 * is asked only on this error path; on the happy path the room's own call checks the party.
 */
async function badBody(c: Ctx, r: string, sid: string | null, by: string, err: EdgeProblem) {
  if (sid !== null) {
    const denied = await roomStub(c, r).checkParty(sid, by);
    if (denied) return new EdgeProblem(denied);
  }
  return err;
}

/**
 * A check of the request itself (media type, If-Match) on a session: when it fails, a caller that
 * is not a party gets 403 (or 404 for no session) instead, as for a bad body.
 */
async function sessionCheck<T>(
  c: Ctx,
  r: string,
  sid: string | null,
  by: string,
  check: () => T,
): Promise<T> {
  try {
    return check();
  } catch (e) {
    if (e instanceof EdgeProblem) throw await badBody(c, r, sid, by, e);
    throw e;
  }
}

/** The SDP of an offer or answer, with its ufrag (parsed once, here). */
async function readSdp(c: Ctx, r: string, sid: string | null, by: string): Promise<Described> {
  await sessionCheck(c, r, sid, by, () => requireMediaType(c, CONTENT_TYPE.sdp));
  const sdp = await bodyText(c);
  const checked = checkSdp(sdp);
  if (!checked.ok) throw await badBody(c, r, sid, by, problem(400, "Bad SDP", checked.problem));
  const unbound = cnfProblem(claims(c), sdp);
  if (unbound) throw problem(403, "Forbidden", unbound);
  return { body: sdp, ufrag: checked.ufrag };
}

interface ReadFrag extends Described {
  frag: SdpFrag;
  hasPwd: boolean;
}

async function readFrag(c: Ctx, r: string, sid: string, by: string): Promise<ReadFrag> {
  await sessionCheck(c, r, sid, by, () => requireMediaType(c, CONTENT_TYPE.sdpfrag));
  const text = await bodyText(c);
  try {
    const frag = parseSdpFrag(text);
    return {
      body: text,
      frag,
      ufrag: fragUfrag(frag) ?? null,
      hasPwd: fragPwd(frag) !== undefined,
    };
  } catch (e) {
    const why = e instanceof SdpFragError ? e.message : "sdpfrag does not parse";
    throw await badBody(c, r, sid, by, problem(400, "Bad sdpfrag", why));
  }
}

/**
 * Who acts on a session: the token's subject; an admin stands in for a party (for an answer, the
 * one the pending offer awaits).
 */
async function actor(c: Ctx, r: string, sid: string, answering = false): Promise<string> {
  const cl = claims(c);
  if (cl.role !== "admin") return cl.sub;
  return (await roomStub(c, r).partyFor(sid, answering)) ?? cl.sub;
}

/**
 * ICE servers for the response's Link headers, from the cache the room's own call returned.
 * Fresh TURN credentials (maybe a Cloudflare API call) are minted while the answer is awaited,
 * never before the offer reaches the room.
 */
function iceLinks(c: Ctx, r: string, cached: CachedIce | null): Promise<string[]> {
  const cl = claims(c);
  return iceServersFromCache(c, roomStub(c, r), cl.sub, cl.exp, cached).then(
    (ice) => iceServerLinks(ice.iceServers),
    (e: unknown) => {
      // TURN trouble must not fail the offer: the client can fetch /v1/ice-servers later.
      console.warn("ice servers for Link headers:", e instanceof Error ? e.message : String(e));
      return [];
    },
  );
}

/** The answer in time (`ok`), or the 202 "later" response, or an error. */
async function answerOrLater(
  c: Ctx,
  r: string,
  sid: string,
  etag: string,
  st: WaitState,
  wait: { waitS: number; applied: boolean },
  links: Promise<string[]>,
  answerType: string,
  okStatus: 200 | 201,
): Promise<Response> {
  const location = absolute(c, paths.session(r, sid));
  const headers = new Headers({
    Location: location,
    ETag: `"${etag}"`,
    "Accept-Patch": CONTENT_TYPE.sdpfrag,
    "Cache-Control": "no-store",
  });
  for (const link of await links) headers.append("Link", link);
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
        "the session was closed before it was answered (a party closed it or left the room)",
      );
    case "superseded":
      throw problem(
        409,
        "Offer superseded",
        "a newer offer replaced this one before it was answered",
      );
  }
}

/** A session id, chosen here so that the Worker can watch the session while it is created. */
function newSessionId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...b))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");
}

/** POST /v1/rooms/:room/peers/:target/sessions — mounted under the peers routes. */
export const offerRoutes = new Hono<AppEnv>();

offerRoutes.post("/:target/sessions", sdpLimit, async (c) => {
  const r = room(c);
  const target = idParam(c, "target");
  const from = claims(c).sub;
  if (target === from) throw problem(400, "Bad request", "a peer cannot offer to itself");
  const offer = await readSdp(c, r, null, from);
  const wait = offerWaitS(c);
  const stub = roomStub(c, r);
  // The offer and the watch on its session at once: one round trip to the room, not two.
  const sid = newSessionId();
  const [made, w] = await Promise.all([
    stub.offer(from, target, offer, wait.waitS * 1000, sid),
    watch(stub, sessionTopic(sid)),
  ]);
  if (!made.ok) w.close();
  const { session, etag, ice } = unwrap(made);
  const links = iceLinks(c, r, ice);
  const st = await awaitAnswer(stub, session, etag, wait.waitS * 1000, c.req.raw.signal, w);
  return answerOrLater(c, r, session, etag, st, wait, links, CONTENT_TYPE.sdp, 201);
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
  const by = await actor(c, r, sid);
  const offer = await readSdp(c, r, sid, by);
  const match = await sessionCheck(c, r, sid, by, () => requireIfMatch(c));
  const wait = offerWaitS(c);
  const { etag, ice } = unwrap(
    await stub.restart(sid, by, "offer", offer, match, wait.waitS * 1000),
  );
  const links = iceLinks(c, r, ice);
  const st = await awaitAnswer(stub, sid, etag, wait.waitS * 1000, c.req.raw.signal);
  return answerOrLater(c, r, sid, etag, st, wait, links, CONTENT_TYPE.sdp, 200);
});

// Trickle (sender's current ufrag) or ICE restart (a new ufrag/pwd), RFC 8840 / RFC 9725 §4.3:
// the room tells which, in the same call that carries it out.
sessionRoutes.patch("/:sid", sdpLimit, async (c) => {
  const r = room(c);
  const sid = idParam(c, "sid");
  const stub = roomStub(c, r);
  const by = await actor(c, r, sid);
  const frag = await readFrag(c, r, sid, by);
  const match = await sessionCheck(c, r, sid, by, () => requireIfMatch(c));
  const wait = offerWaitS(c);
  const { body, ufrag, hasPwd } = frag;
  const done = unwrap(
    await stub.patchSession(sid, by, { body, ufrag, hasPwd }, match, wait.waitS * 1000),
  );
  if (!done.restart) return c.body(null, 204);
  const links = iceLinks(c, r, done.ice);
  const st = await awaitAnswer(stub, sid, done.etag, wait.waitS * 1000, c.req.raw.signal);
  return answerOrLater(c, r, sid, done.etag, st, wait, links, CONTENT_TYPE.sdpfrag, 200);
});

sessionRoutes.post("/:sid/answer", sdpLimit, async (c) => {
  const r = room(c);
  const sid = idParam(c, "sid");
  const by = await actor(c, r, sid, true);
  const type = await sessionCheck(c, r, sid, by, () =>
    requireMediaType(c, CONTENT_TYPE.sdp, CONTENT_TYPE.sdpfrag),
  );
  if (type === CONTENT_TYPE.sdp) {
    const answer = await readSdp(c, r, sid, by);
    unwrap(await roomStub(c, r).answer(sid, by, "offer", answer, ifMatch(c)));
  } else {
    const f = await readFrag(c, r, sid, by);
    const split = splitRestartAnswer(f.frag, f.body);
    const answer = { body: f.body, ufrag: f.ufrag };
    unwrap(await roomStub(c, r).answer(sid, by, "restart", answer, ifMatch(c), split));
  }
  return c.body(null, 204);
});

sessionRoutes.delete("/:sid", async (c) => {
  const r = room(c);
  const sid = idParam(c, "sid");
  unwrap(await roomStub(c, r).closeSessionBy(sid, await actor(c, r, sid)));
  return c.json({ session: sid, state: "closed" }, 200);
});
