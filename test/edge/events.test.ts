import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Room } from "../../worker/room/room.ts";
import {
  call,
  frag,
  freshRoom,
  join,
  offerUnanswered,
  poll,
  problemOf,
  sse,
  token,
  trickle,
} from "./helpers.ts";

function stubOf(room: string) {
  return env.ROOMS.get(env.ROOMS.idFromName(room));
}

async function readSse(
  res: Response,
  until: (text: string) => boolean,
  ms = 5_000,
): Promise<string> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const dec = new TextDecoder();
  let out = "";
  const end = Date.now() + ms;
  while (!until(out) && Date.now() < end) {
    const r = await Promise.race([
      reader.read(),
      new Promise<null>((resolve) => setTimeout(() => resolve(null), end - Date.now())),
    ]);
    if (!r || r.done) break;
    out += dec.decode(r.value, { stream: true });
  }
  await reader.cancel();
  return out;
}

/** An SSE response read as it comes: `readUntil` reads until `until(all text so far)` holds. */
function openStream(res: Response) {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const dec = new TextDecoder();
  const stream = {
    text: "",
    async readUntil(until: (t: string) => boolean): Promise<void> {
      while (!until(stream.text)) {
        const r = await reader.read();
        if (r.done) throw new Error(`stream ended: ${stream.text}`);
        stream.text += dec.decode(r.value, { stream: true });
      }
    },
    cancel: () => reader.cancel(),
  };
  return stream;
}

