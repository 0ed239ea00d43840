// Bounded state: sessions per (offerer, answerer) pair, SSE streams per peer, SSE acknowledges
// what it wrote once the client had time to resume. Defaults: MAX_SESSIONS_PER_PAIR=1, MAX_STREAMS_PER_PEER=2.
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, drain, join, pair, poll, problemOf, sdp, sse, token } from "./helpers.ts";

const stubOf = (room: string) => env.ROOMS.get(env.ROOMS.idFromName(room));

async function count(room: string, sql: string): Promise<number> {
  return runInDurableObject(stubOf(room), (_o, state: DurableObjectState) =>
    Number(state.storage.sql.exec(sql).one().n),
  );
}

/** Read an SSE body until `until` holds or the stream ends; the text so far and the reader. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  until: (text: string) => boolean,
  sofar = "",
): Promise<string> {
  const dec = new TextDecoder();
  let out = sofar;
  while (!until(out)) {
    const r = await reader.read();
    if (r.done) break;
    out += dec.decode(r.value, { stream: true });
  }
  return out;
}

describe("bounded state", () => {
  it("a new offer from the same offerer to the same answerer closes the superseded session", async () => {
    const p = await pair("per-pair");
    let cb = p.cb;
    const sids: string[] = [];
    const seen: Record<string, unknown>[] = [];
    for (let i = 1; i <= 3; i++) {
      const offer = call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
        token: p.ta,
        headers: { "Content-Type": "application/sdp", Prefer: "wait=10" },
        body: sdp(`ufragA${i}`),
      });
      let ev: { session: string; etag: string } | undefined;
      while (!ev) {
        const got = await poll(p.room, "b", p.tb, cb, 10);
        cb = got.cursor;
        seen.push(...got.events);
        ev = got.events.find((e) => e.type === "offer") as unknown as typeof ev;
      }
      const ans = await call("POST", `/v1/rooms/${p.room}/sessions/${ev.session}/answer`, {
        token: p.tb,
        headers: { "Content-Type": "application/sdp", "If-Match": ev.etag },
        body: sdp(`ufragB${i}`),
      });
      expect(ans.status).toBe(204);
      expect((await offer).status).toBe(201);
      sids.push(ev.session);
    }
    // Only the newest a->b session is left; b was told about the others, with a reason.
    for (const old of sids.slice(0, 2)) {
      await problemOf(
        await call("GET", `/v1/rooms/${p.room}/sessions/${old}`, { token: p.ta }),
        404,
      );
    }
    expect(
      (await call("GET", `/v1/rooms/${p.room}/sessions/${sids[2]}`, { token: p.ta })).status,
    ).toBe(200);
    expect(await count(p.room, "SELECT count(*) AS n FROM sessions")).toBe(1);
    seen.push(...(await drain(p.room, "b", p.tb, cb)).events);
    const closed = seen.filter((e) => e.type === "session-closed");
    expect(closed).toEqual(
      sids
        .slice(0, 2)
        .map((s) => expect.objectContaining({ session: s, by: "a", reason: "superseded" })),
    );
    // The other direction is another pair: b's offer to a leaves a's session alone.
    const back = await call("POST", `/v1/rooms/${p.room}/peers/a/sessions`, {
      token: p.tb,
      headers: { "Content-Type": "application/sdp", Prefer: "wait=1" },
      body: sdp("ufragB9"),
    });
    expect(back.status).toBe(202);
    expect(await count(p.room, "SELECT count(*) AS n FROM sessions")).toBe(2);
  }, 20_000);

  it("at most two SSE streams per peer: a new one closes the oldest with event: error", async () => {
    const p = await pair("streams");
    const readers: ReadableStreamDefaultReader<Uint8Array>[] = [];
    const texts: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await sse(p.room, "a", p.ta, { after: p.ca });
      expect(res.status).toBe(200);
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      readers.push(reader);
      texts.push(await readUntil(reader, (t) => t.includes(": keep-alive")));
    }
    // The three oldest were replaced, each with an error event, and ended.
    for (let i = 0; i < 3; i++) {
      const out = await readUntil(
        readers[i] as ReadableStreamDefaultReader<Uint8Array>,
        () => false,
        texts[i],
      );
      expect(out).toMatch(/^event: error\ndata: .*newer event stream/m);
    }
    expect(await count(p.room, "SELECT count(*) AS n FROM streams WHERE peer = 'a'")).toBe(2);
    // The two newest still carry events.
    await join(p.room, await token("c", p.room));
    for (const i of [3, 4]) {
      const out = await readUntil(readers[i] as ReadableStreamDefaultReader<Uint8Array>, (t) =>
        t.includes("event: peer-joined"),
      );
      expect(out).toContain('"id":"c"');
      await readers[i]?.cancel();
    }
  });

  it("SSE acknowledges what it wrote only after SSE_ACK_DELAY_S: a stream resumed sooner gets them again; then the log drains", async () => {
    // SSE_ACK_DELAY_S is 2 here (vitest.config.ts); 60 by default.
    const p = await pair("sse-ack");
    const res = await sse(p.room, "a", p.ta, { after: p.ca });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await readUntil(reader, (t) => t.includes(": keep-alive"));
    await join(p.room, await token("c", p.room));
    await join(p.room, await token("d", p.room));
    await readUntil(reader, (t) => (t.match(/event: peer-joined/g) ?? []).length >= 2);
    // Written, not yet acknowledged: a connection that died silently would have lost them.
    expect(await count(p.room, "SELECT count(*) AS n FROM events WHERE peer = 'a'")).toBe(2);
    // The client resumes from where it was before them (its connection died): both come again.
    const again = await sse(p.room, "a", p.ta, { after: p.ca });
    const reader2 = (again.body as ReadableStream<Uint8Array>).getReader();
    const replay = await readUntil(
      reader2,
      (t) => (t.match(/event: peer-joined/g) ?? []).length >= 2,
    );
    expect(replay).toContain('"id":"c"');
    expect(replay).toContain('"id":"d"');
    await reader2.cancel();
    // Past the delay, the still-open first stream acknowledges them: a's log drains.
    let left = -1;
    for (let i = 0; i < 100 && left !== 0; i++) {
      left = await count(p.room, "SELECT count(*) AS n FROM events WHERE peer = 'a'");
      if (left !== 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(left).toBe(0);
    // A poll from the stored cursor starts after them.
    expect((await poll(p.room, "a", p.ta)).events).toEqual([]);
    await reader.cancel();
  });
});
