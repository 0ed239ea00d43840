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

  it("an offer nobody answers expires and the offerer is told", async () => {
    const p = await pair("offer-ttl");
    const r = await call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
      token: p.ta,
      headers: { "Content-Type": "application/sdp", Prefer: "wait=1" },
      body: sdp("u1"),
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
});
