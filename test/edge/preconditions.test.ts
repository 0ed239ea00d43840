/**
 * What a request on a session must carry, checked as RFC 9110 and the contract read it: If-Match
 * compared strongly over its whole list, `*` refused where it cannot say which offer an answer is
 * for, a non-party told 403 whatever else is wrong with its request, ICE credentials held to one
 * grammar on every route, and an empty sdpfrag relaying nothing.
 */
import { describe, expect, it } from "vitest";
import { ifMatchHits, parseIfMatch } from "../../worker/if-match.ts";
import {
  call,
  drain,
  frag,
  heldOffer,
  offerUnanswered,
  pair,
  problemOf,
  sdp,
  session,
  token,
} from "./helpers.ts";

const SDP = { "Content-Type": "application/sdp" };
const FRAG = { "Content-Type": "application/trickle-ice-sdpfrag" };

describe("If-Match (worker/if-match.ts)", () => {
  it("parses `*`, lists and weak tags as RFC 9110 §13.1.1 does", () => {
    expect(parseIfMatch(undefined)).toBeNull();
    expect(parseIfMatch("  ")).toBeNull();
    expect(parseIfMatch("*")).toBe("*");
    expect(parseIfMatch('"*"')).toBe("*");
    expect(parseIfMatch('"a1"')).toEqual(["a1"]);
    expect(parseIfMatch('"x", "a1" ,"b2"')).toEqual(["x", "a1", "b2"]);
    // A weak tag never matches in a strong comparison: left out.
    expect(parseIfMatch('W/"a1"')).toEqual([]);
    expect(parseIfMatch('W/"a1", "b2"')).toEqual(["b2"]);
    expect(parseIfMatch("a1")).toEqual(["a1"]);
    expect(ifMatchHits(["x", "a1"], "a1")).toBe(true);
    expect(ifMatchHits(["x"], "a1", undefined)).toBe(false);
    expect(ifMatchHits("*", undefined)).toBe(false);
    expect(ifMatchHits("*", "a1")).toBe(true);
  });
});

