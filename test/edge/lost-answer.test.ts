// An offerer whose held POST died before the answer came (its connection dropped) must still get
// the answer: as an `answer` event, as after a 202. Two ways the edge learns of it: the runtime
// aborts request.signal (compatibility flag enable_request_signal), or it cancels the Worker
// and the parked request's watch on the room closes.
import {
  createExecutionContext,
  runInDurableObject,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../worker/index.ts";
import { call, drain, pair, poll, sdp, text } from "./helpers.ts";

type Pair = Awaited<ReturnType<typeof pair>>;

/** b reads the offer a's POST made, answers it; a's events then hold (or not) that answer. */
async function answerAndReadA(p: Pair) {
  const offered = await poll(p.room, "b", p.tb, p.cb, 10);
  const offer = offered.events.find((e) => e.type === "offer") as unknown as {
    session: string;
    etag: string;
  };
  expect(offer).toBeDefined();
  return {
    offer,
    async answer() {
      const ans = await call("POST", `/v1/rooms/${p.room}/sessions/${offer.session}/answer`, {
        token: p.tb,
        headers: { "Content-Type": "application/sdp", "If-Match": offer.etag },
        body: sdp("ufragB1"),
      });
      expect(ans.status).toBe(204);
      return (await drain(p.room, "a", p.ta, p.ca)).events;
    },
  };
}

const answerEvent = (session: string, etag: string) =>
  expect.objectContaining({
    type: "answer",
    session,
    from: "b",
    sdp: sdp("ufragB1"),
    etag,
  });

describe("a lost answer", () => {
  it("request.signal aborts while the offer is parked: the answer comes as an event", async () => {
    const p = await pair("lost-signal");
    const abort = new AbortController();
    const request = new Request(`http://edge.test/v1/rooms/${p.room}/peers/b/sessions`, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${p.ta}`,
        "Content-Type": "application/sdp",
        Prefer: "wait=20",
      },
      body: sdp("ufragA1"),
      signal: abort.signal,
    });
    // The Worker's own handler with the request the runtime would hand it: its signal is the
    // one the runtime aborts when the client's connection dies.
    const ctx = createExecutionContext();
    const held = worker.fetch(request, env, ctx);
    const { offer, answer } = await answerAndReadA(p);
    abort.abort();
    // The parked request gives up at once (a 202 nobody reads), long before its 20 s.
    const res = await held;
    expect(res.status).toBe(202);
    await res.arrayBuffer();
    await waitOnExecutionContext(ctx);
    expect(await answer()).toContainEqual(answerEvent(offer.session, offer.etag));
  });

  it("the parked request's watch closes without a detach (Worker cancelled): the answer comes as an event", async () => {
    const p = await pair("lost-cancel");
    const stub = env.ROOMS.get(env.ROOMS.idFromName(p.room));
    // What a parked offer is, seen from the room: a pending offer with a waiter, and a watch.
    const made = await stub.offer("a", "b", { body: sdp("ufragA1"), ufrag: "ufragA1" }, 20_000);
    if (!made.ok) throw new Error(made.problem.detail);
    const sid = made.session;
    const res = await stub.fetch(
      `https://room/watch?topic=${encodeURIComponent(`session:${sid}`)}`,
      {
        headers: { Upgrade: "websocket" },
      },
    );
    const ws = res.webSocket as WebSocket;
    ws.accept();
    const closed = new Promise((r) => ws.addEventListener("close", r));
    const { offer, answer } = await answerAndReadA(p);
    expect(offer.session).toBe(sid);
    // The runtime cancels the Worker: its socket goes away without a detach.
    ws.close(1001, "cancelled");
    await closed;
    // The room handles the close on its own schedule: wait until its pending offer says so.
    const waiter = () =>
      runInDurableObject(stub, (_o, state: DurableObjectState) => {
        const row = state.storage.sql
          .exec("SELECT pending FROM sessions WHERE id = ?", sid)
          .toArray()[0];
        return (JSON.parse(String(row?.pending)) as { waiter: boolean }).waiter;
      });
    for (let i = 0; i < 100 && (await waiter()); i++) await new Promise((r) => setTimeout(r, 20));
    expect(await answer()).toContainEqual(answerEvent(offer.session, offer.etag));
  });

  it("while the request is still parked, the answer goes to it and not to the log", async () => {
    const p = await pair("held");
    const held = call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
      token: p.ta,
      headers: { "Content-Type": "application/sdp", Prefer: "wait=20" },
      body: sdp("ufragA1"),
    });
    const { offer, answer } = await answerAndReadA(p);
    const events = await answer();
    const res = await held;
    expect(res.status).toBe(201);
    expect(await text(res)).toBe(sdp("ufragB1"));
    expect(events.filter((e) => e.type === "answer")).toEqual([]);
    expect(offer.session).toBeTruthy();
  });
});
