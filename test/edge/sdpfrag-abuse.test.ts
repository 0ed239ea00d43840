/**
 * sdpfrag PATCHes a hostile room member may send on its own session (found by the hostile-peer
 * audit, 2026-12-07; all held): a thousand candidates, a 60 KB candidate line, giant or
 * malformed ufrag/pwd, NUL and bytes that are not UTF-8, only blank lines or CRs, a thousand
 * If-Match tags, and storms of trickles and restarts. Every answer is a 2xx or a 4xx problem+json,
 * never a 5xx, and the session and the room are intact afterwards.
 */
import { describe, expect, it } from "vitest";
import { CAND, call, frag, pair, session } from "./helpers.ts";

const SDPFRAG = { "Content-Type": "application/trickle-ice-sdpfrag" };
const cands = (n: number) =>
  Array.from(
    { length: n },
    (_, k) => `candidate:${k} 1 udp ${k + 1} 127.0.0.1 ${1024 + k} typ host`,
  );

async function expectSane(r: Response, statuses: number[]): Promise<void> {
  const body = await r.text();
  expect(statuses, `${r.status} ${body.slice(0, 200)}`).toContain(r.status);
  if (r.status >= 400) {
    expect(r.headers.get("Content-Type")).toBe("application/problem+json");
    expect(JSON.parse(body)).toMatchObject({ status: r.status });
  }
}

describe("hostile sdpfrag PATCHes", () => {
  it("odd bodies: 204 or a 4xx problem, never a 5xx; the session stays", async () => {
    const p = await pair("frag-abuse");
    const { sid, etag } = await session(p);
    const path = `/v1/rooms/${p.room}/sessions/${sid}`;
    const pwd = "p".repeat(22);
    const cases: [string, string, string | Uint8Array, number[]][] = [
      ["1000 candidates", etag, frag("ufragA1", { candidates: cands(1000) }), [204]],
      [
        "a 60 KB candidate",
        etag,
        frag("ufragA1", { candidates: [`${CAND} ${"x y ".repeat(15_000)}`] }),
        [204],
      ],
      ["a 60 KB ufrag", etag, frag("u".repeat(60_000), { candidates: [CAND] }), [400]],
      ["a 257-character ufrag", "*", frag("u".repeat(257), { pwd }), [400]],
      ["a 60 KB pwd", "*", frag("newUfrag", { pwd: "p".repeat(60_000) }), [400]],
      [
        "a NUL",
        etag,
        "a=ice-ufrag:ufragA1\r\na=candidate:1 1 udp 1 127.0.0.1 1 typ host\u0000\r\n",
        [400],
      ],
      ["not UTF-8", etag, new Uint8Array([0x61, 0x3d, 0xff, 0xfe, 0x0d, 0x0a]), [400]],
      ["blank lines only", etag, "\r\n".repeat(30_000), [204]],
      ["CRs only", etag, "\r".repeat(60_000), [204]],
      [
        "3000 m= lines",
        etag,
        Array.from({ length: 3000 }, (_, k) => `m=audio 9 RTP/AVP 0\r\na=mid:${k}`).join("\r\n"),
        [413],
      ],
      [
        "a thousand If-Match tags",
        Array.from({ length: 1000 }, (_, k) => `"e${k}"`).join(", "),
        frag("ufragA1", { candidates: [CAND] }),
        [412],
      ],
      ["a weak tag", `W/${etag}`, frag("ufragA1", { candidates: [CAND] }), [412]],
      ["a broken tag", '"""', frag("ufragA1", { candidates: [CAND] }), [412]],
    ];
    for (const [what, ifMatch, body, statuses] of cases) {
      const r = await call("PATCH", path, {
        token: p.ta,
        headers: { ...SDPFRAG, "If-Match": ifMatch, Prefer: "wait=1" },
        body: body as string,
      });
      await expectSane(r, statuses).catch((e: Error) => {
        throw new Error(`${what}: ${e.message}`);
      });
    }
    const g = await call("GET", path, { token: p.tb });
    expect(g.status).toBe(200);
    expect(await g.json()).toMatchObject({ session: sid, state: "answered" });
  });

  it("storms of trickles and restarts: 204, 202, 409 or 429, never a 5xx; the room stays", async () => {
    const p = await pair("frag-storm");
    const { sid, etag } = await session(p);
    const path = `/v1/rooms/${p.room}/sessions/${sid}`;
    const big = frag("ufragA1", { candidates: cands(900) });
    const trickles = await Promise.all(
      Array.from({ length: 200 }, () =>
        call("PATCH", path, { token: p.ta, headers: { ...SDPFRAG, "If-Match": etag }, body: big }),
      ),
    );
    for (const r of trickles) await expectSane(r, [204, 429]);
    // The premise: the undelivered-event bound was reached (b reads nothing).
    expect(trickles.some((r) => r.status === 429)).toBe(true);
    const restarts = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        call("PATCH", path, {
          token: i % 2 ? p.ta : p.tb,
          headers: { ...SDPFRAG, "If-Match": "*", Prefer: "wait=1" },
          body: frag(`storm${String(i).padStart(3, "0")}`, {
            pwd: "p".repeat(22),
            candidates: [CAND],
          }),
        }),
      ),
    );
    for (const r of restarts) await expectSane(r, [202, 409, 429]);
    expect((await call("GET", path, { token: p.tb })).status).toBe(200);
    const peers = await call("GET", `/v1/rooms/${p.room}/peers`, { token: p.tb });
    expect(peers.status).toBe(200);
    expect(((await peers.json()) as { peers: unknown[] }).peers).toHaveLength(2);
  });
});