describe("preconditions on a session", () => {
  it("an answer must name its offer: `*` and a weak tag get 412, a list holding the tag is taken", async () => {
    const p = await pair("pre-answer");
    const { offered, ev } = await heldOffer(p);
    const answer = (ifMatch: string) =>
      call("POST", `/v1/rooms/${p.room}/sessions/${ev.session}/answer`, {
        token: p.tb,
        headers: { ...SDP, "If-Match": ifMatch },
        body: sdp("ufragB1"),
      });
    const star = await problemOf(await answer("*"), 412);
    expect(star.detail).toContain("etag");
    await problemOf(await answer('"*"'), 412);
    await problemOf(await answer(`W/${ev.etag}`), 412);
    const wrong = await problemOf(await answer('"nope"'), 412);
    expect(wrong.detail).toContain("not the etag of the pending offer");
    // None of those was taken: the offer is still pending, and a list with its tag answers it.
    expect((await answer(`"other", ${ev.etag}`)).status).toBe(204);
    expect((await offered).status).toBe(201);
  });

  it("trickle and re-POST compare the whole If-Match list, strongly", async () => {
    const p = await pair("pre-trickle");
    const s = await session(p);
    const patch = (ifMatch: string) =>
      call("PATCH", `/v1/rooms/${p.room}/sessions/${s.sid}`, {
        token: p.ta,
        headers: { ...FRAG, "If-Match": ifMatch },
        body: frag("ufragA1", { candidates: ["candidate:1 1 udp 1 127.0.0.1 5000 typ host"] }),
      });
    await problemOf(await patch(`W/${s.etag}`), 412);
    expect((await patch(`"stale", ${s.etag}`)).status).toBe(204);
    const restart = await call("POST", `/v1/rooms/${p.room}/sessions/${s.sid}`, {
      token: p.ta,
      headers: { ...SDP, "If-Match": `W/${s.etag}`, Prefer: "wait=0" },
      body: sdp("ufragA2"),
    });
    await problemOf(restart, 412);
  });

  it("a peer that is not a party gets 403 (no session: 404), not 415 or 428, and learns nothing more", async () => {
    const p = await pair("pre-party");
    const s = await session(p);
    const tc = await token("c", p.room);
    const base = `/v1/rooms/${p.room}/sessions`;
    // Wrong media type on the answer route.
    const mt = await call("POST", `${base}/${s.sid}/answer`, {
      token: tc,
      headers: { "Content-Type": "text/plain", "If-Match": s.etag },
      body: "hello",
    });
    await problemOf(mt, 403);
    // No If-Match on a trickle, and on a re-POST.
    const noTag = await call("PATCH", `${base}/${s.sid}`, {
      token: tc,
      headers: FRAG,
      body: frag("ufragC1", { candidates: [] }),
    });
    await problemOf(noTag, 403);
    const noTagPost = await call("POST", `${base}/${s.sid}`, {
      token: tc,
      headers: SDP,
      body: sdp("ufragC1"),
    });
    await problemOf(noTagPost, 403);
    // Wrong media type on a PATCH.
    const mtPatch = await call("PATCH", `${base}/${s.sid}`, {
      token: tc,
      headers: { "Content-Type": "text/plain", "If-Match": s.etag },
      body: "x",
    });
    await problemOf(mtPatch, 403);
    // No such session: 404, whatever else is missing.
    const none = await call("PATCH", `${base}/nosuch`, {
      token: tc,
      headers: FRAG,
      body: frag("ufragC1", { candidates: [] }),
    });
    await problemOf(none, 404);
    // The parties themselves still get the precise status.
    await problemOf(
      await call("PATCH", `${base}/${s.sid}`, {
        token: p.ta,
        headers: FRAG,
        body: frag("ufragA1", { candidates: [] }),
      }),
      428,
    );
    await problemOf(
      await call("POST", `${base}/${s.sid}/answer`, {
        token: p.tb,
        headers: { "Content-Type": "text/plain", "If-Match": s.etag },
        body: "x",
      }),
      415,
    );
  });

  it("an offer's ICE credentials follow the grammar its later PATCHes must (RFC 8839: ufrag 4..256, pwd 22..256)", async () => {
    const p = await pair("pre-grammar");
    const offer = (body: string) =>
      call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
        token: p.ta,
        headers: { ...SDP, Prefer: "wait=0" },
        body,
      });
    const short = await problemOf(await offer(sdp("uA1")), 400);
    expect(short.detail).toContain("ice-ufrag must be 4..256 characters, got 3");
    const pwd = await problemOf(await offer(sdp("ufragA1", "tooshort")), 400);
    expect(pwd.detail).toContain("ice-pwd must be 22..256 characters");
    const chars = await problemOf(await offer(sdp("uf-rag")), 400);
    expect(chars.detail).toContain("may only contain");
    // The same 4-character ufrag is fine on both routes.
    const s = await offerUnanswered(p.room, p.ta, "b", "uA12");
    const trickled = await call("PATCH", `/v1/rooms/${p.room}/sessions/${s.sid}`, {
      token: p.ta,
      headers: { ...FRAG, "If-Match": s.etag },
      body: frag("uA12", { candidates: ["candidate:1 1 udp 1 127.0.0.1 5000 typ host"] }),
    });
    expect(trickled.status).toBe(204);
  });

  it("an empty sdpfrag is accepted and relays nothing", async () => {
    const p = await pair("pre-empty");
    const s = await session(p);
    const empty = await call("PATCH", `/v1/rooms/${p.room}/sessions/${s.sid}`, {
      token: p.ta,
      headers: { ...FRAG, "If-Match": s.etag },
      body: "",
    });
    expect(empty.status).toBe(204);
    // A stale tag is still refused: empty or not, the precondition holds.
    const stale = await call("PATCH", `/v1/rooms/${p.room}/sessions/${s.sid}`, {
      token: p.ta,
      headers: { ...FRAG, "If-Match": '"stale"' },
      body: "",
    });
    await problemOf(stale, 412);
    // A real trickle after it: b's log holds that one candidates event and no empty one.
    const real = await call("PATCH", `/v1/rooms/${p.room}/sessions/${s.sid}`, {
      token: p.ta,
      headers: { ...FRAG, "If-Match": s.etag },
      body: frag("ufragA1", { candidates: ["candidate:1 1 udp 1 127.0.0.1 5000 typ host"] }),
    });
    expect(real.status).toBe(204);
    const { events } = await drain(p.room, "b", p.tb, s.cb);
    const candidates = events.filter((e) => e.type === "candidates") as unknown as {
      frag: string;
    }[];
    expect(candidates).toHaveLength(1);
    expect(candidates[0]?.frag).toContain("candidate:1 1 udp");
  });
});
