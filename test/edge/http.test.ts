import { describe, expect, it } from "vitest";
import { iceServersFor, turnRestCredential } from "../../worker/ice-servers.ts";
import { call, pair, problemOf, sdp, token } from "./helpers.ts";

describe("HTTP surface", () => {
  it("healthz needs no token; unknown routes 404; wrong methods 405 with Allow", async () => {
    const h = await call("GET", "/healthz");
    expect(h.status).toBe(200);
    expect(await h.text()).toBe("ok");
    const t = await token("a", "*");
    await problemOf(await call("GET", "/v1/nothing-here", { token: t }), 404);
    const wrong = await call("PUT", "/v1/rooms/r1/peers", { token: t });
    await problemOf(wrong, 405);
    expect(wrong.headers.get("Allow")).toBe("GET, POST");
    const wrong2 = await call("GET", "/v1/rooms/r1/sessions/abc/answer", { token: t });
    await problemOf(wrong2, 405);
    expect(wrong2.headers.get("Allow")).toBe("POST");
  });

  it("OPTIONS needs no token and says what the routes accept", async () => {
    const r = await call("OPTIONS", "/v1/rooms/r1/peers/b/sessions");
    expect(r.status).toBe(204);
    expect(r.headers.get("Accept-Post")).toBe("application/sdp");
    expect(r.headers.get("Accept-Patch")).toBe("application/trickle-ice-sdpfrag");
  });

  it("CORS: preflight 204 with allowed and exposed headers; errors carry CORS headers too", async () => {
    const pre = await call("OPTIONS", "/v1/rooms/r1/peers/b/sessions", {
      headers: {
        Origin: "https://console.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,if-match",
      },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers.get("Access-Control-Allow-Origin")).toBe("*");
    const allowed = (pre.headers.get("Access-Control-Allow-Headers") ?? "").toLowerCase();
    for (const h of ["authorization", "content-type", "if-match", "prefer", "last-event-id"])
      expect(allowed).toContain(h);
    const err = await call("GET", "/v1/rooms/r1/peers", {
      headers: { Origin: "https://console.example" },
    });
    expect(err.status).toBe(401);
    expect(err.headers.get("Access-Control-Allow-Origin")).toBe("*");
    for (const h of ["Location", "ETag", "Link", "Retry-After", "Accept-Post", "Accept-Patch"])
      expect(err.headers.get("Access-Control-Expose-Headers")).toContain(h);
    // Every kind of error response: 404, 405, 400 and 409 from the room object, too.
    const t = await token("a", "*");
    const origin = { Origin: "https://console.example" };
    const p = await pair("cors");
    for (const [method, path, status] of [
      ["GET", "/v1/nothing-here", 404],
      ["PUT", "/v1/rooms/r1/peers", 405],
      ["GET", "/v1/rooms/bad%20room/peers", 400],
      ["GET", `/v1/rooms/${p.room}/sessions/nope`, 404],
    ] as const) {
      const r = await call(method, path, { token: t, headers: origin });
      await problemOf(r, status);
      expect(r.headers.get("Access-Control-Allow-Origin")).toBe("*");
      expect(r.headers.get("Access-Control-Expose-Headers")).toContain("Retry-After");
    }
    const absent = await call("POST", `/v1/rooms/${p.room}/peers/zed/sessions`, {
      token: p.ta,
      headers: { ...origin, "Content-Type": "application/sdp" },
      body: sdp("u1"),
    });
    await problemOf(absent, 409);
    expect(absent.headers.get("Access-Control-Allow-Origin")).toBe("*");
    // And successful ones expose what a browser needs to read.
    const ok = await call("POST", `/v1/rooms/${p.room}/peers`, {
      token: p.ta,
      headers: origin,
      json: {},
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("Access-Control-Allow-Origin")).toBe("*");
    expect(ok.headers.get("Access-Control-Expose-Headers")).toContain("Location");
  });

  it("ICE servers: coturn TURN REST credentials, checked independently; Link headers on 201", async () => {
    const t = await token("rover-9", "*");
    const res = await call("GET", "/v1/ice-servers", { token: t });
    const body = (await res.json()) as {
      iceServers: { urls: string[]; username: string; credential: string }[];
      ttl: number;
    };
    expect(body.ttl).toBe(600);
    const turn = body.iceServers[0];
    expect(turn?.urls).toEqual([
      "turn:127.0.0.1:3478?transport=udp",
      "turn:127.0.0.1:3478?transport=tcp",
    ]);
    const [expiry, sub] = (turn?.username ?? "").split(":");
    expect(sub).toBe("rover-9");
    expect(Number(expiry) - Date.now() / 1000).toBeGreaterThan(590);
    const key = await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode("turn-secret-for-tests"),
      { name: "HMAC", hash: "SHA-1" },
      false,
      ["sign"],
    );
    const mac = new Uint8Array(
      await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(turn?.username ?? "")),
    );
    expect(turn?.credential).toBe(btoa(String.fromCharCode(...mac)));

    const p = await pair("ice");
    const offer = call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
      token: p.ta,
      headers: { "Content-Type": "application/sdp", Prefer: "wait=1" },
      body: sdp("u1"),
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

  it("rate limit: past 600 requests a minute a subject gets 429 with Retry-After", async () => {
    const t = await token(`hasty-${Date.now()}`, "*");
    let limited: Response | null = null;
    for (let i = 0; i < 700 && !limited; i++) {
      const r = await call("GET", "/v1/ice-servers", { token: t });
      if (r.status === 429) limited = r;
      else await r.arrayBuffer();
    }
    expect(limited).not.toBeNull();
    await problemOf(limited as Response, 429);
    expect(Number((limited as Response).headers.get("Retry-After"))).toBeGreaterThan(0);
    // Another subject is not affected.
    expect((await call("GET", "/v1/ice-servers", { token: await token("calm", "*") })).status).toBe(
      200,
    );
  });
});
