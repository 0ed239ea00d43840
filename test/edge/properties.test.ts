// Hostile input: random ids, paths, headers, bodies and query values across the routes
// never produce a 5xx, every error is problem+json, and the room is intact afterwards.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LIMITS } from "../../shared/protocol.ts";
import { CAND, call, frag, freshRoom, join, pair, poll, sdp, session, token } from "./helpers.ts";

const METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS"];
const TYPES = [
  "application/sdp",
  "application/trickle-ice-sdpfrag",
  "application/json",
  "application/merge-patch+json",
  "application/sdp; charset=utf-8",
  "text/plain",
  "multipart/form-data; boundary=x",
  "",
];

/** Printable ASCII only: anything else cannot be put in a header by any client. */
const headerText = (max: number) =>
  fc.string({ maxLength: max }).map((s) => s.replace(/[^\x20-\x7e]/g, ""));

describe("hostile input", () => {
  it("never a 5xx; errors are problem+json; the room is intact afterwards", async () => {
    const p = await pair("fuzz");
    const s = await session(p);
    const room = p.room;
    const junkId = fc.oneof(
      fc.string({ maxLength: 70 }),
      fc.constantFrom("..", ".", "%00", "a/b", "é", "x".repeat(65), "a", "b", s.sid),
    );
    const seg = junkId.map(encodeURIComponent);
    const path = fc.oneof(
      fc.constantFrom(
        `/v1/rooms/${room}/peers`,
        `/v1/rooms/${room}/peers/a`,
        `/v1/rooms/${room}/peers/a/events`,
        `/v1/rooms/${room}/peers/b/sessions`,
        `/v1/rooms/${room}/sessions/${s.sid}`,
        `/v1/rooms/${room}/sessions/${s.sid}/answer`,
        "/v1/ice-servers",
        "/healthz",
      ),
      fc.tuple(seg, seg).map(([x, y]) => `/v1/rooms/${x}/peers/${y}`),
      seg.map((x) => `/v1/rooms/${room}/peers/${x}/events`),
      seg.map((x) => `/v1/rooms/${room}/peers/${x}/sessions`),
      seg.map((x) => `/v1/rooms/${room}/sessions/${x}`),
      fc.tuple(seg, seg).map(([x, y]) => `/v1/rooms/${x}/sessions/${y}/answer`),
      fc.webPath().map((w) => `/v1${w}`),
    );
    // `wait` is never a valid long wait (a parked poll would only cost time); junk or 0/1.
    const waitValue = fc.oneof(
      fc.constantFrom("0", "1", "", "-1", "26", "1e3", "0x1", " 1"),
      fc.string({ maxLength: 12 }).filter((q) => !/^\d{1,2}$/.test(q)),
    );
    const afterValue = fc.oneof(
      fc.constantFrom("0", "-1", "1.5", "99999999999999999999", s.etag),
      fc.string({ maxLength: 20 }),
      fc.nat().map(String),
    );
    const query = fc.oneof(
      fc.constant(""),
      fc
        .tuple(waitValue, afterValue)
        .map(([w, a]) => `?wait=${encodeURIComponent(w)}&after=${encodeURIComponent(a)}`),
      headerText(30).map((q) => `?${encodeURIComponent(q)}`),
    );
    const body = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.json(),
      fc.constant(sdp("uffz").replace("v=0", "v=1")),
      fc.constant(sdp("uffz")),
      fc.constant(frag("fz", { candidates: ["candidate:x"] })),
      fc.constant(frag("ufragA1", { candidates: [CAND] })),
      fc.constant(`{"meta":${JSON.stringify({ k: "x".repeat(20_000) })}}`),
      fc.constant("\u0000\uffff\ud800"),
    );
    const tokens = [
      p.ta,
      p.tb,
      await token("c", room),
      await token("a", "another-room"),
      await token("ops", "*", { role: "admin" }),
      await token("a", room, { nowS: Math.floor(Date.now() / 1000) - 7200, ttlS: 60 }),
      "not-a-token",
      "",
    ];
    const headers = fc.record(
      {
        "Content-Type": fc.constantFrom(...TYPES),
        "If-Match": fc.oneof(headerText(40), fc.constantFrom("*", '"*"', s.etag, `W/${s.etag}`)),
        Prefer: fc.oneof(
          fc.constant("wait=1"),
          headerText(20).map((x) => `wait=${x}`),
          headerText(20),
        ),
        Accept: fc.constantFrom("application/json", "*/*", "text/html", "application/sdp"),
        "Last-Event-ID": fc.oneof(headerText(20), fc.nat().map(String)),
        Origin: fc.constantFrom("https://console.example", "null", "http://evil.example"),
        "Content-Length": fc.constantFrom("0", "5", "999999999"),
      },
      { requiredKeys: [] },
    );
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...METHODS),
        path,
        query,
        headers,
        body,
        fc.constantFrom(...tokens),
        async (method, url, q, hdrs, payload, tok) => {
          // Never the real DELETE of a peer or the session: that is legitimate, not hostile.
          if (method === "DELETE" && url.startsWith(`/v1/rooms/${room}/`)) return;
          // Nor a legitimate join by a peer that was not in the room.
          if (
            method === "POST" &&
            url === `/v1/rooms/${room}/peers` &&
            tok !== p.ta &&
            tok !== p.tb
          )
            return;
          // A lying Content-Length is refused by the client library before the edge sees it.
          const { "Content-Length": _len, ...h } = hdrs;
          const withBody = method !== "GET" && method !== "DELETE" && method !== "HEAD";
          runs += 1;
          const res = await call(method, `${url}${q}`, {
            token: tok,
            headers: h,
            ...(withBody ? { body: payload } : {}),
          });
          expect(res.status).toBeLessThan(500);
          if (res.status >= 400 && method !== "HEAD") {
            expect(res.headers.get("Content-Type")).toBe("application/problem+json");
            const pr = (await res.json()) as Record<string, unknown>;
            expect(pr.status).toBe(res.status);
            expect(typeof pr.type).toBe("string");
            expect(typeof pr.title).toBe("string");
            expect(typeof pr.detail).toBe("string");
            if (res.status === 401) expect(res.headers.get("WWW-Authenticate")).toMatch(/^Bearer/);
          } else {
            await res.arrayBuffer();
          }
        },
      ),
      { numRuns: 300 },
    );
    expect(runs).toBeGreaterThan(200);

    // Intact: both peers present, and a normal flow still works in the same room, from each
    // peer's own stored cursor (whatever the hostile polls acknowledged).
    const peers = (await (
      await call("GET", `/v1/rooms/${room}/peers`, { token: p.ta })
    ).json()) as {
      peers: { id: string }[];
    };
    expect(peers.peers.map((x) => x.id).sort()).toEqual(["a", "b"]);
    const drain = async (id: string, tok: string) => {
      let cursor = (await join(room, tok)).body.cursor;
      for (;;) {
        const r = await poll(room, id, tok, cursor);
        if (r.events.length === 0) return cursor;
        cursor = r.cursor;
      }
    };
    const ca = await drain("a", p.ta);
    const cb = await drain("b", p.tb);
    const s2 = await session({ ...p, ca, cb });
    expect(s2.sid).not.toBe(s.sid);
    const close = await call("DELETE", `/v1/rooms/${room}/sessions/${s2.sid}`, { token: p.tb });
    expect(close.status).toBe(200);
    const ea = await poll(room, "a", p.ta, ca);
    expect(ea.events.at(-1)).toMatchObject({ type: "session-closed", session: s2.sid, by: "b" });
  }, 60_000);
});

