import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, pair, poll, problemOf, sdp, session } from "./helpers.ts";

const stubOf = (room: string) => env.ROOMS.get(env.ROOMS.idFromName(room));

/** Make time pass for the room: backdate what the alarm compares against. */
async function age(room: string, sql: string): Promise<void> {
  await runInDurableObject(stubOf(room), (_obj, state: DurableObjectState) => {
    state.storage.sql.exec(sql);
  });
}

describe("expiry (one alarm, earliest deadline first)", () => {
  it("a peer that stopped polling expires: peer-left expired to the others, its sessions close", async () => {
    const p = await pair("expire");
    const s = await session(p);
    // a keeps polling, b went silent 31 s ago (PRESENCE_TTL_S=30).
    await age(p.room, `UPDATE peers SET last_seen = ${Date.now() - 31_000} WHERE id = 'b'`);
    expect(await runDurableObjectAlarm(stubOf(p.room))).toBe(true);
    const ea = await poll(p.room, "a", p.ta, p.ca);
    expect(ea.events.map((e) => e.type)).toEqual(["session-closed", "peer-left"]);
    expect(ea.events[1]).toMatchObject({ peer: "b", reason: "expired" });
    await problemOf(
      await call("GET", `/v1/rooms/${p.room}/sessions/${s.sid}`, { token: p.ta }),
      404,
    );
    await problemOf(
      await call("GET", `/v1/rooms/${p.room}/peers/b/events?wait=0`, { token: p.tb }),
      404,
    );
    // Idempotent: running the alarm again changes nothing.
    await runDurableObjectAlarm(stubOf(p.room));
    expect((await poll(p.room, "a", p.ta, ea.cursor)).events).toEqual([]);
    const peers = (await (
      await call("GET", `/v1/rooms/${p.room}/peers`, { token: p.ta })
    ).json()) as { peers: { id: string }[] };
    expect(peers.peers.map((x) => x.id)).toEqual(["a"]);
  });

  it("a peer that keeps polling stays", async () => {
    const p = await pair("stay");
    await age(p.room, `UPDATE peers SET last_seen = ${Date.now() - 10_000}`);
    await runDurableObjectAlarm(stubOf(p.room));
    const peers = (await (
      await call("GET", `/v1/rooms/${p.room}/peers`, { token: p.ta })
    ).json()) as { peers: unknown[] };
    expect(peers.peers).toHaveLength(2);
  });

  it("a peer whose long-poll is parked stays present even when its last poll is old", async () => {
    const p = await pair("parked");
    const parked = poll(p.room, "b", p.tb, p.cb, 10);
    await new Promise((r) => setTimeout(r, 300));
    await age(p.room, `UPDATE peers SET last_seen = ${Date.now() - 60_000}`);
    await runDurableObjectAlarm(stubOf(p.room));
    // a was not parked: it expired, and b's parked poll hears it at once.
    const got = await parked;
    expect(got.events).toEqual([
      expect.objectContaining({ type: "peer-left", peer: "a", reason: "expired" }),
    ]);
    const peers = (await (
      await call("GET", `/v1/rooms/${p.room}/peers`, { token: p.tb })
    ).json()) as { peers: { id: string }[] };
    expect(peers.peers.map((x) => x.id)).toEqual(["b"]);
  });

  it("a restart nobody answers lapses; the session keeps its answered state", async () => {
    const p = await pair("restart-ttl");
    const s = await session(p);
    const url = `/v1/rooms/${p.room}/sessions/${s.sid}`;
    const r = await call("POST", url, {
      token: p.ta,
      headers: { "Content-Type": "application/sdp", "If-Match": s.etag, Prefer: "wait=1" },
      body: sdp("ufragA2"),
    });
    expect(r.status).toBe(202);
    await age(
      p.room,
      `UPDATE sessions SET pending = json_set(pending, '$.createdAt', ${Date.now() - 121_000})`,
    );
    await runDurableObjectAlarm(stubOf(p.room));
    const info = (await (await call("GET", url, { token: p.ta })).json()) as Record<
      string,
      unknown
    >;
    expect(info).toMatchObject({ state: "answered", etag: s.etag });
    expect(info.pending).toBeUndefined();
    expect(String(info.answer)).toContain("ufragB1");
    // The restart's etag lapsed with it: answering it now is 412.
    await problemOf(
      await call("POST", `${url}/answer`, {
        token: p.tb,
        headers: { "Content-Type": "application/sdp", "If-Match": r.headers.get("ETag") as string },
        body: sdp("ufragB2"),
      }),
      412,
    );
  });

  it("an offer nobody answers expires and the offerer is told", async () => {
    const p = await pair("offer-ttl");
    const r = await call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
      token: p.ta,
      headers: { "Content-Type": "application/sdp", Prefer: "wait=1" },
      body: sdp("ufr1"),
    });
    expect(r.status).toBe(202);
    const sid = (r.headers.get("Location") as string).split("/").pop() as string;
    // SESSION_OFFER_TTL_S defaults to 120 s: backdate the pending offer.
    await age(
      p.room,
      `UPDATE sessions SET pending = json_set(pending, '$.createdAt', ${Date.now() - 121_000})`,
    );
    await runDurableObjectAlarm(stubOf(p.room));
    const ea = await poll(p.room, "a", p.ta, p.ca);
    expect(ea.events).toEqual([
      expect.objectContaining({ type: "session-closed", session: sid, reason: "expired" }),
    ]);
    await problemOf(await call("GET", `/v1/rooms/${p.room}/sessions/${sid}`, { token: p.ta }), 404);
  });

  it("a peer's presence ends when its token expires, parked poll or not: peer-left expired, cause token-expired", async () => {
    const p = await pair("token-exp");
    const s = await session(p);
    // The edge recorded when b's token stops being accepted (exp + 30 s leeway).
    const recorded = await runInDurableObject(stubOf(p.room), (_o, state: DurableObjectState) =>
      Number(state.storage.sql.exec("SELECT token_exp AS t FROM peers WHERE id = 'b'").one().t),
    );
    const exp = JSON.parse(
      atob((p.tb.split(".")[1] as string).replace(/-/g, "+").replace(/_/g, "/")),
    ).exp;
    expect(recorded).toBe((exp + 30) * 1000);
    // b parks a poll (which would keep it present), then its token runs out.
    const parked = poll(p.room, "b", p.tb, s.cb, 10);
    await new Promise((r) => setTimeout(r, 300));
    await age(p.room, `UPDATE peers SET token_exp = ${Date.now() - 1} WHERE id = 'b'`);
    expect(await runDurableObjectAlarm(stubOf(p.room))).toBe(true);
    // The parked poll ends when b's presence does (how it ends is not what this test checks).
    await parked.catch(() => undefined);
    const ea = await poll(p.room, "a", p.ta, p.ca);
    expect(ea.events).toEqual([
      expect.objectContaining({ type: "session-closed", session: s.sid, reason: "token-expired" }),
      // v1 fixes peer-left's reasons: "expired", the token in the extension field `cause`.
      expect.objectContaining({
        type: "peer-left",
        peer: "b",
        reason: "expired",
        cause: "token-expired",
      }),
    ]);
    await problemOf(
      await call("GET", `/v1/rooms/${p.room}/sessions/${s.sid}`, { token: p.ta }),
      404,
    );
  });
});
