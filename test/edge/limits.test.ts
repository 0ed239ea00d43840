import { describe, expect, it } from "vitest";
import { CAND, call, frag, pair, problemOf, session, token } from "./helpers.ts";

describe("limits", () => {
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
