/**
 * Certificate-bound tokens (RFC 7800 `cnf`, docs/protocol.md): a token bound to a DTLS
 * certificate may only send descriptions carrying that certificate's fingerprint, as offer,
 * restart or answer. Unbound tokens are unaffected.
 */
import { sign } from "hono/jwt";
import { describe, expect, it } from "vitest";
import { mintToken } from "../../shared/token.ts";
import { call, freshRoom, join, poll, problemOf, SECRET, sdp } from "./helpers.ts";

const SDP = { "Content-Type": "application/sdp" };
/** The fingerprint in helpers' sdp(). */
const OURS =
  "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
const OTHER = `${"11:".repeat(31)}11`;
const withFp = (text: string, fp: string) => text.replace(OURS, fp);

async function bound(sub: string, room: string, cnf?: string) {
  return mintToken({ secret: SECRET, sub, room, ttlSeconds: 600, ...(cnf ? { cnf } : {}) });
}

async function setup(cnfA?: string, cnfB?: string) {
  const room = freshRoom("cnf");
  const ta = await bound("a", room, cnfA);
  const tb = await bound("b", room, cnfB);
  await join(room, ta);
  const jb = await join(room, tb);
  return { room, ta, tb, cb: jb.body.cursor };
}

const offer = (room: string, tok: string, body: string) =>
  call("POST", `/v1/rooms/${room}/peers/b/sessions`, {
    token: tok,
    headers: { ...SDP, Prefer: "wait=1" },
    body,
  });

describe("certificate-bound tokens (cnf)", () => {
  it("a bound token offers with its own certificate", async () => {
    const p = await setup(OURS);
    const res = await offer(p.room, p.ta, sdp("ufragA1"));
    expect(res.status).toBe(202);
    await res.arrayBuffer();
  });

  it("a bound token offering another certificate is 403, and nothing reaches the target", async () => {
    const p = await setup(OURS);
    const res = await offer(p.room, p.ta, withFp(sdp("ufragA1"), OTHER));
    const prob = await problemOf(res, 403);
    expect(prob.detail).toBe(
      `this token is bound to another certificate (cnf): fingerprint sha-256 ${OTHER} is not the pinned one`,
    );
    const eb = await poll(p.room, "b", p.tb, p.cb);
    expect(eb.events.filter((e) => e.type === "offer")).toEqual([]);
  });

  it("its own certificate beside another is 403 too (werift and browsers accept any match)", async () => {
    const p = await setup(OURS);
    const both = sdp("ufragA1").replace(
      "a=setup:actpass",
      `a=fingerprint:sha-256 ${OTHER}\r\na=setup:actpass`,
    );
    await problemOf(await offer(p.room, p.ta, both), 403);
  });

  it("a bound answerer answering with another certificate is 403; with its own, 204", async () => {
    const p = await setup(undefined, OURS);
    const pending = offer(p.room, p.ta, withFp(sdp("ufragA1"), OTHER)); // a is not bound
    const eb = await poll(p.room, "b", p.tb, p.cb, 5);
    const ev = eb.events.find((e) => e.type === "offer") as unknown as {
      session: string;
      etag: string;
    };
    const answer = (body: string) =>
      call("POST", `/v1/rooms/${p.room}/sessions/${ev.session}/answer`, {
        token: p.tb,
        headers: { ...SDP, "If-Match": ev.etag },
        body,
      });
    await problemOf(await answer(withFp(sdp("ufragB1"), OTHER)), 403);
    expect((await answer(sdp("ufragB1"))).status).toBe(204);
    await (await pending).arrayBuffer();
  });

  it("a cnf the edge cannot check makes the token invalid (401)", async () => {
    const room = freshRoom("cnf");
    const now = Math.floor(Date.now() / 1000);
    for (const cnf of [{ jwk: { kty: "EC" } }, { "x5t#S256": "short" }]) {
      const tok = await sign(
        { sub: "a", room, role: "peer", iat: now, exp: now + 600, cnf },
        SECRET,
        "HS256",
      );
      const res = await call("POST", `/v1/rooms/${room}/peers`, { token: tok, json: {} });
      const prob = await problemOf(res, 401);
      expect(prob.detail).toMatch(/cnf/);
    }
  });
});
