// The event-log policy (worker/room/event-policy.ts): chatter is coalesced and evicted first,
// signaling and membership never; per-sender quotas. Test config: MAX_EVENTS_PER_PEER=150,
// MAX_EVENTS_PER_SENDER=60.
import { describe, expect, it } from "vitest";
import {
  admit,
  chatterToDrop,
  classOf,
  coalesceKey,
  defaultPerSender,
  senderOf,
} from "../../worker/room/event-policy.ts";
import {
  call,
  drain,
  frag,
  freshRoom,
  join,
  offerUnanswered,
  poll,
  problemOf,
  sdp,
  sse,
  token,
  trickle,
} from "./helpers.ts";

const peer = (id: string) => ({
  id,
  kind: "rover",
  meta: {},
  position: null,
  joinedAt: 0,
  lastSeen: 0,
});

describe("event-log policy (pure)", () => {
  it("classes, coalescing keys and senders", () => {
    expect(classOf({ type: "peer-updated", peer: peer("x") })).toBe("chatter");
    expect(classOf({ type: "nearby", peers: [] })).toBe("chatter");
    for (const e of [
      { type: "peer-joined", peer: peer("x") },
      { type: "peer-left", peer: "x", reason: "left" },
      { type: "offer", session: "s", from: "x", sdp: "", etag: "" },
      { type: "candidates", session: "s", from: "x", frag: "" },
      { type: "session-closed", session: "s", by: "x", reason: "hangup" },
    ] as const) {
      expect(classOf(e)).toBe("protected");
      expect(coalesceKey(e)).toBeNull();
      expect(senderOf(e)).toBe("x");
    }
    expect(coalesceKey({ type: "peer-updated", peer: peer("x") })).toBe("peer-updated:x");
    expect(senderOf({ type: "nearby", peers: [] })).toBeNull();
  });

  it("admission and eviction", () => {
    const limits = { keep: 10, perSender: 3 };
    expect(admit({ total: 0, chatter: 0, fromSender: 0 }, limits)).toBeNull();
    expect(admit({ total: 5, chatter: 0, fromSender: 3 }, limits)).toBe("sender-quota");
    // Chatter makes room: 10 events of which 4 chatter is not full for protected ones.
    expect(admit({ total: 10, chatter: 4, fromSender: 0 }, limits)).toBeNull();
    expect(admit({ total: 12, chatter: 2, fromSender: 0 }, limits)).toBe("log-full");
    expect(chatterToDrop({ total: 11, chatter: 4 }, 10)).toBe(1);
    expect(chatterToDrop({ total: 13, chatter: 2 }, 10)).toBe(2);
    expect(chatterToDrop({ total: 9, chatter: 9 }, 10)).toBe(0);
    expect(defaultPerSender(1000)).toBe(125);
    expect(defaultPerSender(3)).toBe(1);
  });
});

