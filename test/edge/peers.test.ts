import { describe, expect, it } from "vitest";
import { mergePatch } from "../../worker/merge-patch.ts";
import { call, freshRoom, join, poll, problemOf, sse, token } from "./helpers.ts";

describe("peers and presence", () => {
  it("join 201, resume 200, list, merge-patch update, leave 204", async () => {
    const room = freshRoom();
    const ta = await token("a", room);
    const first = await join(room, ta, {
      kind: "base",
      meta: { team: "x" },
      position: { x: 1, y: 1, map: "yard" },
    });
    expect(first.res.status).toBe(201);
    expect(first.res.headers.get("Location")).toBe(`/v1/rooms/${room}/peers/a`);
    expect(first.body.peer).toMatchObject({ id: "a", kind: "base", meta: { team: "x" } });
    expect(Array.isArray((first.body as unknown as { iceServers: unknown[] }).iceServers)).toBe(
      true,
    );
    const again = await join(room, ta);
    expect(again.res.status).toBe(200);
    expect(again.body.peer).toMatchObject({ id: "a", kind: "base" });

    const tb = await token("b", room);
    await join(room, tb);
    const list = await call("GET", `/v1/rooms/${room}/peers`, { token: tb });
    expect(((await list.json()) as { peers: { id: string }[] }).peers.map((p) => p.id)).toEqual([
      "a",
      "b",
    ]);

    const patched = await call("PATCH", `/v1/rooms/${room}/peers/a`, {
      token: ta,
      headers: { "Content-Type": "application/merge-patch+json" },
      body: JSON.stringify({ meta: null, position: { x: 5, y: 6 } }),
    });
    expect(patched.status).toBe(200);
    expect(await patched.json()).toMatchObject({ id: "a", meta: {}, position: { x: 5, y: 6 } });
    const evs = await poll(room, "b", tb);
    expect(evs.events.map((e) => e.type)).toContain("peer-updated");

    expect((await call("DELETE", `/v1/rooms/${room}/peers/a`, { token: ta })).status).toBe(204);
    const left = await poll(room, "b", tb, evs.cursor);
    expect(left.events).toEqual([
      expect.objectContaining({ type: "peer-left", peer: "a", reason: "left" }),
    ]);
    await problemOf(await call("DELETE", `/v1/rooms/${room}/peers/a`, { token: ta }), 404);
  });

  it("a peer's ETag makes a PATCH conditional: If-Match on a tag the peer has moved past is 412 and changes nothing", async () => {
    const room = freshRoom("etag");
    const ta = await token("a", room);
    const tb = await token("b", room);
    const joined = await join(room, ta, { meta: { mode: "auto" } });
    const tag0 = joined.res.headers.get("ETag");
    expect(tag0).toMatch(/^"[^"]+"$/);
    const watcher = await join(room, tb);
    const patch = (body: unknown, ifMatch?: string) =>
      call("PATCH", `/v1/rooms/${room}/peers/a`, {
        token: ta,
        headers: {
          "Content-Type": "application/merge-patch+json",
          ...(ifMatch === undefined ? {} : { "If-Match": ifMatch }),
        },
        body: JSON.stringify(body),
      });
    // One operator's edit, on the tag it read: applied, and the tag moves.
    const first = await patch({ meta: { mode: "manual" } }, tag0 as string);
    expect(first.status).toBe(200);
    const tag1 = first.headers.get("ETag");
    expect(tag1).toMatch(/^"[^"]+"$/);
    expect(tag1).not.toBe(tag0);
    // Another's edit on the tag it read before that one: refused, nothing changed, no event.
    const stale = await patch({ meta: { mode: "dock" } }, tag0 as string);
    expect((await problemOf(stale, 412)).detail).toContain(`now ${tag1}`);
    await problemOf(await patch({ meta: { mode: "dock" } }, `W/${tag1}`), 412); // weak never matches
    const list = await call("GET", `/v1/rooms/${room}/peers`, { token: tb });
    const peers = ((await list.json()) as { peers: { id: string; meta: unknown }[] }).peers;
    expect(peers.find((p) => p.id === "a")?.meta).toEqual({ mode: "manual" });
    const evs = await poll(room, "b", tb, watcher.body.cursor);
    expect(evs.events.filter((e) => e.type === "peer-updated")).toHaveLength(1);
    // On the current tag, on `*`, or without If-Match (as before): applied.
    expect((await patch({ meta: { mode: "dock" } }, `${tag0}, ${tag1}`)).status).toBe(200);
    expect((await patch({ meta: { speed: 2 } }, "*")).status).toBe(200);
    const last = await patch({ meta: { speed: 3 } });
    expect(last.status).toBe(200);
    expect(await last.json()).toMatchObject({ meta: { mode: "dock", speed: 3 } });
    // A patch that changes nothing keeps the tag; a resumed join reports the same one.
    const tag = last.headers.get("ETag");
    expect((await patch({ meta: { speed: 3 } }, tag as string)).headers.get("ETag")).toBe(tag);
    expect((await join(room, ta)).res.headers.get("ETag")).toBe(tag);
  });

  it("a resumed seat's join says where the room is now (head): a new process skips what was for the old one", async () => {
    const room = freshRoom("head");
    const ta = await token("a", room);
    const tb = await token("b", room);
    const first = await join(room, ta, { meta: { incarnation: "one" } });
    // While a's first process is gone (not polling), the room changes: b comes and goes.
    await join(room, tb);
    expect((await call("DELETE", `/v1/rooms/${room}/peers/b`, { token: tb })).status).toBe(204);
    // a's new process takes the seat again (presence not expired yet).
    const again = await join(room, ta, { meta: { incarnation: "two" } });
    expect(again.res.status).toBe(200);
    const body = again.body as typeof again.body & { head?: string };
    // `cursor` is where a's old process stopped: b's coming and going wait there (as the
    // protocol fixes); `head` is past them.
    expect(body.cursor).toBe(first.body.cursor);
    // Then (after `head`) that another process took the seat: its own, for the new process.
    expect((await poll(room, "a", ta, body.cursor)).events.map((e) => e.type)).toEqual([
      "peer-joined",
      "peer-left",
      "seat-taken",
    ]);
    expect(typeof body.head).toBe("string");
    expect((await poll(room, "a", ta, body.head)).events).toEqual([
      expect.objectContaining({ type: "seat-taken", incarnation: "two" }),
    ]);
    const seated = (await poll(room, "a", ta, body.head)).cursor;
    expect((await poll(room, "a", ta, seated)).events).toEqual([]);
    // What comes after the join is delivered from there.
    await join(room, tb);
    const next = await poll(room, "a", ta, seated);
    expect(next.events.map((e) => e.type)).toEqual(["peer-joined"]);
    // A first join's cursor already starts after everything in the room; head is no earlier.
    const tc = await token("c", room);
    const c = (await join(room, tc)).body as typeof first.body & { head?: string };
    expect(Number(c.head)).toBeGreaterThanOrEqual(Number(c.cursor));
    expect((await poll(room, "c", tc, c.cursor)).events).toEqual([]);
  });

  it("a join under a present id with another incarnation: seat-taken in the peer's own log", async () => {
    const room = freshRoom("seat");
    const ta = await token("a", room);
    const first = await join(room, ta, { meta: { incarnation: "one" } });
    // The same process joining again (a re-join after its presence expired) says nothing.
    await join(room, ta, { meta: { incarnation: "one" } });
    // Nor a join without an incarnation (curl).
    await join(room, ta, {});
    expect((await poll(room, "a", ta, first.body.cursor)).events).toEqual([]);
    // A second process with the id: both read it from where they are (the second ignores its
    // own); the first reads it first, as its stream or parked poll is woken at once.
    const second = (await join(room, ta, { meta: { incarnation: "two" } })).body as {
      cursor: string;
      head?: string;
    };
    const two = expect.objectContaining({ type: "seat-taken", peer: "a", incarnation: "two" });
    expect((await poll(room, "a", ta, first.body.cursor)).events).toEqual([two]);
    expect((await poll(room, "a", ta, second.head)).events).toEqual([two]);
    // A third before the second acknowledged: only the newest is kept.
    await join(room, ta, { meta: { incarnation: "three" } });
    expect((await poll(room, "a", ta, second.head)).events).toEqual([
      expect.objectContaining({ type: "seat-taken", incarnation: "three" }),
    ]);
  });

  it("a peer with its event stream open is seen now in the list, not when it last made a request", async () => {
    const room = freshRoom();
    const ta = await token("a", room);
    const tb = await token("b", room);
    const ja = await join(room, ta);
    await join(room, tb);
    await join(room, await token("c", room));
    const stream = await sse(room, "a", ta, { after: ja.body.cursor });
    expect(stream.status).toBe(200);
    // Read it as a client does (a stream nobody reads stalls on its first events).
    const reader = stream.body?.getReader();
    const reading = (async () => {
      try {
        while (reader && !(await reader.read()).done);
      } catch {
        // cancelled at the end of the test
      }
    })();
    const opened = Date.now();
    await new Promise((r) => setTimeout(r, 1_500));
    const list = await call("GET", `/v1/rooms/${room}/peers`, { token: tb });
    const peers = ((await list.json()) as { peers: { id: string; lastSeen: number }[] }).peers;
    const seen = (id: string) => peers.find((p) => p.id === id)?.lastSeen ?? 0;
    // a made no request for 1.5 s, but its stream is open; b's list request touched b.
    expect(seen("a")).toBeGreaterThanOrEqual(opened + 1_000);
    // c joined before and has made no request since, nor holds a stream: as old as its join.
    expect(seen("c")).toBeLessThan(opened);
    await reader?.cancel();
    await reading;
  });

  it("PATCH is a JSON merge patch (RFC 7396): objects merge, null removes, the result is checked", async () => {
    const room = freshRoom("merge");
    const ta = await token("a", room);
    await join(room, ta, {
      meta: { team: "x", battery: 90 },
      position: { x: 1, y: 2, map: "yard" },
    });
    const patch = (body: unknown) =>
      call("PATCH", `/v1/rooms/${room}/peers/a`, {
        token: ta,
        headers: { "Content-Type": "application/merge-patch+json" },
        body: JSON.stringify(body),
      });
    // meta keys merge; null removes one key; a partial position keeps the other fields.
    const r1 = await patch({
      meta: { battery: 80, team: null, mode: { auto: true } },
      position: { x: 7 },
    });
    expect(r1.status).toBe(200);
    expect(await r1.json()).toMatchObject({
      meta: { battery: 80, mode: { auto: true } },
      position: { x: 7, y: 2, map: "yard" },
    });
    const r2 = await patch({ meta: { mode: { auto: null, speed: 2 } }, position: { map: null } });
    const p2 = (await r2.json()) as {
      meta: Record<string, unknown>;
      position: unknown;
      kind: string;
    };
    expect(p2.meta).toEqual({ battery: 80, mode: { speed: 2 } });
    expect(p2.position).toEqual({ x: 7, y: 2 });
    expect(p2.kind).toBe("rover");
    // null removes meta and position altogether.
    const r3 = await patch({ meta: null, position: null });
    expect(await r3.json()).toMatchObject({ meta: {}, position: null });
    // A "__proto__" key from JSON is refused with its path (it was dropped with a 200), on a
    // PATCH and on a join, and never reaches an object's prototype.
    const r4 = await problemOf(
      await patch(JSON.parse('{"meta":{"k":1,"__proto__":{"polluted":1}}}')),
      400,
    );
    expect(r4.detail).toBe("meta.__proto__: a key named __proto__ is not accepted");
    const j4 = await call("POST", `/v1/rooms/${room}/peers`, {
      token: ta,
      headers: { "Content-Type": "application/json" },
      body: '{"meta":{"deep":{"__proto__":1}}}',
    });
    expect((await problemOf(j4, 400)).detail).toMatch(/^meta\.deep\.__proto__: /);
    // Nothing of the refused PATCH was kept.
    const listed = (await (await call("GET", `/v1/rooms/${room}/peers`, { token: ta })).json()) as {
      peers: { id: string; meta: Record<string, unknown> }[];
    };
    expect(listed.peers.find((p) => p.id === "a")?.meta).toEqual({});
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const merged = mergePatch({ a: 1 }, JSON.parse('{"__proto__":{"polluted":1},"b":null}'));
    expect(Object.getPrototypeOf(merged)).toBe(Object.prototype);
    expect(Object.keys(merged as object)).toEqual(["a", "__proto__"]);
    // The merged peer must be valid: a position needs x and y, kind cannot be removed.
    await problemOf(await patch({ position: { x: 1 } }), 400);
    await problemOf(await patch({ kind: null }), 400);
    await problemOf(await patch({ position: { x: "far", y: 1 } }), 400);
    // A field the position does not have is refused, not dropped (it vanished before).
    const extra = await problemOf(await patch({ position: { x: 1, y: 1, heading: 90 } }), 400);
    expect(extra.detail).toMatch(/heading/);
    // meta grows patch by patch, but not past the JSON limit.
    expect((await patch({ meta: { a: "x".repeat(10_000) } })).status).toBe(200);
    await problemOf(await patch({ meta: { b: "y".repeat(10_000) } }), 413);
    // A peer that is not in the room: 404.
    await call("DELETE", `/v1/rooms/${room}/peers/a`, { token: ta });
    await problemOf(await patch({ kind: "base" }), 404);
  });

  it("rejects bad bodies, media types and ids", async () => {
    const room = freshRoom();
    const ta = await token("a", room);
    await problemOf(
      await call("POST", `/v1/rooms/${room}/peers`, {
        token: ta,
        headers: { "Content-Type": "application/json" },
        body: "{nope",
      }),
      400,
    );
    await problemOf(
      await call("POST", `/v1/rooms/${room}/peers`, {
        token: ta,
        json: { kind: "rover", extra: 1 },
      }),
      400,
    );
    await problemOf(
      await call("POST", `/v1/rooms/${room}/peers`, {
        token: ta,
        json: { position: { x: "1", y: 2 } },
      }),
      400,
    );
    const z = await problemOf(
      await call("POST", `/v1/rooms/${room}/peers`, {
        token: ta,
        json: { position: { x: 1, y: 2, z: 3 } },
      }),
      400,
    );
    expect(z.detail).toMatch(/"z"/);
    await problemOf(
      await call("POST", `/v1/rooms/${room}/peers`, {
        token: ta,
        headers: { "Content-Type": "text/plain" },
        body: "hi",
      }),
      415,
    );
    await problemOf(
      await call("POST", `/v1/rooms/${room}/peers`, {
        token: ta,
        json: { meta: { blob: "x".repeat(17 * 1024) } },
      }),
      413,
    );
    const tt = await token("a", "*");
    await problemOf(await call("GET", "/v1/rooms/bad%20room/peers", { token: tt }), 400);
    await problemOf(await call("GET", `/v1/rooms/${"x".repeat(65)}/peers`, { token: tt }), 400);
    await problemOf(
      await call("PATCH", `/v1/rooms/${room}/peers/a`, {
        token: ta,
        headers: { "Content-Type": "text/plain" },
        body: "{}",
      }),
      415,
    );
  });

  it("a full room answers 503 with Retry-After (MAX_PEERS_PER_ROOM)", async () => {
    // The test config sets MAX_PEERS_PER_ROOM=4.
    const room = freshRoom("full");
    for (const id of ["p1", "p2", "p3", "p4"])
      expect((await join(room, await token(id, room))).res.status).toBe(201);
    const res = await call("POST", `/v1/rooms/${room}/peers`, {
      token: await token("p5", room),
      json: {},
    });
    const p = await problemOf(res, 503);
    expect(p.title).toBe("Room full");
    expect(Number(res.headers.get("Retry-After"))).toBeGreaterThan(0);
  });

  it("nearby events when the set of peers within NEARBY_RADIUS changes", async () => {
    // The test config sets NEARBY_RADIUS=5.
    const room = freshRoom("near");
    const ta = await token("a", room);
    const tb = await token("b", room);
    const ja = await join(room, ta, { position: { x: 0, y: 0 } });
    // The join answer says the radius (the console draws it around each rover).
    expect((ja.body as { room?: unknown }).room).toEqual({ nearbyRadius: 5 });
    await join(room, tb, { position: { x: 3, y: 4 } });
    const ea = await poll(room, "a", ta, ja.body.cursor);
    expect(ea.events.filter((e) => e.type === "nearby")).toEqual([
      expect.objectContaining({ peers: ["b"] }),
    ]);
    await call("PATCH", `/v1/rooms/${room}/peers/b`, {
      token: tb,
      json: { position: { x: 30, y: 40 } },
    });
    const ea2 = await poll(room, "a", ta, ea.cursor);
    expect(ea2.events.filter((e) => e.type === "nearby")).toEqual([
      expect.objectContaining({ peers: [] }),
    ]);
    // A different map is never nearby.
    await call("PATCH", `/v1/rooms/${room}/peers/b`, {
      token: tb,
      json: { position: { x: 0, y: 1, map: "other" } },
    });
    const ea3 = await poll(room, "a", ta, ea2.cursor);
    expect(ea3.events.filter((e) => e.type === "nearby")).toEqual([]);
  });
});
