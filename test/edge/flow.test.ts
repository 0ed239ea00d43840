import { describe, expect, it } from "vitest";
import { CAND, call, frag, freshRoom, join, poll, sdp, text, token } from "./helpers.ts";

describe("offer/answer through the room", () => {
  it("joins, offers, answers in time (201), trickles, restarts, hangs up", async () => {
    const room = freshRoom();
    const ta = await token("a", room);
    const tb = await token("b", room);
    const ja = await join(room, ta, { kind: "rover" });
    expect(ja.res.status).toBe(201);
    expect(ja.res.headers.get("Location")).toBe(`/v1/rooms/${room}/peers/a`);
    const jb = await join(room, tb, { kind: "rover", position: { x: 1, y: 2 } });
    expect(jb.body.peers.map((p) => p.id)).toEqual(["a"]);

    // a sees b join
    const ea = await poll(room, "a", ta, ja.body.cursor);
    expect(ea.events.map((e) => e.type)).toEqual(["peer-joined"]);

    // a offers; b answers while the offer is parked
    const offerP = call("POST", `/v1/rooms/${room}/peers/b/sessions`, {
      token: ta,
      headers: { "Content-Type": "application/sdp", Prefer: "wait=10" },
      body: sdp("ufragA1"),
    });
    const eb = await poll(room, "b", tb, jb.body.cursor, 10);
    const offer = eb.events.find((e) => e.type === "offer");
    expect(offer).toBeDefined();
    const sid = offer?.session as string;
    const ans = await call("POST", `/v1/rooms/${room}/sessions/${sid}/answer`, {
      token: tb,
      headers: { "Content-Type": "application/sdp", "If-Match": offer?.etag as string },
      body: sdp("ufragB1"),
    });
    expect(ans.status).toBe(204);
    const res = await offerP;
    expect(res.status).toBe(201);
    expect(res.headers.get("Content-Type")).toBe("application/sdp");
    expect(await text(res)).toContain("a=ice-ufrag:ufragB1");
    expect(res.headers.get("Location")).toBe(`http://edge.test/v1/rooms/${room}/sessions/${sid}`);
    const etag = res.headers.get("ETag") as string;
    expect(etag).toBe(offer?.etag);

    // trickle: 204, b gets candidates
    const tr = await call("PATCH", `/v1/rooms/${room}/sessions/${sid}`, {
      token: ta,
      headers: { "Content-Type": "application/trickle-ice-sdpfrag", "If-Match": etag },
      body: frag("ufragA1", { candidates: [CAND] }),
    });
    expect(tr.status).toBe(204);
    const eb2 = await poll(room, "b", tb, eb.cursor);
    expect(eb2.events.map((e) => e.type)).toEqual(["candidates"]);

    // ICE restart by PATCH with a new ufrag/pwd: b gets `restart`, answers with a frag
    const rp = call("PATCH", `/v1/rooms/${room}/sessions/${sid}`, {
      token: ta,
      headers: { "Content-Type": "application/trickle-ice-sdpfrag", "If-Match": "*" },
      body: frag("ufragA2", { pwd: "newpwdnewpwdnewpwdnewp", candidates: [CAND] }),
    });
    const eb3 = await poll(room, "b", tb, eb2.cursor, 10);
    const restart = eb3.events.find((e) => e.type === "restart");
    expect(restart?.frag).toContain("ufragA2");
    const ra = await call("POST", `/v1/rooms/${room}/sessions/${sid}/answer`, {
      token: tb,
      headers: {
        "Content-Type": "application/trickle-ice-sdpfrag",
        "If-Match": restart?.etag as string,
      },
      body: frag("ufragB2", { pwd: "bnewpwdbnewpwdbnewpwdb" }),
    });
    expect(ra.status).toBe(204);
    const rr = await rp;
    expect(rr.status).toBe(200);
    expect(rr.headers.get("Content-Type")).toBe("application/trickle-ice-sdpfrag");
    expect(await text(rr)).toContain("ufragB2");
    const etag2 = rr.headers.get("ETag") as string;
    expect(etag2).not.toBe(etag);

    // the old ETag is stale now
    const stale = await call("PATCH", `/v1/rooms/${room}/sessions/${sid}`, {
      token: ta,
      headers: { "Content-Type": "application/trickle-ice-sdpfrag", "If-Match": etag },
      body: frag("ufragA2", { candidates: [CAND] }),
    });
    expect(stale.status).toBe(412);
    expect(stale.headers.get("Content-Type")).toBe("application/problem+json");

    // hang up
    const del = await call("DELETE", `/v1/rooms/${room}/sessions/${sid}`, { token: tb });
    expect(del.status).toBe(200);
    const ea2 = await poll(room, "a", ta, ea.cursor);
    expect(ea2.events.at(-1)).toMatchObject({ type: "session-closed", session: sid, by: "b" });
    expect((await call("GET", `/v1/rooms/${room}/sessions/${sid}`, { token: ta })).status).toBe(
      404,
    );
  });
});