/** `inner` wrapped `depth` times in arrays or single-key objects, written out by hand: a value
 * nested 3000 deep cannot be built with JSON.stringify (it recurses). */
function nested(depth: number, kinds: string, inner: string): string {
  let open = "";
  let close = "";
  for (let i = 0; i < depth; i++) {
    const obj = kinds[i % kinds.length] === "o";
    open += obj ? '{"k":' : "[";
    close = (obj ? "}" : "]") + close;
  }
  return open + inner + close;
}

// Deep, wide and long-keyed JSON (a 6 KB body nested 3000 deep once gave a 500) on join and
// on the merge patch, seeded so that CI replays the same 5000 requests every time.
describe("hostile JSON bodies", () => {
  it("5000 seeded requests: never a 5xx; too deep is a 400 that says so; the room is intact", async () => {
    const json = fc.json({ maxDepth: 6 }).map((j) => j);
    const deep = fc
      .tuple(fc.integer({ min: 1, max: 3000 }), fc.constantFrom("a", "o", "ao", "oa"), json)
      .map(([d, k, inner]) => ({ text: nested(d, k, inner), depth: d }));
    const wide = fc
      .tuple(fc.integer({ min: 1, max: 3000 }), fc.constantFrom("0", "null", '"v"', "[]", "{}"))
      .map(([n, v]) => ({
        text: `{${Array.from({ length: n }, (_, i) => `"k${i}":${v}`).join(",")}}`,
        depth: v === "[]" || v === "{}" ? 2 : 1,
      }));
    const longKey = fc
      .tuple(fc.string({ minLength: 1, maxLength: 4 }), fc.integer({ min: 64, max: 20_000 }))
      .map(([c, n]) => ({ text: JSON.stringify({ [c.repeat(n).slice(0, n)]: 1 }), depth: 1 }));
    const small = json.map((j) => ({ text: j, depth: 0 }));
    const value = fc.oneof(deep, wide, longKey, small);
    // Where the value goes; `depth` of the whole body is the value's plus what wraps it.
    const shape = fc.constantFrom(
      { wrap: (v: string) => `{"meta":${v}}`, extra: 1 },
      { wrap: (v: string) => `{"position":${v}}`, extra: 1 },
      { wrap: (v: string) => `{"kind":"rover","meta":{"nested":${v}}}`, extra: 2 },
      { wrap: (v: string) => v, extra: 0 },
    );
    const method = fc.constantFrom(
      { m: "POST", type: "application/json" },
      { m: "PATCH", type: "application/merge-patch+json" },
      { m: "PATCH", type: "application/json" },
    );

    // A room per 150 requests keeps each subject under its rate limit (600/min); 4 peers per
    // room at most, so each room has its own subjects.
    const rooms: { room: string; tok: string }[] = [];
    const roomFor = async (n: number) => {
      const i = Math.floor(n / 150);
      if (!rooms[i]) {
        const room = freshRoom("json");
        const tok = await token("a", room);
        expect((await join(room, tok)).res.status).toBe(201);
        rooms[i] = { room, tok };
      }
      return rooms[i];
    };
    let runs = 0;
    let accepted = 0;
    let tooDeep = 0;
    await fc.assert(
      fc.asyncProperty(method, shape, value, async (how, where, v) => {
        const { room, tok } = await roomFor(runs);
        runs += 1;
        const body = where.wrap(v.text);
        const url = how.m === "POST" ? `/v1/rooms/${room}/peers` : `/v1/rooms/${room}/peers/a`;
        const res = await call(how.m, url, {
          token: tok,
          headers: { "Content-Type": how.type },
          body,
        });
        expect(res.status).toBeLessThan(500);
        if (res.status < 300) {
          accepted += 1;
          await res.arrayBuffer();
          return;
        }
        expect(res.headers.get("Content-Type")).toBe("application/problem+json");
        const pr = (await res.json()) as { status: number; detail: string };
        expect(pr.status).toBe(res.status);
        const bodyDepth = v.depth + where.extra;
        if (
          bodyDepth > LIMITS.jsonDepth &&
          new TextEncoder().encode(body).length <= LIMITS.jsonBytes
        ) {
          expect(res.status).toBe(400);
          expect(pr.detail).toMatch(/nested deeper than 32 levels/);
          tooDeep += 1;
        }
      }),
      { numRuns: 5000, seed: 20_260_420 },
    );
    // The premises: the run was as long as promised, and it exercised both sides of the bound.
    expect(runs).toBe(5000);
    expect(accepted).toBeGreaterThan(200);
    expect(tooDeep).toBeGreaterThan(200);

    // Intact: every room still lists its peer, which can still be patched.
    for (const { room, tok } of rooms) {
      const list = await call("GET", `/v1/rooms/${room}/peers`, { token: tok });
      expect(((await list.json()) as { peers: { id: string }[] }).peers.map((p) => p.id)).toEqual([
        "a",
      ]);
      const ok = await call("PATCH", `/v1/rooms/${room}/peers/a`, {
        token: tok,
        headers: { "Content-Type": "application/merge-patch+json" },
        body: JSON.stringify({ meta: { fine: true } }),
      });
      expect(ok.status).toBe(200);
      await ok.arrayBuffer();
    }
  }, 240_000);
});
