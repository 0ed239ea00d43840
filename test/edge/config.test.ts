// Per-deployment configuration that the Worker reads (the room object has its own env from the
// test config): the app is called directly with a hand-built env.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { DEV_SECRET } from "../../shared/token.ts";
import { app } from "../../worker/app.ts";
import { freshRoom, problemOf, SECRET, sdp, token } from "./helpers.ts";

async function callWith(
  vars: Record<string, string | undefined>,
  method: string,
  path: string,
  init: { token?: string; headers?: Record<string, string>; body?: string; origin?: string } = {},
): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("Authorization", `Bearer ${init.token}`);
  const ctx = createExecutionContext();
  const res = await app.fetch(
    new Request(`${init.origin ?? "http://edge.test"}${path}`, {
      method,
      headers,
      body: init.body,
    }),
    { ...env, ...vars },
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return res;
}

const NO_TURN = { TURN_SECRET: undefined, TURN_URLS: undefined, STUN_URLS: undefined };

describe("deployment configuration", () => {
  it("CORS_ORIGINS: only listed origins are allowed, on preflights, answers and errors", async () => {
    const vars = { CORS_ORIGINS: "https://console.example, https://ops.example" };
    const pre = (origin: string) =>
      callWith(vars, "OPTIONS", "/v1/rooms/r1/peers", {
        headers: { Origin: origin, "Access-Control-Request-Method": "POST" },
      });
    expect((await pre("https://ops.example")).headers.get("Access-Control-Allow-Origin")).toBe(
      "https://ops.example",
    );
    expect(
      (await pre("https://evil.example")).headers.get("Access-Control-Allow-Origin"),
    ).toBeNull();
    const t = await token("a", "*");
    const ok = await callWith(vars, "GET", "/v1/rooms/r-cors/peers", {
      token: t,
      headers: { Origin: "https://console.example" },
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("Access-Control-Allow-Origin")).toBe("https://console.example");
    const err = await callWith(vars, "GET", "/v1/nothing", {
      token: t,
      headers: { Origin: "https://evil.example" },
    });
    await problemOf(err, 404);
    expect(err.headers.get("Access-Control-Allow-Origin")).toBeNull();
    // An error to an allowed origin: its CORS headers, and Vary once (a cache keys on it).
    const allowedErr = await callWith(vars, "GET", "/v1/nothing", {
      token: t,
      headers: { Origin: "https://console.example" },
    });
    await problemOf(allowedErr, 404);
    expect(allowedErr.headers.get("Access-Control-Allow-Origin")).toBe("https://console.example");
    expect(allowedErr.headers.get("Vary")).toBe("Origin");
    expect(err.headers.get("Vary")).toBe("Origin");
    // An error raised by a handler (onError), not only the catch-all 404.
    const thrown = await callWith(vars, "GET", "/v1/rooms/r-cors/peers", {
      headers: { Origin: "https://console.example" },
    });
    await problemOf(thrown, 401);
    expect(thrown.headers.get("Access-Control-Allow-Origin")).toBe("https://console.example");
    expect(thrown.headers.get("Vary")).toBe("Origin");
  });

  it("a ROVERLINK_SECRET shorter than 32 bytes is refused: 503 with a clear detail", async () => {
    const short = "s".repeat(31);
    const r = await callWith({ ROVERLINK_SECRET: short }, "GET", "/v1/rooms/r1/peers", {
      token: await token("a", "r1", { secret: short }),
    });
    expect((await problemOf(r, 503)).detail).toMatch(/ROVERLINK_SECRET is shorter than 32 bytes/);
  });

  it("PUBLIC_ORIGIN: session Location uses it, never the request's Host", async () => {
    const room = freshRoom("origin");
    const ta = await token("a", room);
    const vars = { PUBLIC_ORIGIN: "https://edge.example.net" };
    await callWith(vars, "POST", `/v1/rooms/${room}/peers`, { token: ta });
    await callWith(vars, "POST", `/v1/rooms/${room}/peers`, { token: await token("b", room) });
    const offer = await callWith(vars, "POST", `/v1/rooms/${room}/peers/b/sessions`, {
      token: ta,
      headers: { "Content-Type": "application/sdp", Prefer: "wait=1", Host: "evil.example" },
      body: sdp("ufragA1"),
    });
    expect(offer.status).toBe(202);
    expect(offer.headers.get("Location")).toMatch(
      new RegExp(`^https://edge\\.example\\.net/v1/rooms/${room}/sessions/[^/]+$`),
    );
  });

  it("no ROVERLINK_SECRET: /v1 is 503 with Retry-After, health still answers", async () => {
    const vars = { ROVERLINK_SECRET: undefined };
    const r = await callWith(vars, "GET", "/v1/ice-servers", { token: await token("a", "*") });
    const p = await problemOf(r, 503);
    expect(p.detail).toContain("ROVERLINK_SECRET");
    expect(Number(r.headers.get("Retry-After"))).toBeGreaterThan(0);
    expect((await callWith(vars, "GET", "/healthz")).status).toBe(200);
  });

  it("the public development secret serves loopback only; /readyz says why the edge cannot serve", async () => {
    const vars = { ROVERLINK_SECRET: DEV_SECRET };
    const t = await token("a", "r-dev", { secret: DEV_SECRET });
    const remote = await callWith(vars, "GET", "/v1/ice-servers", { token: t });
    expect((await problemOf(remote, 503)).detail).toMatch(/public development secret/);
    const ready = await callWith(vars, "GET", "/readyz");
    expect((await problemOf(ready, 503)).detail).toMatch(/public development secret/);
    expect((await callWith(vars, "GET", "/healthz")).status).toBe(200);
    for (const origin of ["http://127.0.0.1:8787", "http://localhost:8787", "http://[::1]:8787"]) {
      const local = await callWith(vars, "GET", "/v1/ice-servers", { token: t, origin });
      expect(local.status).toBe(200);
      expect((await callWith(vars, "GET", "/readyz", { origin })).status).toBe(200);
    }
    // Nor as the previous secret of a rotation.
    const prev = { ROVERLINK_SECRET_PREVIOUS: DEV_SECRET };
    await problemOf(await callWith(prev, "GET", "/v1/ice-servers", { token: t }), 503);
  });

  it("rotation: tokens signed with ROVERLINK_SECRET_PREVIOUS are still taken, others are not", async () => {
    const next = "next-secret-next-secret-next-secret-01";
    const old = await token("a", "r-rot"); // signed with SECRET, the edge's before the rotation
    const fresh = await token("a", "r-rot", { secret: next });
    const other = await token("a", "r-rot", { secret: "other-secret-other-secret-other-secret" });
    const rotating = { ROVERLINK_SECRET: next, ROVERLINK_SECRET_PREVIOUS: SECRET };
    expect((await callWith(rotating, "GET", "/v1/ice-servers", { token: old })).status).toBe(200);
    expect((await callWith(rotating, "GET", "/v1/ice-servers", { token: fresh })).status).toBe(200);
    const refused = await callWith(rotating, "GET", "/v1/ice-servers", { token: other });
    expect((await problemOf(refused, 401)).detail).toBe("token signature does not match");
    // Once the rotation is over, the old token is refused.
    const done = await callWith({ ROVERLINK_SECRET: next }, "GET", "/v1/ice-servers", {
      token: old,
    });
    expect((await problemOf(done, 401)).detail).toBe("token signature does not match");
  });

  it("/readyz: ready, with the settings the edge does not use as given", async () => {
    const ok = await callWith(NO_TURN, "GET", "/readyz");
    expect(ok.status).toBe(200);
    expect(ok.headers.get("Cache-Control")).toBe("no-store");
    expect(await ok.json()).toEqual({ ready: true, ignored: [] });
    const odd = await callWith(
      { PRESENCE_TTL_S: "30s", MAX_PEERS_PER_ROOM: "0", TURN_SECRET: "s", TURN_URLS: undefined },
      "GET",
      "/readyz",
    );
    expect(odd.status).toBe(200);
    expect(((await odd.json()) as { ignored: string[] }).ignored).toEqual([
      'PRESENCE_TTL_S="30s" is not a positive number: its default applies',
      'MAX_PEERS_PER_ROOM="0" is not a positive number: its default applies',
      "TURN_SECRET is set without TURN_URLS: no TURN is handed out from it",
    ]);
    const none = await callWith({ ROVERLINK_SECRET: undefined }, "GET", "/readyz");
    expect((await problemOf(none, 503)).detail).toMatch(/no ROVERLINK_SECRET/);
    expect(Number(none.headers.get("Retry-After"))).toBeGreaterThan(0);
  });

  it("no NEARBY_RADIUS: the join answer names no radius", async () => {
    const room = freshRoom("no-near");
    const j = await callWith({ NEARBY_RADIUS: undefined }, "POST", `/v1/rooms/${room}/peers`, {
      token: await token("a", room),
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    expect(j.status).toBe(201);
    expect(await j.json()).not.toHaveProperty("room");
  });

  it("no ICE configuration: nothing handed out, in /ice-servers, the join and the Link headers", async () => {
    const room = freshRoom("no-ice");
    const ta = await token("a", room);
    const ja = await callWith(NO_TURN, "POST", `/v1/rooms/${room}/peers`, {
      token: ta,
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    expect(((await ja.json()) as { iceServers: unknown[] }).iceServers).toEqual([]);
    const ice = await callWith(NO_TURN, "GET", "/v1/ice-servers", { token: ta });
    expect(((await ice.json()) as { iceServers: unknown[] }).iceServers).toEqual([]);
    await callWith(NO_TURN, "POST", `/v1/rooms/${room}/peers`, { token: await token("b", room) });
    const offer = await callWith(NO_TURN, "POST", `/v1/rooms/${room}/peers/b/sessions`, {
      token: ta,
      headers: { "Content-Type": "application/sdp", Prefer: "wait=1" },
      body: sdp("ufr1"),
    });
    expect(offer.status).toBe(202);
    expect(offer.headers.get("Link")).toBeNull();
  });

  it("STUN only: a STUN Link without credentials", async () => {
    const room = freshRoom("stun");
    const ta = await token("a", room);
    const vars = { ...NO_TURN, STUN_URLS: "stun:127.0.0.1:3478" };
    await callWith(vars, "POST", `/v1/rooms/${room}/peers`, { token: ta });
    await callWith(vars, "POST", `/v1/rooms/${room}/peers`, { token: await token("b", room) });
    const offer = await callWith(vars, "POST", `/v1/rooms/${room}/peers/b/sessions`, {
      token: ta,
      headers: { "Content-Type": "application/sdp", Prefer: "wait=1" },
      body: sdp("ufr1"),
    });
    expect(offer.headers.get("Link")).toBe('<stun:127.0.0.1:3478>; rel="ice-server"');
  });

  it("OFFER_WAIT_S is the wait without Prefer", async () => {
    const room = freshRoom("wait");
    const ta = await token("a", room);
    const vars = { OFFER_WAIT_S: "1" };
    await callWith(vars, "POST", `/v1/rooms/${room}/peers`, { token: ta });
    await callWith(vars, "POST", `/v1/rooms/${room}/peers`, { token: await token("b", room) });
    const offer = await callWith(vars, "POST", `/v1/rooms/${room}/peers/b/sessions`, {
      token: ta,
      headers: { "Content-Type": "application/sdp" },
      body: sdp("ufr1"),
    });
    expect(offer.status).toBe(202);
    expect(offer.headers.get("Preference-Applied")).toBeNull();
  });
});
