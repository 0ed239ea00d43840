/**
 * The client against a real HTTP server on 127.0.0.1 that checks the requests protocol v1
 * prescribes and answers as the contract says (problem+json, Link, SSE, 202 paths).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent, fetch as undiciFetch } from "undici";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  ClientInputError,
  EdgeProtocolError,
  EdgeUnreachableError,
  EventStreamEndedError,
  type FetchFn,
  ProblemError,
  parseRetryAfter,
  type RoomEvent,
  RoverlinkClient,
  SseParser,
} from "../../shared/index.ts";
import { parseSdpFrag } from "../../shared/sdpfrag.ts";

const TOKEN = "tok.en.SECRET-never-in-messages";

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}
type Handler = (req: Seen, res: ServerResponse, raw: IncomingMessage) => void;

let server: Server;
let base: string;
let handler: Handler = (_q, res) => res.writeHead(500).end();
const seen: Seen[] = [];

beforeAll(async () => {
  server = createServer((raw, res) => {
    const chunks: Buffer[] = [];
    raw.on("data", (c: Buffer) => chunks.push(c));
    raw.on("end", () => {
      const req = {
        method: raw.method ?? "",
        url: raw.url ?? "",
        headers: raw.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      seen.push(req);
      handler(req, res, raw);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  seen.length = 0;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

function client(extra: Partial<ConstructorParameters<typeof RoverlinkClient>[0]> = {}) {
  return new RoverlinkClient({ baseUrl: `${base}/`, token: TOKEN, ...extra });
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  res
    .writeHead(status, { "Content-Type": "application/json", ...headers })
    .end(JSON.stringify(body));
}

function problem(
  res: ServerResponse,
  status: number,
  title: string,
  detail: string,
  headers: Record<string, string> = {},
) {
  res
    .writeHead(status, { "Content-Type": "application/problem+json", ...headers })
    .end(
      JSON.stringify({ type: `https://roverlink.dev/problems/${status}`, title, status, detail }),
    );
}

async function caught(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

const peer = (id: string) => ({
  id,
  kind: "rover",
  meta: {},
  position: null,
  joinedAt: 1,
  lastSeen: 2,
});
const SDP =
  "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
const FRAG = "a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n";

describe("health, ICE servers, peers", () => {
  it("healthz sends no Authorization", async () => {
    handler = (_q, res) => res.writeHead(200, { "Content-Type": "text/plain" }).end("ok\n");
    expect(await client().healthz()).toBe("ok");
    expect(seen[0]?.method).toBe("GET");
    expect(seen[0]?.url).toBe("/healthz");
    expect(seen[0]?.headers.authorization).toBeUndefined();
  });

  it("iceServers sends the bearer token", async () => {
    handler = (_q, res) =>
      json(res, 200, { iceServers: [{ urls: "stun:127.0.0.1:3478" }], ttl: 600 });
    expect(await client().iceServers()).toEqual({
      iceServers: [{ urls: "stun:127.0.0.1:3478" }],
      ttl: 600,
    });
    expect(seen[0]).toMatchObject({ method: "GET", url: "/v1/ice-servers" });
    expect(seen[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(seen[0]?.headers.accept).toBe("application/json");
  });

  it("join: POST JSON, 201 then 200 (resume), Location made absolute", async () => {
    let first = true;
    handler = (q, res) => {
      const body = {
        peer: { ...peer("r1"), ...JSON.parse(q.body) },
        peers: [peer("b")],
        iceServers: [],
        cursor: "c0",
      };
      json(res, first ? 201 : 200, body, { Location: "/v1/rooms/lab/peers/r1" });
      first = false;
    };
    const c = client();
    const j1 = await c.join("lab", { kind: "rover", position: { x: 1, y: 2 } });
    expect(j1.status).toBe(201);
    expect(j1.location).toBe(`${base}/v1/rooms/lab/peers/r1`);
    expect(j1.cursor).toBe("c0");
    expect(j1.peers.map((p) => p.id)).toEqual(["b"]);
    expect(seen[0]).toMatchObject({ method: "POST", url: "/v1/rooms/lab/peers" });
    expect(seen[0]?.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(seen[0]?.body ?? "")).toEqual({ kind: "rover", position: { x: 1, y: 2 } });
    const j2 = await c.join("lab");
    expect(j2.status).toBe(200);
    expect(seen[1]?.body).toBe("{}");
  });

  it("a token function is called for every request (refresh)", async () => {
    handler = (_q, res) => json(res, 200, { peers: [] });
    let n = 0;
    const c = client({ token: async () => `t${++n}` });
    await c.peers("lab");
    await c.peers("lab");
    expect(seen.map((s) => s.headers.authorization)).toEqual(["Bearer t1", "Bearer t2"]);
  });

  it("peers, updatePeer (merge patch), leave", async () => {
    handler = (q, res) => {
      if (q.method === "GET") json(res, 200, { peers: [peer("a"), peer("b")] });
      else if (q.method === "PATCH")
        json(res, 200, { ...peer("a"), position: JSON.parse(q.body).position });
      else res.writeHead(204).end();
    };
    const c = client();
    expect((await c.peers("lab")).peers).toHaveLength(2);
    const p = await c.updatePeer("lab", "a", { position: { x: 3, y: 4, map: "f1" } });
    expect(p.position).toEqual({ x: 3, y: 4, map: "f1" });
    await c.leave("lab", "a");
    expect(seen.map((s) => `${s.method} ${s.url} ${s.headers["content-type"] ?? "-"}`)).toEqual([
      "GET /v1/rooms/lab/peers -",
      "PATCH /v1/rooms/lab/peers/a application/merge-patch+json",
      "DELETE /v1/rooms/lab/peers/a -",
    ]);
  });

  it("refuses ids the protocol cannot carry before sending", async () => {
    const c = client();
    for (const bad of ["..", ".", "a b", "x/y", ""]) {
      await expect(c.peers(bad)).rejects.toBeInstanceOf(ClientInputError);
    }
    expect(seen).toHaveLength(0);
    expect(() => new RoverlinkClient({ baseUrl: "localhost:8787", token: "t" })).toThrow(
      ClientInputError,
    );
  });
});

describe("events", () => {
  it("poll sends after/wait and Accept JSON; a long poll outlives timeoutMs by its wait", async () => {
    handler = (_q, res) => {
      setTimeout(
        () => json(res, 200, { events: [{ id: "5", type: "nearby", peers: ["b"] }], cursor: "5" }),
        300,
      );
    };
    const r = await client({ timeoutMs: 100 }).poll("lab", "a", { after: "4", wait: 1 });
    expect(r).toEqual({ events: [{ id: "5", type: "nearby", peers: ["b"] }], cursor: "5" });
    expect(seen[0]?.url).toBe("/v1/rooms/lab/peers/a/events?after=4&wait=1");
    expect(seen[0]?.headers.accept).toBe("application/json");
  });

  it("stream parses SSE: comments, ids, event names, split chunks, CRLF, multi-line data", async () => {
    handler = (_q, res) => {
      res.writeHead(200, {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-store",
      });
      const e1 = JSON.stringify({ id: "7", type: "peer-joined", peer: peer("b") });
      const parts = [
        "\ufeff: hello\n\n",
        `id: 7\nevent: peer-joined\ndata: ${e1.slice(0, 10)}`,
        `${e1.slice(10)}\n\n: keep-alive\n\n`,
        'id: 8\r\nevent: offer\r\ndata: {"type":"offer","session":"s1",\r',
        '\ndata: "from":"b","sdp":"v=0","etag":"\\"e1\\""}\r\n\r\n',
        // no id in the JSON: taken from the SSE id field; no type: taken from event:
        'id: 9\nevent: session-closed\ndata: {"session":"s1","by":"b","reason":"bye"}\n\n',
      ];
      let i = 0;
      const next = () => {
        if (i < parts.length) {
          res.write(parts[i++]);
          setTimeout(next, 5);
        } else res.end();
      };
      next();
    };
    const got: RoomEvent[] = [];
    for await (const ev of client().stream("lab", "a", { lastEventId: "6" })) got.push(ev);
    expect(got).toEqual([
      { id: "7", type: "peer-joined", peer: peer("b") },
      { id: "8", type: "offer", session: "s1", from: "b", sdp: "v=0", etag: '"e1"' },
      { id: "9", type: "session-closed", session: "s1", by: "b", reason: "bye" },
    ]);
    expect(seen[0]?.url).toBe("/v1/rooms/lab/peers/a/events?after=6");
    expect(seen[0]?.headers.accept).toBe("text/event-stream");
    expect(seen[0]?.headers["last-event-id"]).toBe("6");
    expect(seen[0]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });

  it("stream: a silent connection ends in EdgeUnreachableError (idle timeout)", async () => {
    handler = (_q, res) => {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.write(": open\n\n");
    };
    const it = client().stream("lab", "a", { idleTimeoutMs: 200 });
    const err = await caught(it.next());
    expect(err).toBeInstanceOf(EdgeUnreachableError);
    expect((err as EdgeUnreachableError).timedOut).toBe(true);
    expect(err.message).toMatch(
      /^edge unreachable: GET http:\/\/127\.0\.0\.1:\d+\/v1\/rooms\/lab\/peers\/a\/events: event stream silent/,
    );
  });

  it("stream: the edge's `event: error` ends it with the edge's reason (events before it are given)", async () => {
    handler = (_q, res) => {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.write(`id: 1\ndata: ${JSON.stringify({ id: "1", type: "nearby", peers: [] })}\n\n`);
      const detail = "a newer event stream of this peer replaced this one";
      res.end(`event: error\ndata: ${JSON.stringify({ detail })}\n\n`);
    };
    const got: RoomEvent[] = [];
    const err = await caught(
      (async () => {
        for await (const ev of client().stream("lab", "a")) got.push(ev);
      })(),
    );
    expect(got.map((e) => e.id)).toEqual(["1"]);
    // It was "unexpected answer from the edge: … SSE event lacks id or type".
    expect(err).toBeInstanceOf(EventStreamEndedError);
    expect(err.message).toBe(
      "the edge ended the event stream: a newer event stream of this peer replaced this one",
    );
  });

  it("stream: keep-alive comments keep a quiet stream open past idleTimeoutMs", async () => {
    handler = (_q, res) => {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      let n = 0;
      const tick = setInterval(() => {
        if (++n < 10) res.write(": keep-alive\n\n");
        else {
          clearInterval(tick);
          res.end(`id: 2\ndata: ${JSON.stringify({ id: "2", type: "nearby", peers: [] })}\n\n`);
        }
      }, 100);
    };
    const got: RoomEvent[] = [];
    for await (const ev of client().stream("lab", "a", { idleTimeoutMs: 450 })) got.push(ev);
    expect(got.map((e) => e.id)).toEqual(["2"]);
  });

  it("stream: breaking out of the loop closes the connection", async () => {
    let closed!: () => void;
    const serverSawClose = new Promise<void>((r) => {
      closed = r;
    });
    handler = (_q, res, raw) => {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.write(`id: 1\ndata: ${JSON.stringify({ id: "1", type: "nearby", peers: [] })}\n\n`);
      raw.socket?.on("close", closed);
    };
    for await (const ev of client().stream("lab", "a")) {
      expect(ev.id).toBe("1");
      break;
    }
    await serverSawClose;
  });

  it("stream: the caller's signal aborts with its reason", async () => {
    handler = (_q, res) => {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.write(": open\n\n");
    };
    const ac = new AbortController();
    const it = client().stream("lab", "a", { signal: ac.signal });
    const p = it.next();
    setTimeout(() => ac.abort(new Error("stop now")), 50);
    expect((await caught(p)).message).toBe("stop now");
  });

  it("stream: errors before the stream are ProblemErrors; a JSON answer is a protocol error", async () => {
    handler = (_q, res) => problem(res, 403, "Forbidden", 'token is for peer "b", not "a"');
    const e1 = await caught(client().stream("lab", "a").next());
    expect(e1).toBeInstanceOf(ProblemError);
    expect(e1.message).toBe('403 Forbidden: token is for peer "b", not "a"');
    handler = (_q, res) => json(res, 200, { events: [], cursor: "0" });
    const e2 = await caught(client().stream("lab", "a").next());
    expect(e2).toBeInstanceOf(EdgeProtocolError);
    expect(e2.message).toMatch(/expected text\/event-stream, got "application\/json"/);
  });

  it("SseParser dispatches only on blank lines and ignores unknown fields", () => {
    const p = new SseParser();
    const enc = new TextEncoder();
    expect(p.push(enc.encode("retry: 10\nfoo: bar\ndata: a\n"))).toEqual([]);
    expect(p.push(enc.encode("data: b\n\ndata\n\n"))).toEqual([
      { id: undefined, event: "message", data: "a\nb" },
      { id: undefined, event: "message", data: "" },
    ]);
  });
});

describe("sessions", () => {
  const links = [
    '<stun:127.0.0.1:3478>; rel="ice-server"',
    '<turn:127.0.0.1:3478?transport=udp>; rel="ice-server"; username="1700000000:a"; credential="c2VjcmV0"; credential-type="password"',
  ];

  it("offer 201: headers as prescribed; answer, session id, ETag and Link ICE servers", async () => {
    handler = (_q, res) => {
      res.setHeader("Link", links);
      res
        .writeHead(201, {
          "Content-Type": "application/sdp",
          Location: `${base}/v1/rooms/lab/sessions/s-42`,
          ETag: '"e1"',
        })
        .end("v=0\r\nanswer\r\n");
    };
    const r = await client().offer("lab", "b", SDP, { waitS: 5 });
    expect(r).toEqual({
      status: 201,
      session: "s-42",
      location: `${base}/v1/rooms/lab/sessions/s-42`,
      etag: '"e1"',
      answer: "v=0\r\nanswer\r\n",
      iceServers: [
        { urls: "stun:127.0.0.1:3478" },
        {
          urls: "turn:127.0.0.1:3478?transport=udp",
          username: "1700000000:a",
          credential: "c2VjcmV0",
        },
      ],
    });
    expect(seen[0]).toMatchObject({
      method: "POST",
      url: "/v1/rooms/lab/peers/b/sessions",
      body: SDP,
    });
    expect(seen[0]?.headers["content-type"]).toBe("application/sdp");
    expect(seen[0]?.headers.prefer).toBe("wait=5");
    expect(seen[0]?.headers.accept).toBe("application/sdp");
  });

  it("offer 202: pending, Retry-After, no answer; no Prefer unless asked", async () => {
    handler = (_q, res) =>
      res
        .writeHead(202, {
          Location: "/v1/rooms/lab/sessions/s-43",
          ETag: '"e1"',
          "Retry-After": "3",
        })
        .end();
    const r = await client().offer("lab", "b", SDP);
    expect(r).toEqual({
      status: 202,
      session: "s-43",
      location: `${base}/v1/rooms/lab/sessions/s-43`,
      etag: '"e1"',
      iceServers: [],
      retryAfterS: 3,
    });
    expect(seen[0]?.headers.prefer).toBeUndefined();
  });

  it("offer 409: problem+json becomes a one-line ProblemError with retry hint", async () => {
    handler = (_q, res) =>
      problem(res, 409, "Conflict", 'target peer "b" is not in room "lab"', { "Retry-After": "2" });
    const e = (await caught(client().offer("lab", "b", SDP))) as ProblemError;
    expect(e).toBeInstanceOf(ProblemError);
    expect(e.message).toBe('409 Conflict: target peer "b" is not in room "lab" (retry after 2 s)');
    expect(e.status).toBe(409);
    expect(e.retryAfterS).toBe(2);
    expect(e.problem.type).toBe("https://roverlink.dev/problems/409");
    expect(e.method).toBe("POST");
  });

  it("offer 201 without ETag is a protocol error", async () => {
    handler = (_q, res) =>
      res
        .writeHead(201, { "Content-Type": "application/sdp", Location: "/v1/rooms/lab/sessions/s" })
        .end("v=0");
    const e = await caught(client().offer("lab", "b", SDP));
    expect(e).toBeInstanceOf(EdgeProtocolError);
    expect(e.message).toMatch(/-> 201: no ETag header$/);
  });

  it("restartOffer re-POSTs with If-Match * by default and returns the new ETag", async () => {
    handler = (_q, res) => {
      res.setHeader("Link", links[0] as string);
      res
        .writeHead(200, { "Content-Type": "application/sdp", ETag: '"e2"' })
        .end("v=0\r\nrestarted\r\n");
    };
    const r = await client().restartOffer("lab", "s-42", SDP, { waitS: 3 });
    expect(r).toEqual({
      status: 200,
      etag: '"e2"',
      answer: "v=0\r\nrestarted\r\n",
      iceServers: [{ urls: "stun:127.0.0.1:3478" }],
    });
    expect(seen[0]).toMatchObject({
      method: "POST",
      url: "/v1/rooms/lab/sessions/s-42",
      body: SDP,
    });
    expect(seen[0]?.headers["if-match"]).toBe("*");
    expect(seen[0]?.headers.prefer).toBe("wait=3");
    handler = (_q, res) => res.writeHead(202, { ETag: '"e3"', "Retry-After": "1" }).end();
    expect(await client().restartOffer("lab", "s-42", SDP, { ifMatch: "e2" })).toEqual({
      status: 202,
      etag: '"e3"',
      iceServers: [],
      retryAfterS: 1,
    });
    expect(seen[1]?.headers["if-match"]).toBe('"e2"');
  });

  it("answer: SDP or sdpfrag with a quoted If-Match; 412 surfaces as ProblemError", async () => {
    handler = (_q, res) => res.writeHead(204).end();
    const c = client();
    await c.answer("lab", "s-42", "v=0\r\n", { ifMatch: '"e1"' });
    await c.answer("lab", "s-42", FRAG, { contentType: "sdpfrag", ifMatch: "e2" });
    await c.answer("lab", "s-42", parseSdpFrag(FRAG), { ifMatch: "e3" });
    expect(
      seen.map((s) => [s.method, s.url, s.headers["content-type"], s.headers["if-match"]]),
    ).toEqual([
      ["POST", "/v1/rooms/lab/sessions/s-42/answer", "application/sdp", '"e1"'],
      ["POST", "/v1/rooms/lab/sessions/s-42/answer", "application/trickle-ice-sdpfrag", '"e2"'],
      ["POST", "/v1/rooms/lab/sessions/s-42/answer", "application/trickle-ice-sdpfrag", '"e3"'],
    ]);
    expect(seen[2]?.body).toBe(FRAG);
    handler = (_q, res) => problem(res, 412, "Precondition Failed", "the offer was superseded");
    const e = (await caught(
      c.answer("lab", "s-42", "v=0\r\n", { ifMatch: "old" }),
    )) as ProblemError;
    expect(e.status).toBe(412);
  });

  it("trickle: PATCH sdpfrag with If-Match, 204", async () => {
    handler = (_q, res) => res.writeHead(204).end();
    const frag = parseSdpFrag(
      `${FRAG}m=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\n`,
    );
    await client().trickle("lab", "s-42", frag, { ifMatch: '"e1"' });
    expect(seen[0]).toMatchObject({ method: "PATCH", url: "/v1/rooms/lab/sessions/s-42" });
    expect(seen[0]?.headers["content-type"]).toBe("application/trickle-ice-sdpfrag");
    expect(seen[0]?.headers["if-match"]).toBe('"e1"');
    expect(parseSdpFrag(seen[0]?.body ?? "")).toEqual(frag);
  });

  it("restartFrag: PATCH If-Match *, 200 with the other side's frag and a new ETag; 202; 504", async () => {
    handler = (_q, res) =>
      res
        .writeHead(200, { "Content-Type": "application/trickle-ice-sdpfrag", ETag: '"e9"' })
        .end(FRAG);
    const r = await client().restartFrag("lab", "s-42", FRAG, { waitS: 4 });
    expect(r).toEqual({ status: 200, etag: '"e9"', frag: FRAG });
    expect(seen[0]?.headers["if-match"]).toBe("*");
    expect(seen[0]?.headers.prefer).toBe("wait=4");
    expect(seen[0]?.headers.accept).toBe("application/trickle-ice-sdpfrag");
    handler = (_q, res) => res.writeHead(202, { ETag: '"e10"', "Retry-After": "2" }).end();
    expect(await client().restartFrag("lab", "s-42", FRAG)).toEqual({
      status: 202,
      etag: '"e10"',
      retryAfterS: 2,
    });
    handler = (_q, res) =>
      problem(res, 504, "Gateway Timeout", "peer b did not answer the restart in 4 s");
    expect((await caught(client().restartFrag("lab", "s-42", FRAG))).message).toBe(
      "504 Gateway Timeout: peer b did not answer the restart in 4 s",
    );
  });

  it("getSession and closeSession", async () => {
    const info = {
      session: "s-42",
      from: "a",
      to: "b",
      state: "answered",
      etag: '"e1"',
      answer: "v=0",
    };
    handler = (q, res) => (q.method === "GET" ? json(res, 200, info) : res.writeHead(200).end());
    const c = client();
    expect(await c.getSession("lab", "s-42")).toEqual(info);
    await c.closeSession("lab", "s-42");
    expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual([
      "GET /v1/rooms/lab/sessions/s-42",
      "DELETE /v1/rooms/lab/sessions/s-42",
    ]);
  });
});

describe("errors", () => {
  it("401 with WWW-Authenticate: ProblemError, token never in the message", async () => {
    handler = (_q, res) =>
      problem(res, 401, "Unauthorized", "token expired", { "WWW-Authenticate": "Bearer" });
    const e = (await caught(client().peers("lab"))) as ProblemError;
    expect(e.message).toBe("401 Unauthorized: token expired");
    expect(JSON.stringify({ m: e.message, p: e.problem, u: e.url })).not.toContain("SECRET");
  });

  it("non-problem bodies are synthesized into a problem; HTTP-date Retry-After", async () => {
    const when = new Date(Date.now() + 60_000).toUTCString();
    handler = (_q, res) =>
      res
        .writeHead(503, { "Content-Type": "text/plain", "Retry-After": when })
        .end("overloaded\n  try later");
    const e = (await caught(client().peers("lab"))) as ProblemError;
    expect(e.problem).toEqual({
      type: "about:blank",
      title: "Service Unavailable",
      status: 503,
      detail: "overloaded try later",
    });
    expect(e.retryAfterS).toBeGreaterThan(0);
    expect(e.message).toMatch(
      /^503 Service Unavailable: overloaded try later \(retry after \d+ s\)$/,
    );
    handler = (_q, res) =>
      res.writeHead(502, { "Content-Type": "text/html" }).end("<html>bad gateway</html>");
    expect((await caught(client().peers("lab"))).message).toBe("502 Bad Gateway");
  });

  it("a 2xx that is not the promised JSON is an EdgeProtocolError", async () => {
    handler = (_q, res) => res.writeHead(200, { "Content-Type": "text/html" }).end("<html></html>");
    const e = await caught(client().peers("lab"));
    expect(e).toBeInstanceOf(EdgeProtocolError);
    expect(e.message).toMatch(
      /^unexpected answer from the edge: GET .*\/v1\/rooms\/lab\/peers -> 200: expected a JSON object/,
    );
  });

  it("no answer within timeoutMs: EdgeUnreachableError naming the URL", async () => {
    handler = () => {}; // never answers
    const e = (await caught(client({ timeoutMs: 200 }).peers("lab"))) as EdgeUnreachableError;
    expect(e).toBeInstanceOf(EdgeUnreachableError);
    expect(e.timedOut).toBe(true);
    expect(e.message).toBe(
      `edge unreachable: GET ${base}/v1/rooms/lab/peers: no answer within 0.2 s`,
    );
  });

  it("a closed port: EdgeUnreachableError with the socket error", async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const c = new RoverlinkClient({ baseUrl: `http://127.0.0.1:${port}`, token: TOKEN });
    const e = (await caught(c.join("lab"))) as EdgeUnreachableError;
    expect(e).toBeInstanceOf(EdgeUnreachableError);
    expect(e.timedOut).toBe(false);
    expect(e.message).toMatch(
      new RegExp(
        `^edge unreachable: POST http://127\\.0\\.0\\.1:${port}/v1/rooms/lab/peers: .*ECONNREFUSED`,
      ),
    );
    expect(e.message).not.toContain("SECRET");
  });

  it("the caller's AbortSignal rejects with its reason, not as unreachable", async () => {
    handler = () => {};
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("user cancelled")), 50);
    const e = await caught(client().poll("lab", "a", { wait: 5, signal: ac.signal }));
    expect(e.message).toBe("user cancelled");
  });

  it("parseRetryAfter", () => {
    expect(parseRetryAfter("7")).toBe(7);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 0)).toBe(10);
    expect(parseRetryAfter(new Date(0).toUTCString(), 5_000)).toBe(0);
    expect(parseRetryAfter("soon")).toBeUndefined();
    expect(parseRetryAfter(null)).toBeUndefined();
  });
});

describe("undici fetch with a dispatcher (how the rover agent calls it)", () => {
  it("works for JSON, 201 offers with Link headers and SSE", async () => {
    const agent = new Agent({ connections: 2 });
    let calls = 0;
    const viaUndici: FetchFn = (url, init) => {
      calls++;
      return undiciFetch(url, {
        ...(init as object),
        dispatcher: agent,
      }) as unknown as Promise<Response>;
    };
    try {
      const c = client({ fetch: viaUndici });
      handler = (q, res) => {
        if (q.url.startsWith("/v1/rooms/lab/peers/b/sessions")) {
          res.setHeader("Link", [
            '<stun:127.0.0.1:1>; rel="ice-server"',
            '<stun:127.0.0.1:2>; rel="ice-server"',
          ]);
          res
            .writeHead(201, {
              "Content-Type": "application/sdp",
              Location: "/v1/rooms/lab/sessions/x",
              ETag: '"1"',
            })
            .end("v=0");
        } else if (q.headers.accept === "text/event-stream") {
          res.writeHead(200, { "Content-Type": "text/event-stream" });
          res.end(
            `: hi\n\nid: 3\ndata: ${JSON.stringify({ id: "3", type: "nearby", peers: ["b"] })}\n\n`,
          );
        } else json(res, 200, { peers: [] });
      };
      expect((await c.peers("lab")).peers).toEqual([]);
      const o = await c.offer("lab", "b", SDP);
      expect(o.iceServers.map((s) => s.urls)).toEqual(["stun:127.0.0.1:1", "stun:127.0.0.1:2"]);
      const evs: RoomEvent[] = [];
      for await (const ev of c.stream("lab", "a")) evs.push(ev);
      expect(evs).toEqual([{ id: "3", type: "nearby", peers: ["b"] }]);
      expect(calls).toBe(3);
    } finally {
      await agent.close();
    }
  });
});
