import { describe, expect, it } from "vitest";
import { call, join, pair, problemOf, sdp, session, token } from "./helpers.ts";

async function unauthorized(res: Response) {
  await problemOf(res, 401);
  expect(res.headers.get("WWW-Authenticate")).toMatch(/^Bearer/);
}

describe("auth", () => {
  it("401: no token, malformed, bad signature, expired, not a Bearer", async () => {
    const p = await pair("auth");
    const path = `/v1/rooms/${p.room}/peers`;
    await unauthorized(await call("GET", path));
    await unauthorized(await call("GET", path, { token: "not.a.jwt" }));
    await unauthorized(
      await call("GET", path, {
        token: await token("a", p.room, { secret: "another-secret-another-secret" }),
      }),
    );
    await unauthorized(
      await call("GET", path, {
        token: await token("a", p.room, { nowS: Math.floor(Date.now() / 1000) - 7200, ttlS: 60 }),
      }),
    );
    await unauthorized(
      await call("GET", path, { headers: { Authorization: `Basic ${btoa("a:b")}` } }),
    );
    await unauthorized(await call("GET", "/v1/ice-servers"));
  });

  it("403: another room, acting as another peer, another pair's session; admins may act", async () => {
    const p = await pair("auth");
    const s = await session(p);
    const elsewhere = await token("a", "other-room");
    await problemOf(await call("GET", `/v1/rooms/${p.room}/peers`, { token: elsewhere }), 403);
    await problemOf(
      await call("POST", `/v1/rooms/${p.room}/peers`, { token: elsewhere, json: {} }),
      403,
    );
    // a acting as b
    await problemOf(
      await call("GET", `/v1/rooms/${p.room}/peers/b/events?wait=0`, { token: p.ta }),
      403,
    );
    await problemOf(
      await call("PATCH", `/v1/rooms/${p.room}/peers/b`, { token: p.ta, json: { kind: "x" } }),
      403,
    );
    await problemOf(await call("DELETE", `/v1/rooms/${p.room}/peers/b`, { token: p.ta }), 403);
    // c is in the room but not a party to a-b's session
    const tc = await token("c", p.room);
    await join(p.room, tc);
    const url = `/v1/rooms/${p.room}/sessions/${s.sid}`;
    await problemOf(await call("GET", url, { token: tc }), 403);
    await problemOf(await call("DELETE", url, { token: tc }), 403);
    await problemOf(
      await call("PATCH", url, {
        token: tc,
        headers: { "Content-Type": "application/trickle-ice-sdpfrag", "If-Match": s.etag },
        body: "a=ice-ufrag:zz\r\n",
      }),
      403,
    );
    await problemOf(
      await call("POST", `${url}/answer`, {
        token: tc,
        headers: { "Content-Type": "application/sdp", "If-Match": s.etag },
        body: sdp("cc"),
      }),
      403,
    );
    await problemOf(
      await call("POST", url, {
        token: tc,
        headers: { "Content-Type": "application/sdp", "If-Match": "*" },
        body: sdp("cc"),
      }),
      403,
    );
    // The session is intact after all that.
    expect((await call("GET", url, { token: p.tb })).status).toBe(200);
    // An admin token for every room may act as anyone.
    const admin = await token("ops", "*", { role: "admin" });
    expect((await call("GET", url, { token: admin })).status).toBe(200);
    expect((await call("DELETE", `/v1/rooms/${p.room}/peers/c`, { token: admin })).status).toBe(
      204,
    );
  });

  it("a token for every room (*) joins any room", async () => {
    const t = await token("roamer", "*");
    expect((await join("any-room-1", t)).res.status).toBe(201);
    expect((await join("any-room-2", t)).res.status).toBe(201);
  });
});
