import { describe, expect, it } from "vitest";
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
    expect(wrong.headers.get("Allow")).toBe("GET, HEAD, POST");
    // What Allow names works: HEAD is GET without the body.
    const head = await call("HEAD", "/v1/rooms/r1/peers", { token: t });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
    const wrong2 = await call("GET", "/v1/rooms/r1/sessions/abc/answer", { token: t });
    await problemOf(wrong2, 405);
    expect(wrong2.headers.get("Allow")).toBe("POST");
    // The health routes too (they were 404 "no such route").
    for (const path of ["/healthz", "/readyz"]) {
      const r = await call("POST", path);
      await problemOf(r, 405);
      expect(r.headers.get("Allow")).toBe("GET, HEAD");
    }
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
    // Any origin may read it, so nothing varies by origin (and no header twice).
    expect(err.headers.get("Vary") ?? "").not.toContain("Origin, Origin");
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
      body: sdp("ufr1"),
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
});
