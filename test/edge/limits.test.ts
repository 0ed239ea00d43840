import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../worker/app.ts";
import { CAND, call, frag, freshRoom, join, pair, problemOf, session, token } from "./helpers.ts";

/** Call until 429 (at most 1300 times: a burst may straddle two limiter windows); the 429. */
async function exhaust(path: string, tok: string): Promise<Response> {
  for (let i = 0; i < 1300; i++) {
    const r = await call("GET", path, { token: tok });
    if (r.status === 429) return r;
    await r.arrayBuffer();
  }
  throw new Error(`no 429 after 1300 requests to ${path}`);
}

/** The app with some bindings replaced (as in config.test.ts). */
async function appCall(
  vars: Record<string, unknown>,
  method: string,
  path: string,
  init: { token: string; headers?: Record<string, string> },
): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("Authorization", `Bearer ${init.token}`);
  const ctx = createExecutionContext();
  const res = await app.fetch(
    new Request(`http://edge.test${path}`, { method, headers }),
    { ...env, ...vars },
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return res;
}

describe("limits", () => {
  it("rate limit: past 600 requests a minute a subject gets 429 with Retry-After", async () => {
    const room = freshRoom("hasty");
    const t = await token(`hasty-${Date.now()}`, "*");
    const limited = await exhaust(`/v1/rooms/${room}/peers`, t);
    await problemOf(limited, 429);
    expect(Number(limited.headers.get("Retry-After"))).toBeGreaterThan(0);
    // Another subject is not affected.
    const calm = await token("calm", "*");
    expect((await call("GET", `/v1/rooms/${room}/peers`, { token: calm })).status).toBe(200);
  }, 30_000);

  it("one room's traffic cannot rate-limit the same subject in another room, nor its presence", async () => {
    const busy = freshRoom("busy");
    const quiet = freshRoom("quiet");
    const sub = `roamer-${Date.now()}`;
    const t = await token(sub, "*");
    const joined = await join(busy, t);
    expect(joined.res.status).toBe(201);
    await problemOf(await exhaust(`/v1/rooms/${busy}/peers`, t), 429);
    // The same subject in another room has its own bucket.
    expect((await join(quiet, t)).res.status).toBe(201);
    expect((await call("GET", `/v1/rooms/${quiet}/peers`, { token: t })).status).toBe(200);
    // In the busy room, presence (events, resume) still goes through: the peer does not expire.
    const polled = await call(
      "GET",
      `/v1/rooms/${busy}/peers/${sub}/events?wait=0&after=${joined.body.cursor}`,
      { token: t },
    );
    expect(polled.status).toBe(200);
    expect((await join(busy, t)).res.status).toBe(200);
  }, 30_000);

  it("the client address is a second guard, presence apart (RATE_LIMITER_ADDR)", async () => {
    // SMALL_LIMITER (20 a minute, test config) stands in for the 3000-a-minute address limiter.
    const vars = {
      RATE_LIMITER_ADDR: (env as unknown as { SMALL_LIMITER: RateLimit }).SMALL_LIMITER,
    };
    const room = freshRoom("addr");
    const get = async (sub: string, from: string) =>
      appCall(vars, "GET", `/v1/rooms/${room}/peers`, {
        token: await token(sub, room),
        headers: { "CF-Connecting-IP": from },
      });
    // The local limiter's windows are wall-clock minutes: a run that straddles one is run again
    // (from a fresh address) in the next, where it cannot straddle another.
    const minute = () => Math.floor(Date.now() / 60_000);
    let addr = "";
    let limited: Response | null = null;
    let served = 0;
    for (let attempt = 0; attempt < 2; attempt++) {
      const began = minute();
      addr = `198.51.100.${Math.floor(Math.random() * 250)}`;
      limited = null;
      served = 0;
      for (let i = 0; i < 30 && !limited; i++) {
        const r = await get(`s${attempt}-${i}`, addr);
        if (r.status === 429) limited = r;
        else served++;
      }
      if (minute() === began) break;
    }
    // Many subjects, one address: stopped by the address guard. The request that crossed the
    // limit was served (no request waits for its own check: worker/rate-verdicts.ts); its verdict
    // refuses every later one.
    expect(served).toBe(21);
    expect((await problemOf(limited as Response, 429)).detail).toContain("client address");
    // Another address is served; presence from the limited address too.
    expect((await get("s0", "203.0.113.77")).status).toBe(200);
    const join = await appCall(vars, "POST", `/v1/rooms/${room}/peers`, {
      token: await token("late", room),
      headers: { "CF-Connecting-IP": addr },
    });
    expect(join.status).toBe(201);
  }, 60_000);

  it("413 for sdpfrag bodies over 64 KiB (PATCH and answer) and JSON over 16 KiB (PATCH peer)", async () => {
    const p = await pair("limits");
    const s = await session(p);
    const url = `/v1/rooms/${p.room}/sessions/${s.sid}`;
    const big = frag("ufragA1", { candidates: Array.from({ length: 1200 }, () => CAND) });
    expect(big.length).toBeGreaterThan(64 * 1024);
    const headers = { "Content-Type": "application/trickle-ice-sdpfrag", "If-Match": s.etag };
    await problemOf(await call("PATCH", url, { token: p.ta, headers, body: big }), 413);
    await problemOf(await call("POST", `${url}/answer`, { token: p.tb, headers, body: big }), 413);
    await problemOf(
      await call("PATCH", `/v1/rooms/${p.room}/peers/a`, {
        token: p.ta,
        json: { meta: { blob: "x".repeat(16 * 1024) } },
      }),
      413,
    );
    // Just under the limits is fine.
    const fits = frag("ufragA1", { candidates: Array.from({ length: 900 }, () => CAND) });
    expect(fits.length).toBeLessThan(64 * 1024);
    expect((await call("PATCH", url, { token: p.ta, headers, body: fits })).status).toBe(204);
  });
});
