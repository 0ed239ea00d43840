import {
  createExecutionContext,
  runInDurableObject,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../worker/app.ts";
import { iceServersFor, turnRestCredential } from "../../worker/ice-servers.ts";
import { call, freshRoom, join, pair, problemOf, sdp, token, turnCredential } from "./helpers.ts";

/** A GET through the app with some vars changed (the room object keeps the test config's). */
async function callWith(vars: Record<string, string>, method: string, path: string, tok: string) {
  const ctx = createExecutionContext();
  const res = await app.fetch(
    new Request(`http://edge.test${path}`, { method, headers: { Authorization: `Bearer ${tok}` } }),
    { ...env, ...vars },
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return res;
}

const stubOf = (room: string) => env.ROOMS.get(env.ROOMS.idFromName(room));
type IceBody = { iceServers: { username?: string; credential?: string }[]; ttl: number };

// The edge test config sets TURN_SECRET/TURN_URLS/TURN_TTL_S; test/edge/config.test.ts covers the
// unconfigured and STUN-only deployments through the app.
describe("ICE servers", () => {
  it("ICE servers: coturn TURN REST credentials, checked independently; Link headers on 201", async () => {
    const iceRoom = freshRoom("ice");
    const t = await token("rover-9", iceRoom, { ttlS: 3600 });
    await join(iceRoom, t);
    const res = await call("GET", "/v1/ice-servers", { token: t });
    const body = (await res.json()) as {
      iceServers: { urls: string[]; username: string; credential: string }[];
      ttl: number;
    };
    expect(body.ttl).toBeGreaterThan(590);
    expect(body.ttl).toBeLessThanOrEqual(600);
    const turn = body.iceServers[0];
    expect(turn?.urls).toEqual([
      "turn:127.0.0.1:3478?transport=udp",
      "turn:127.0.0.1:3478?transport=tcp",
    ]);
    const [expiry, sub] = (turn?.username ?? "").split(":");
    expect(sub).toBe("rover-9");
    expect(Number(expiry) - Date.now() / 1000).toBeGreaterThan(590);
    expect(turn?.credential).toBe(await turnCredential(turn?.username ?? ""));

    const p = await pair("ice");
    const offer = call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
      token: p.ta,
      headers: { "Content-Type": "application/sdp", Prefer: "wait=1" },
      body: sdp("ufr1"),
    });
    const links = (await offer).headers.get("Link") ?? "";
    expect(links).toContain('rel="ice-server"');
    expect(links).toContain("<turn:127.0.0.1:3478?transport=udp>");
    expect(links).toContain('credential-type="password"');
  });

  it("ICE servers: nothing configured, nothing handed out; STUN only when set", async () => {
    const none = await iceServersFor({} as never, "x");
    expect(none.iceServers).toEqual([]);
    const stun = await iceServersFor({ STUN_URLS: "stun:stun.example:3478" } as never, "x");
    expect(stun.iceServers).toEqual([{ urls: ["stun:stun.example:3478"] }]);
    const c = await turnRestCredential("s", "peer", 60, 1_000_000);
    expect(c.username).toBe("1060:peer");
    // Half a TURN configuration hands out nothing; STUN and TURN together come in that order.
    const half = await iceServersFor({ TURN_SECRET: "s" } as never, "x");
    expect(half.iceServers).toEqual([]);
    const both = await iceServersFor(
      {
        STUN_URLS: "stun:a:3478, stun:b:3478",
        TURN_URLS: "turn:t:3478",
        TURN_SECRET: "s",
      } as never,
      "x",
    );
    expect(both.ttl).toBe(3600);
    expect(both.iceServers[0]).toEqual({ urls: ["stun:a:3478", "stun:b:3478"] });
    expect(both.iceServers[1]).toMatchObject({
      urls: ["turn:t:3478"],
      username: expect.stringMatching(/^\d+:x$/),
    });
  });

  it("a peer that has not joined gets them too (nothing kept for it); a token for every room must name one", async () => {
    const room = freshRoom("ice-member");
    const t = await token("m", room, { ttlS: 30 });
    // As a WHIP client does: ICE servers first, then the offer. The contract's route has no
    // precondition; credentials are minted fresh and live no longer than the token.
    const before = await call("GET", "/v1/ice-servers", { token: t });
    expect(before.status).toBe(200);
    const body = (await before.json()) as IceBody;
    expect(body.ttl).toBeLessThanOrEqual(30);
    expect(body.iceServers.some((s) => s.credential !== undefined)).toBe(true);
    const kept = await runInDurableObject(stubOf(room), (_o, state: DurableObjectState) =>
      state.storage.sql.exec("SELECT count(*) AS n FROM ice WHERE peer = 'm'").one(),
    );
    expect(kept.n).toBe(0);
    const roamer = await token("m", "*");
    await problemOf(await call("GET", "/v1/ice-servers", { token: roamer }), 400);
    await problemOf(await call("GET", "/v1/ice-servers?room=other", { token: t }), 403);
    await join(room, t);
    expect((await call("GET", `/v1/ice-servers?room=${room}`, { token: roamer })).status).toBe(200);
    const cached = await runInDurableObject(stubOf(room), (_o, state: DurableObjectState) =>
      state.storage.sql.exec("SELECT count(*) AS n FROM ice WHERE peer = 'm'").one(),
    );
    expect(cached.n).toBe(1);
  });

  it("credentials live no longer than the token, and are cached per peer", async () => {
    const room = freshRoom("ice-ttl");
    const short = await token("s", room, { ttlS: 20 });
    await join(room, short);
    const got = (await (await call("GET", "/v1/ice-servers", { token: short })).json()) as IceBody;
    expect(got.ttl).toBeLessThanOrEqual(20);
    const expiry = Number(got.iceServers[0]?.username?.split(":")[0]);
    expect(expiry).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 20);
    // Cached: mark the stored credential; the next answer is the marked one, not a new mint.
    await runInDurableObject(stubOf(room), (_o, state: DurableObjectState) => {
      state.storage.sql.exec(
        "UPDATE ice SET body = json_set(body, '$.iceServers[0].credential', 'from-cache') WHERE peer = 's'",
      );
    });
    const again = (await (
      await call("GET", "/v1/ice-servers", { token: short })
    ).json()) as IceBody;
    expect(again.iceServers[0]?.credential).toBe("from-cache");
    // A new token that ends sooner than the cached credential: a fresh, shorter one.
    const shorter = await token("s", room, { ttlS: 5 });
    const fresh = (await (
      await call("GET", "/v1/ice-servers", { token: shorter })
    ).json()) as IceBody;
    expect(fresh.iceServers[0]?.credential).not.toBe("from-cache");
    expect(fresh.ttl).toBeLessThanOrEqual(5);
  });

  it("a credential cached under other TURN settings is not reused (a rotated TURN_SECRET)", async () => {
    const room = freshRoom("ice-rot");
    const t = await token("r", room, { ttlS: 3600 });
    await join(room, t);
    const first = (await (await call("GET", "/v1/ice-servers", { token: t })).json()) as IceBody;
    const again = (await (await call("GET", "/v1/ice-servers", { token: t })).json()) as IceBody;
    expect(again.iceServers[0]?.credential).toBe(first.iceServers[0]?.credential); // cached
    const rotated = (await (
      await callWith({ TURN_SECRET: "turn-secret-rotated" }, "GET", "/v1/ice-servers", t)
    ).json()) as IceBody;
    const turn = rotated.iceServers[0];
    expect(turn?.credential).not.toBe(first.iceServers[0]?.credential);
    expect(turn?.username?.endsWith(":r")).toBe(true);
    // Minted under the new secret (coturn checks HMAC(secret, username)).
    expect(turn?.credential).toBe(
      await turnCredential(turn?.username ?? "", "turn-secret-rotated"),
    );
    // An entry stored before the tag existed (a bare array) is minted afresh too.
    await runInDurableObject(stubOf(room), (_o, state: DurableObjectState) => {
      state.storage.sql.exec(
        `UPDATE ice SET body = '[{"urls":["turn:x"],"username":"u","credential":"legacy"}]' WHERE peer = 'r'`,
      );
    });
    const legacy = (await (await call("GET", "/v1/ice-servers", { token: t })).json()) as IceBody;
    expect(legacy.iceServers[0]?.credential).not.toBe("legacy");
  });
});
