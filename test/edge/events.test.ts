import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, freshRoom, join, poll, problemOf, token } from "./helpers.ts";

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
    await evictDurableObject(stubOf(room)).catch(() => {});
    const got = await poll(room, "a", ta, ja.body.cursor);
    expect(got.events.map((e) => (e as { peer?: { id: string } }).peer?.id)).toEqual(["b", "c"]);
  });

  it("SSE: id/event/data lines; Last-Event-ID resumes with exactly the missed events", async () => {
    const room = freshRoom("sse");
    const ta = await token("a", room);
    const ja = await join(room, ta);
    await join(room, await token("b", room));
    const res = await call("GET", `/v1/rooms/${room}/peers/a/events?after=${ja.body.cursor}`, {
      token: ta,
      headers: { Accept: "text/event-stream" },
    });
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
    const resumed = await call("GET", `/v1/rooms/${room}/peers/a/events`, {
      token: ta,
      headers: { Accept: "text/event-stream", "Last-Event-ID": String(id) },
    });
    const body2 = await readSse(resumed, (t) => (t.match(/event: peer-joined/g) ?? []).length >= 2);
    const peers = [...body2.matchAll(/^data: (.*)$/gm)].map(
      (m) => (JSON.parse(m[1] as string) as { peer: { id: string } }).peer.id,
    );
    expect(peers).toEqual(["c", "d"]);
  });
});