describe("event log under hostile peers", () => {
  it("chatter from two peers cannot evict another peer's offer, answer and restart events", async () => {
    const room = freshRoom("chatter");
    const [ta, tb, tc, td] = await Promise.all(["a", "b", "c", "d"].map((p) => token(p, room)));
    const ja = await join(room, ta as string);
    const jb = await join(room, tb as string);
    await join(room, tc as string);
    await join(room, td as string);
    // a offers to b, b answers after the 202: a gets an `answer` event.
    const s1 = await offerUnanswered(room, ta as string, "b", "ufragA1");
    const eb = await poll(room, "b", tb as string, jb.body.cursor);
    const offer = eb.events.find((e) => e.type === "offer") as unknown as { etag: string };
    const ans = await call("POST", `/v1/rooms/${room}/sessions/${s1.sid}/answer`, {
      token: tb,
      headers: { "Content-Type": "application/sdp", "If-Match": offer.etag },
      body: sdp("ufragB1"),
    });
    expect(ans.status).toBe(204);
    // b restarts ICE by PATCH (a `restart` event) and offers a new session (an `offer` event).
    const rs = await call("PATCH", `/v1/rooms/${room}/sessions/${s1.sid}`, {
      token: tb,
      headers: {
        "Content-Type": "application/trickle-ice-sdpfrag",
        "If-Match": "*",
        Prefer: "wait=1",
      },
      body: frag("ufragB2", { pwd: "restartpwd0123456789ab" }),
    });
    expect(rs.status).toBe(202);
    const s2 = await offerUnanswered(room, tb as string, "a", "ufragB3");
    // c and d chatter: 400 PATCHes, more than twice the log, while a does not poll.
    for (let i = 0; i < 200; i++) {
      for (const t of [tc, td]) {
        const r = await call("PATCH", `/v1/rooms/${room}/peers/${t === tc ? "c" : "d"}`, {
          token: t,
          json: { meta: { i } },
        });
        expect(r.status).toBe(200);
      }
    }
    const got = await drain(room, "a", ta as string, ja.body.cursor);
    expect(got.events.map((e) => e.type)).toEqual([
      "peer-joined",
      "peer-joined",
      "peer-joined",
      "answer",
      "restart",
      "offer",
      "peer-updated",
      "peer-updated",
    ]);
    expect(got.events[3]).toMatchObject({ session: s1.sid, from: "b" });
    expect(got.events[4]).toMatchObject({ session: s1.sid, from: "b" });
    expect(got.events[5]).toMatchObject({ session: s2.sid, from: "b" });
    // Coalesced: only the latest state of each chatterer, in the order of their last change.
    expect(got.events.slice(6).map((e) => e.peer)).toEqual([
      expect.objectContaining({ id: "c", meta: { i: 199 } }),
      expect.objectContaining({ id: "d", meta: { i: 199 } }),
    ]);
  }, 30_000);

  it("a PATCH that changes nothing sends no event; a newer peer-updated replaces the pending one", async () => {
    const room = freshRoom("noop");
    const ta = await token("a", room);
    const tb = await token("b", room);
    const ja = await join(room, ta);
    await join(room, tb, { meta: { x: 1 }, position: { x: 1, y: 2 } });
    const start = (await drain(room, "a", ta, ja.body.cursor)).cursor;
    for (const body of [
      {},
      { meta: { x: 1 } },
      { position: { x: 1 } },
      { kind: "rover" },
      { meta: { y: null } },
    ]) {
      const r = await call("PATCH", `/v1/rooms/${room}/peers/b`, { token: tb, json: body });
      expect(r.status).toBe(200);
      expect(await r.json()).toMatchObject({ id: "b", meta: { x: 1 }, position: { x: 1, y: 2 } });
    }
    // A resume with the same state is silent too.
    expect((await join(room, tb, { meta: { x: 1 } })).res.status).toBe(200);
    expect((await poll(room, "a", ta, start)).events).toEqual([]);
    // Three changes while a does not poll: one event, the latest.
    for (const x of [2, 3, 4]) {
      await call("PATCH", `/v1/rooms/${room}/peers/b`, { token: tb, json: { meta: { x } } });
    }
    const got = await poll(room, "a", ta, start);
    expect(got.events).toEqual([
      expect.objectContaining({
        type: "peer-updated",
        peer: expect.objectContaining({ meta: { x: 4 } }),
      }),
    ]);
    // Once a has read it (its cursor moved on), the next change is a new event.
    await call("PATCH", `/v1/rooms/${room}/peers/b`, { token: tb, json: { meta: { x: 5 } } });
    const next = await poll(room, "a", ta, got.cursor);
    expect(next.events.map((e) => (e.peer as { meta: { x: number } }).meta.x)).toEqual([5]);
  });

  it("per-sender quota: a trickle flood gets 429 event-quota; other senders still reach the peer", async () => {
    const room = freshRoom("quota");
    const ta = await token("a", room);
    const tb = await token("b", room);
    const tc = await token("c", room);
    const ja = await join(room, ta);
    await join(room, tb);
    await join(room, tc);
    const s = await offerUnanswered(room, tc, "a", "ufragC1");
    let accepted = 0;
    let refused: Response | null = null;
    for (let i = 0; i < 100 && !refused; i++) {
      const r = await trickle(room, tc, s.sid, s.etag, "ufragC1");
      if (r.status === 204) accepted++;
      else refused = r;
    }
    // c's peer-joined, its offer and 58 candidates: 60 undelivered events from c in a's log.
    expect(accepted).toBe(58);
    const p = await problemOf(refused as Response, 429);
    expect(p.type).toMatch(/event-quota$/);
    expect(Number((refused as Response).headers.get("Retry-After"))).toBeGreaterThan(0);
    // b is another sender: its offer still reaches a.
    const sb = await offerUnanswered(room, tb, "a", "ufragB1");
    const got = await drain(room, "a", ta, ja.body.cursor);
    expect(got.events.filter((e) => e.type === "candidates")).toHaveLength(58);
    expect(got.events.at(-1)).toMatchObject({ type: "offer", session: sb.sid, from: "b" });
    // a has read everything: c may trickle again.
    expect((await trickle(room, tc, s.sid, s.etag, "ufragC1")).status).toBe(204);
  }, 20_000);

  it("per-sender quota counts what a reader has not read: events written to its SSE stream do not count, and a resumed stream still gets them", async () => {
    const room = freshRoom("quota-sse");
    const ta = await token("a", room);
    const tc = await token("c", room);
    const ja = await join(room, ta);
    await join(room, tc);
    const res = await sse(room, "a", ta, { after: ja.body.cursor });
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const dec = new TextDecoder();
    let out = "";
    const count = (type: string) => (out.match(new RegExp(`^event: ${type}$`, "gm")) ?? []).length;
    // a reads all along, as a client on a live stream does (an unread stream stalls the edge's
    // writes, and then its events do count: a is not reading).
    const reading = (async () => {
      for (;;) {
        const r = await reader.read().catch(() => ({ done: true, value: undefined }));
        if (r.done) return;
        out += dec.decode(r.value, { stream: true });
      }
    })();
    const readUntil = async (done: () => boolean) => {
      const end = Date.now() + 5_000;
      while (!done() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    };
    const s = await offerUnanswered(room, tc, "a", "ufragC1");
    await readUntil(() => count("offer") === 1);
    const offerBlock = out.split("\n\n").find((b) => /^event: offer$/m.test(b)) ?? "";
    const offerId = /^id: (\d+)$/m.exec(offerBlock)?.[1];
    expect(offerId).toBeDefined();
    // 80 candidates, 10 at a time, while a reads: more than c's quota (60) within the stream's
    // acknowledgement delay (2 s here), so a quota that counted written events would refuse some.
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const batch = Array.from({ length: 10 }, () => trickle(room, tc, s.sid, s.etag, "ufragC1"));
      statuses.push(...(await Promise.all(batch)).map((r) => r.status));
    }
    expect(statuses.filter((x) => x !== 204)).toEqual([]);
    await readUntil(() => count("candidates") === 80);
    expect(count("candidates")).toBe(80);
    await reader.cancel();
    await reading;
    // Written is not acknowledged: a stream resumed after the offer gets all 80 again.
    const resumed = await sse(room, "a", ta, { lastEventId: String(offerId) });
    const r2 = (resumed.body as ReadableStream<Uint8Array>).getReader();
    let again = "";
    const end = Date.now() + 5_000;
    while ((again.match(/^event: candidates$/gm) ?? []).length < 80 && Date.now() < end) {
      const r = await r2.read();
      if (r.done) break;
      again += dec.decode(r.value, { stream: true });
    }
    await r2.cancel();
    expect((again.match(/^event: candidates$/gm) ?? []).length).toBe(80);
  }, 20_000);

  it("signaling alone fills the log: nothing is dropped, refusable requests get 429 event-log-full, a leave still gets through", async () => {
    const room = freshRoom("full");
    const ta = await token("a", room);
    const ja = await join(room, ta);
    const senders: Record<string, { t: string; sid: string }> = {};
    // b and c fill their quota (60 each: peer-joined, offer, 58 candidates); d fills the rest.
    let refused: Response | null = null;
    for (const [from, n] of [
      ["b", 58],
      ["c", 58],
      ["d", 100],
    ] as const) {
      const t = await token(from, room);
      await join(room, t);
      const s = await offerUnanswered(room, t, "a", `ufrag${from}`);
      senders[from] = { t, sid: s.sid };
      for (let i = 0; i < n; i++) {
        const r = await trickle(room, t, s.sid, s.etag, `ufrag${from}`);
        if (r.status !== 204) {
          refused = r;
          break;
        }
      }
    }
    const p = await problemOf(refused as Response, 429);
    expect(p.type).toMatch(/event-log-full$/);
    // Chatter does not push signaling out of a full log.
    const tb = senders.b?.t as string;
    expect(
      (await call("PATCH", `/v1/rooms/${room}/peers/b`, { token: tb, json: { meta: { k: 1 } } }))
        .status,
    ).toBe(200);
    // c leaves: never refused; its session-closed and peer-left go in over the cap.
    expect(
      (await call("DELETE", `/v1/rooms/${room}/peers/c`, { token: senders.c?.t as string })).status,
    ).toBe(204);
    const got = await drain(room, "a", ta, ja.body.cursor);
    const count = (type: string, from: string) =>
      got.events.filter((e) => e.type === type && (e.from ?? e.by ?? e.peer) === from).length;
    expect(got.events).toHaveLength(152);
    for (const from of ["b", "c", "d"]) expect(count("offer", from)).toBe(1);
    expect(count("candidates", "b")).toBe(58);
    expect(count("candidates", "c")).toBe(58);
    expect(count("candidates", "d")).toBe(28);
    expect(got.events.slice(-2)).toEqual([
      expect.objectContaining({ type: "session-closed", session: senders.c?.sid, by: "c" }),
      expect.objectContaining({ type: "peer-left", peer: "c", reason: "left" }),
    ]);
  }, 20_000);
});
