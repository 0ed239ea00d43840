import { describe, expect, it } from "vitest";
import { call, hmac, join, pair, problemOf, SECRET, sdp, session, token } from "./helpers.ts";

const b64url = (b: Uint8Array | string) =>
  btoa(typeof b === "string" ? b : String.fromCharCode(...b))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");

/** A JWT signed with the right secret but hand-built header and claims. */
async function craft(header: object, claims: object, secret = SECRET): Promise<string> {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(await hmac("SHA-256", secret, input))}`;
}

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
    // Signed with the right secret, but claims or algorithm the edge must refuse.
    const exp = Math.floor(Date.now() / 1000) + 600;
    const hs = { alg: "HS256", typ: "JWT" };
    const good = await craft(hs, { sub: "a", room: p.room, exp });
    expect((await call("GET", path, { token: good })).status).toBe(200);
    for (const bad of [
      await craft(hs, { sub: "a", room: p.room }), // no exp
      await craft(hs, { room: p.room, exp }), // no sub
      await craft(hs, { sub: "a", exp }), // no room
      await craft(hs, { sub: "a b", room: p.room, exp }), // sub not an id
      await craft(hs, { sub: "a", room: p.room, exp, role: "root" }),
      await craft({ alg: "HS512", typ: "JWT" }, { sub: "a", room: p.room, exp }),
      `${b64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${b64url(JSON.stringify({ sub: "a", room: p.room, exp }))}.`,
    ]) {
      await unauthorized(await call("GET", path, { token: bad }));
    }
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
        body: sdp("ufcc"),
      }),
      403,
    );
    await problemOf(
      await call("POST", url, {
        token: tc,
        headers: { "Content-Type": "application/sdp", "If-Match": "*" },
        body: sdp("ufcc"),
      }),
      403,
    );
    // The session is intact after all that.
    expect((await call("GET", url, { token: p.tb })).status).toBe(200);
    // An admin token for every room may act as anyone.
    const admin = await token("ops", "*", { role: "admin" });
    expect((await call("GET", url, { token: admin })).status).toBe(200);
    expect(
      (await call("GET", `/v1/rooms/${p.room}/peers/b/events?wait=0`, { token: admin })).status,
    ).toBe(200);
    const moved = await call("PATCH", `/v1/rooms/${p.room}/peers/b`, {
      token: admin,
      json: { meta: { by: "ops" } },
    });
    expect(await moved.json()).toMatchObject({ id: "b", meta: { by: "ops" } });
    expect((await call("DELETE", `/v1/rooms/${p.room}/peers/c`, { token: admin })).status).toBe(
      204,
    );
    // An admin answers for the party the pending offer waits for (a's restart: b).
    const restart = await call("POST", url, {
      token: p.ta,
      headers: { "Content-Type": "application/sdp", "If-Match": "*", Prefer: "wait=1" },
      body: sdp("ufA9"),
    });
    expect(restart.status).toBe(202);
    const answered = await call("POST", `${url}/answer`, {
      token: admin,
      headers: {
        "Content-Type": "application/sdp",
        "If-Match": restart.headers.get("ETag") as string,
      },
      body: sdp("ufB9"),
    });
    expect(answered.status).toBe(204);
    const after = (await (await call("GET", url, { token: p.ta })).json()) as { answer: string };
    expect(after.answer).toContain("ufB9");
    expect((await call("DELETE", url, { token: admin })).status).toBe(200);
    await problemOf(await call("GET", url, { token: p.ta }), 404);
    // An admin token for one room is still bound to that room.
    const roomAdmin = await token("ops", "other-room", { role: "admin" });
    await problemOf(await call("GET", `/v1/rooms/${p.room}/peers`, { token: roomAdmin }), 403);
  });

  it("a token for every room (*) joins any room", async () => {
    const t = await token("roamer", "*");
    expect((await join("any-room-1", t)).res.status).toBe(201);
    expect((await join("any-room-2", t)).res.status).toBe(201);
  });

  it('RFC 6750: error="invalid_token" on a bad token, none without one; absurd exp refused', async () => {
    const room = "r-6750";
    const none = await call("GET", `/v1/rooms/${room}/peers`);
    expect(none.headers.get("WWW-Authenticate")).toBe('Bearer realm="roverlink"');
    const exp = 2 ** 53 - 1;
    const forever = await craft({ alg: "HS256", typ: "JWT" }, { sub: "a", room, exp });
    const r = await call("GET", `/v1/rooms/${room}/peers`, { token: forever });
    expect((await problemOf(r, 401)).detail).toMatch(/longer than 400 days/);
    expect(r.headers.get("WWW-Authenticate")).toBe(
      'Bearer realm="roverlink", error="invalid_token"',
    );
    // A clock 20 s fast (iat in the future) is tolerated.
    const now = Math.floor(Date.now() / 1000);
    const fast = await craft(
      { alg: "HS256", typ: "JWT" },
      { sub: "a", room, iat: now + 20, exp: now + 600 },
    );
    expect((await call("GET", `/v1/rooms/${room}/peers`, { token: fast })).status).toBe(200);
  });

  it("token subjects . and .. cannot join (400)", async () => {
    const room = "r-dots";
    for (const sub of [".", ".."]) {
      const t = await craft(
        { alg: "HS256", typ: "JWT" },
        { sub, room, exp: Math.floor(Date.now() / 1000) + 600 },
      );
      await problemOf(await call("POST", `/v1/rooms/${room}/peers`, { token: t, json: {} }), 400);
    }
  });
});