describe("events", () => {
  it("long-poll: a retried poll gets the same events; moving the cursor acknowledges them", async () => {
    const room = freshRoom();
    const ta = await token("a", room);
    const ja = await join(room, ta);
    for (const id of ["b", "c", "d"]) await join(room, await token(id, room));
    const first = await poll(room, "a", ta, ja.body.cursor);
    const retry = await poll(room, "a", ta, ja.body.cursor);
    expect(first.events.map((e) => e.type)).toEqual(["peer-joined", "peer-joined", "peer-joined"]);
    expect(retry).toEqual(first);
    const ids = first.events.map((e) => Number(e.id));
    expect([...ids].sort((x, y) => x - y)).toEqual(ids);
    expect(first.cursor).toBe(first.events.at(-1)?.id);
    const next = await poll(room, "a", ta, first.cursor);
    expect(next).toEqual({ events: [], cursor: first.cursor });
  });

  it("a resume (join 200) returns the last acknowledged cursor: only unacknowledged events follow", async () => {
    const room = freshRoom("resume");
    const ta = await token("a", room);
    const ja = await join(room, ta);
    await join(room, await token("b", room));
    const first = await poll(room, "a", ta, ja.body.cursor);
    await join(room, await token("c", room));
    // a received b and c (the second poll's response is lost) but acknowledged only b.
    const lost = await poll(room, "a", ta, first.cursor);
    expect(lost.events.map((e) => (e.peer as { id: string }).id)).toEqual(["c"]);
    const resumed = await join(room, ta);
    expect(resumed.res.status).toBe(200);
    expect(resumed.body.cursor).toBe(first.cursor);
    expect(resumed.body.peers.map((x) => x.id)).toEqual(["b", "c"]);
    const again = await poll(room, "a", ta, resumed.body.cursor);
    expect(again.events.map((e) => (e.peer as { id: string }).id)).toEqual(["c"]);
    // Without `after`, a poll starts from the acknowledged cursor too.
    expect(await poll(room, "a", ta)).toEqual(again);
  });

  it("long-poll waits and returns as soon as an event comes", async () => {
    const room = freshRoom();
    const ta = await token("a", room);
    const ja = await join(room, ta);
    const parked = poll(room, "a", ta, ja.body.cursor, 10);
    await new Promise((r) => setTimeout(r, 300));
    await join(room, await token("b", room));
    const got = await parked;
    expect(got.events).toEqual([expect.objectContaining({ type: "peer-joined" })]);
  });

  it("validates wait and after; 404 for a peer that is not in the room; own id only", async () => {
    const room = freshRoom();
    const ta = await token("a", room);
    await join(room, ta);
    await problemOf(
      await call("GET", `/v1/rooms/${room}/peers/a/events?wait=26`, { token: ta }),
      400,
    );
    await problemOf(
      await call("GET", `/v1/rooms/${room}/peers/a/events?wait=-1`, { token: ta }),
      400,
    );
    await problemOf(
      await call("GET", `/v1/rooms/${room}/peers/a/events?after=abc`, { token: ta }),
      400,
    );
    const tz = await token("z", room);
    await problemOf(
      await call("GET", `/v1/rooms/${room}/peers/z/events?wait=0`, { token: tz }),
      404,
    );
    await problemOf(
      await call("GET", `/v1/rooms/${room}/peers/a/events?wait=0`, { token: tz }),
      403,
    );
  });

  it("an empty list with the same cursor after `wait`; 404 once the peer has left", async () => {
    const room = freshRoom();
    const ta = await token("a", room);
    const ja = await join(room, ta);
    expect(await poll(room, "a", ta, ja.body.cursor, 1)).toEqual({
      events: [],
      cursor: ja.body.cursor,
    });
    expect((await call("DELETE", `/v1/rooms/${room}/peers/a`, { token: ta })).status).toBe(204);
    await problemOf(
      await call("GET", `/v1/rooms/${room}/peers/a/events?wait=0&after=${ja.body.cursor}`, {
        token: ta,
      }),
      404,
    );
  });

  it("a cursor the room never handed out is 400 and acknowledges nothing", async () => {
    const room = freshRoom();
    const ta = await token("a", room);
    const ja = await join(room, ta);
    await join(room, await token("b", room));
    const ahead = await call("GET", `/v1/rooms/${room}/peers/a/events?wait=0&after=999999999`, {
      token: ta,
    });
    await problemOf(ahead, 400);
    await problemOf(
      await call("GET", `/v1/rooms/${room}/peers/a/events`, {
        token: ta,
        headers: { Accept: "text/event-stream", "Last-Event-ID": "999999999" },
      }),
      400,
    );
    await join(room, await token("c", room));
    // Nothing was acknowledged: a poll from the stored cursor (no `after`) and a resume both
    // still see b and c.
    const fromStored = await poll(room, "a", ta);
    expect(fromStored.events.map((e) => (e.peer as { id: string }).id)).toEqual(["b", "c"]);
    const resumed = await join(room, ta);
    expect(resumed.res.status).toBe(200);
    expect(resumed.body.cursor).toBe(ja.body.cursor);
  });

  it("many events: delivered in batches, each exactly once and in order", async () => {
    const room = freshRoom("many");
    const ta = await token("a", room);
    const ja = await join(room, ta);
    // Three senders (each under MAX_EVENTS_PER_SENDER=60) trickle to a: more than one poll
    // batch (100).
    const sent: string[] = [];
    for (const from of ["b", "c", "d"]) {
      const t = await token(from, room);
      await join(room, t);
      const s = await offerUnanswered(room, t, "a", `ufrag${from}`);
      for (let i = 0; i < 44; i++) {
        expect((await trickle(room, t, s.sid, s.etag, `ufrag${from}`)).status).toBe(204);
        sent.push(from);
      }
    }
    const seen: string[] = [];
    let cursor = ja.body.cursor;
    for (let round = 0; round < 5; round++) {
      const got = await poll(room, "a", ta, cursor);
      if (got.events.length === 0) break;
      // A retried poll (same cursor) gets the same batch.
      expect(await poll(room, "a", ta, cursor)).toEqual(got);
      for (const e of got.events) if (e.type === "candidates") seen.push(String(e.from));
      cursor = got.cursor;
    }
    expect(seen).toEqual(sent);
  }, 20_000);

  it("a parked poll still gets its event after the room object is evicted", async () => {
    const room = freshRoom("evict");
    const ta = await token("a", room);
    const ja = await join(room, ta);
    const parked = poll(room, "a", ta, ja.body.cursor, 15);
    await new Promise((r) => setTimeout(r, 300));
    await evictDurableObject(stubOf(room));
    await join(room, await token("b", room));
    const got = await parked;
    expect(got.events).toEqual([expect.objectContaining({ type: "peer-joined" })]);
  });

  it("events survive eviction: everything missed, in order, once", async () => {
    const room = freshRoom("survive");
    const ta = await token("a", room);
    const ja = await join(room, ta);
    await join(room, await token("b", room));
    await join(room, await token("c", room));
    // The premise: the object really was evicted. A mark on the running instance is gone
    // afterwards only if a new instance (state from storage alone) answers.
    const marked = (o: unknown) => (o as { evictionMark?: true }).evictionMark === true;
    await runInDurableObject(stubOf(room), (o) => {
      (o as { evictionMark?: true }).evictionMark = true;
    });
    expect(await runInDurableObject(stubOf(room), marked)).toBe(true);
    await evictDurableObject(stubOf(room));
    expect(await runInDurableObject(stubOf(room), marked)).toBe(false);
    const got = await poll(room, "a", ta, ja.body.cursor);
    expect(got.events.map((e) => (e as { peer?: { id: string } }).peer?.id)).toEqual(["b", "c"]);
  });

  it("SSE: retry line then a keep-alive comment when nothing is pending; event: error when the peer is gone", async () => {
    const room = freshRoom("sse-idle");
    const ta = await token("a", room);
    const ja = await join(room, ta);
    const res = await sse(room, "a", ta, { after: ja.body.cursor });
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const dec = new TextDecoder();
    let out = "";
    while (!out.includes(": keep-alive\n\n")) {
      const r = await reader.read();
      if (r.done) break;
      out += dec.decode(r.value, { stream: true });
    }
    expect(out).toBe("retry: 2000\n\n: keep-alive\n\n");
    // The peer leaves (or expires): the stream says so and ends.
    expect((await call("DELETE", `/v1/rooms/${room}/peers/a`, { token: ta })).status).toBe(204);
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      out += dec.decode(r.value, { stream: true });
    }
    expect(out).toMatch(/^event: error\ndata: \{"detail":"peer \\"a\\" is not in this room.*\}$/m);
  });

  it("SSE: one watch on the room object for the stream's life, not one per batch", async () => {
    const room = freshRoom("sse-held");
    const ta = await token("a", room);
    const ja = await join(room, ta);
    const stream = openStream(await sse(room, "a", ta, { after: ja.body.cursor }));
    // The room's sockets on a's topic: the stream's watch, marked the first time it is seen.
    const watches = () =>
      runInDurableObject(stubOf(room), (_o, state: DurableObjectState) =>
        state.getWebSockets("peer:a").map((ws) => {
          const w = ws as WebSocket & { heldMark?: true };
          const marked = w.heldMark === true;
          w.heldMark = true;
          return marked;
        }),
      );
    await stream.readUntil((t) => t.includes(": keep-alive"));
    // The watch opens after the first read found nothing: it is there once the stream waits.
    let first: boolean[] = [];
    for (let i = 0; i < 50 && first.length === 0; i++) {
      first = await watches();
      if (first.length === 0) await new Promise((r) => setTimeout(r, 20));
    }
    expect(first).toEqual([false]);
    for (const [n, peer] of ["b", "c", "d"].entries()) {
      await join(room, await token(peer, room));
      // Each join is a batch of its own: written, then the stream waits again.
      await stream.readUntil((t) => (t.match(/event: peer-joined/g) ?? []).length > n);
      await new Promise((r) => setTimeout(r, 50));
      expect(await watches()).toEqual([true]);
    }
    expect([...stream.text.matchAll(/"id":"([bcd])"/g)].map((m) => m[1])).toEqual(["b", "c", "d"]);
    await stream.cancel();
  });

  it("SSE: a waiting stream writes the events its wake carries, without reading them back", async () => {
    const room = freshRoom("sse-push");
    const ta = await token("a", room);
    const ja = await join(room, ta);
    const stream = openStream(await sse(room, "a", ta, { after: ja.body.cursor }));
    // Every read of a stream renews its lease; its mark of what it wrote moves with it.
    const state = () =>
      runInDurableObject(stubOf(room), (_o, st: DurableObjectState) => ({
        pushWatches: st.getWebSockets("push:peer:a").length,
        lease: st.storage.sql.exec<{ lease: number }>("SELECT lease FROM streams").one().lease,
        written: st.storage.sql
          .exec<{ written: number | null }>("SELECT written FROM peers WHERE id = 'a'")
          .one().written,
      }));
    await stream.readUntil((t) => t.includes(": keep-alive"));
    let before = await state();
    for (let i = 0; i < 50 && before.pushWatches === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      before = await state();
    }
    expect(before.pushWatches).toBe(1);
    for (const [n, peer] of ["b", "c", "d"].entries()) {
      await new Promise((r) => setTimeout(r, 20)); // a read now would move the lease
      await join(room, await token(peer, room));
      await stream.readUntil((t) => (t.match(/event: peer-joined/g) ?? []).length > n);
    }
    const ids = [...stream.text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect([...stream.text.matchAll(/"id":"([bcd])"/g)].map((m) => m[1])).toEqual(["b", "c", "d"]);
    const after = await state();
    expect(after.lease).toBe(before.lease);
    // Pushed events count as written for their senders' quotas, as after a read.
    expect(after.written).toBe(ids.at(-1));
    await stream.cancel();
  });

  it("SSE: a stream far behind after a burst gets the rest right after a full read", async () => {
    const room = freshRoom("sse-behind");
    const ta = await token("a", room);
    const ja = await join(room, ta);
    const sessions: { from: string; sid: string; etag: string }[] = [];
    for (const from of ["b", "c", "d"]) {
      const t = await token(from, room);
      await join(room, t);
      sessions.push({ from, ...(await offerUnanswered(room, t, "a", `ufrag${from}`)) });
    }
    const stream = openStream(await sse(room, "a", ta, { after: ja.body.cursor }));
    await stream.readUntil((t) => (t.match(/event: offer/g) ?? []).length === 3);
    let watches = 0;
    for (let i = 0; i < 50 && watches === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
      watches = await runInDurableObject(
        stubOf(room),
        (_o, st: DurableObjectState) => st.getWebSockets("push:peer:a").length,
      );
    }
    expect(watches).toBe(1);
    // 150 large candidates events in one turn of the room object, while a reads nothing: the
    // stream's writes stall, its watch overflows with pushes and it must read, 100 at a time.
    const lines = Array.from(
      { length: 60 },
      (_, i) => `candidate:${i} 1 udp 2130706431 127.0.0.1 ${50000 + i} typ host`,
    );
    await runInDurableObject(stubOf(room), async (o: Room) => {
      for (const s of sessions) {
        for (let i = 0; i < 50; i++) {
          const body = frag(`ufrag${s.from}`, { candidates: lines });
          const r = await o.patchSession(
            s.sid,
            s.from,
            { body, ufrag: `ufrag${s.from}`, hasPwd: false },
            [s.etag.replaceAll('"', "")],
            0,
          );
          expect(r.ok).toBe(true);
        }
      }
    });
    await new Promise((r) => setTimeout(r, 300));
    // Then a reads again. Without a second read at once the last 50 would wait for the stream's
    // next acknowledgement (SSE_ACK_DELAY_S, 2 s here) or keep-alive.
    const t0 = Date.now();
    const count = () => (stream.text.match(/event: candidates/g) ?? []).length;
    await Promise.race([
      stream.readUntil(() => count() >= 150),
      new Promise((r) => setTimeout(r, 1_000)),
    ]);
    expect({ candidates: count(), ms: Date.now() - t0 < 1_000 }).toEqual({
      candidates: 150,
      ms: true,
    });
    await stream.cancel();
  }, 20_000);

  it("SSE: id/event/data lines; Last-Event-ID resumes with exactly the missed events", async () => {
    const room = freshRoom("sse");
    const ta = await token("a", room);
    const ja = await join(room, ta);
    await join(room, await token("b", room));
    const res = await sse(room, "a", ta, { after: ja.body.cursor });
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toContain("text/event-stream");
    const body = await readSse(res, (t) => t.includes("event: peer-joined"));
    expect(body).toMatch(/^retry: \d+/m);
    expect(body).toMatch(/^event: peer-joined$/m);
    const id = /^id: (\d+)$/m.exec(body)?.[1];
    expect(id).toBeDefined();
    const data = JSON.parse(/^data: (.*)$/m.exec(body)?.[1] ?? "{}") as { peer: { id: string } };
    expect(data.peer.id).toBe("b");
    // Two more events while disconnected; resume from the last seen id.
    await join(room, await token("c", room));
    await join(room, await token("d", room));
    const resumed = await sse(room, "a", ta, { lastEventId: String(id) });
    const body2 = await readSse(resumed, (t) => (t.match(/event: peer-joined/g) ?? []).length >= 2);
    const peers = [...body2.matchAll(/^data: (.*)$/gm)].map(
      (m) => (JSON.parse(m[1] as string) as { peer: { id: string } }).peer.id,
    );
    expect(peers).toEqual(["c", "d"]);
  });

  it("HEAD: a GET's status and headers, and nothing else: no stream opened, nothing acknowledged", async () => {
    const room = freshRoom("head");
    const ta = await token("a", room);
    const ja = await join(room, ta);
    const tb = await token("b", room);
    await join(room, tb);
    const live = openStream(await sse(room, "a", ta, { after: ja.body.cursor }));
    await live.readUntil((t) => t.includes("event: peer-joined"));
    const seen = /^id: (\d+)$/m.exec(live.text)?.[1] as string;
    const path = `/v1/rooms/${room}/peers/a/events`;
    // More HEADs than MAX_STREAMS_PER_PEER (2): each would have been a stream of its own.
    const heads: Record<string, string>[] = [
      { Accept: "text/event-stream" },
      { Accept: "text/event-stream", "Last-Event-ID": seen },
      { Accept: "text/event-stream" },
    ];
    for (const headers of heads) {
      const h = await call("HEAD", path, { token: ta, headers });
      expect(h.status).toBe(200);
      expect(h.headers.get("Content-Type")).toBe("text/event-stream");
      expect(h.headers.get("Cache-Control")).toBe("no-store");
      expect(await h.text()).toBe("");
    }
    const h = await call("HEAD", `${path}?after=${seen}`, { token: ta });
    expect(h.status).toBe(200);
    expect(h.headers.get("Content-Type")).toBe("application/json");
    // Nothing acknowledged: a poll from the acknowledged cursor still gets b's join.
    expect((await poll(room, "a", ta)).events.map((e) => e.type)).toEqual(["peer-joined"]);
    // The live stream is still the peer's: it gets the next event, not `event: error`.
    const patched = await call("PATCH", `/v1/rooms/${room}/peers/b`, {
      token: tb,
      headers: { "Content-Type": "application/merge-patch+json" },
      body: JSON.stringify({ meta: { x: 1 } }),
    });
    expect(patched.status).toBe(200);
    await live.readUntil((t) => t.includes("event: peer-updated") || t.includes("event: error"));
    expect(live.text).not.toContain("event: error");
    await live.cancel();
    // The statuses a GET would get.
    expect((await call("HEAD", `${path}?wait=99`, { token: ta })).status).toBe(400);
    const tc = await token("c", room);
    expect((await call("HEAD", `/v1/rooms/${room}/peers/c/events`, { token: tc })).status).toBe(
      404,
    );
  });

  it("Accept is negotiated: a range at q=0 is refused, the higher q wins, */* is the long-poll", async () => {
    const room = freshRoom("accept");
    const ta = await token("a", room);
    const ja = await join(room, ta);
    const kind = async (accept: string) => {
      const res = await call(
        "GET",
        `/v1/rooms/${room}/peers/a/events?after=${ja.body.cursor}&wait=0`,
        {
          token: ta,
          headers: { Accept: accept },
        },
      );
      expect(res.status).toBe(200);
      const type = res.headers.get("Content-Type") ?? "";
      await res.body?.cancel();
      return type.split(";")[0];
    };
    expect(await kind("text/event-stream")).toBe("text/event-stream");
    expect(await kind("application/json;q=0.5, text/event-stream")).toBe("text/event-stream");
    // Named but refused (it was a stream: the header was matched as a substring).
    expect(await kind("text/event-stream;q=0, application/json")).toBe("application/json");
    expect(await kind("application/json, text/event-stream;q=0.1")).toBe("application/json");
    expect(await kind("*/*")).toBe("application/json");
  });
});
