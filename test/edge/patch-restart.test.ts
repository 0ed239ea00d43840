// An ICE restart by PATCH, answered while the request is parked: the 200 carries the answer's
// ICE credentials and one candidate (its highest-priority one), because medooze's whip-whep
// 1.2.0 cannot take more than one; the other candidates come to the restarter as an event.
import { describe, expect, it } from "vitest";
import { call, drain, pair, poll, session, text } from "./helpers.ts";

const FRAG = { "Content-Type": "application/trickle-ice-sdpfrag" };
const HOST = "candidate:1 1 udp 2130706431 127.0.0.1 50001 typ host";
const SRFLX = "candidate:2 1 udp 1694498815 192.0.2.7 50002 typ srflx raddr 0.0.0.0 rport 0";
const RELAY = "candidate:3 1 udp 16777215 198.51.100.9 50003 typ relay raddr 0.0.0.0 rport 0";

/** b's restart answer: new credentials, three candidates (relay first), end-of-candidates. */
const ANSWER = [
  "a=ice-ufrag:ufragB2",
  "a=ice-pwd:bbbbbbbbbbbbbbbbbbbbbb",
  "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
  "a=mid:0",
  `a=${RELAY}`,
  `a=${HOST}`,
  `a=${SRFLX}`,
  "a=end-of-candidates",
  "",
].join("\r\n");

describe("ICE restart by PATCH", () => {
  it("the 200 holds the credentials and one candidate; the others reach the restarter as an event", async () => {
    const p = await pair("patch-restart");
    const s = await session(p);
    const restart = call("PATCH", `/v1/rooms/${p.room}/sessions/${s.sid}`, {
      token: p.ta,
      headers: { ...FRAG, "If-Match": "*", Prefer: "wait=10" },
      body: "a=ice-ufrag:ufragA2\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaa\r\n",
    });
    const ev = (await poll(p.room, "b", p.tb, s.cb, 10)).events.find((e) => e.type === "restart");
    expect(ev).toMatchObject({ session: s.sid, from: "a" });
    const ans = await call("POST", `/v1/rooms/${p.room}/sessions/${s.sid}/answer`, {
      token: p.tb,
      headers: { ...FRAG, "If-Match": String(ev?.etag) },
      body: ANSWER,
    });
    expect(ans.status).toBe(204);
    const res = await restart;
    expect(res.status).toBe(200);
    const body = await text(res);
    expect(body).toContain("a=ice-ufrag:ufragB2\r\n");
    expect(body).toContain("a=ice-pwd:bbbbbbbbbbbbbbbbbbbbbb\r\n");
    // One candidate line, the host one (highest priority); no end-of-candidates yet.
    expect(body.match(/^a=candidate:.*$/gm)).toEqual([`a=${HOST}`]);
    expect(body).not.toContain("end-of-candidates");
    // whip-whep's own handling of it: the joined candidate lines are one valid line.
    const joined = Array.from(body.matchAll(/(a=candidate:.*\r\n)/gm))
      .map((m) => m[1])
      .join();
    expect(joined).toBe(`a=${HOST}\r\n`);
    // The rest as a `candidates` event from b, with the same credentials, then end-of-candidates.
    const got = await drain(p.room, "a", p.ta, p.ca);
    const rest = got.events.filter((e) => e.type === "candidates" && e.session === s.sid);
    expect(rest).toHaveLength(1);
    const frag = String(rest[0]?.frag);
    expect(rest[0]).toMatchObject({ from: "b" });
    expect(frag).toContain("a=ice-ufrag:ufragB2");
    expect(frag.match(/^a=candidate:.*$/gm)).toEqual([`a=${RELAY}`, `a=${SRFLX}`]);
    expect(frag).toContain("a=end-of-candidates");
    // No answer event: the parked request had it.
    expect(got.events.filter((e) => e.type === "answer")).toEqual([]);
    // GET shows the answer whole, to either party: the cut was for the parked request only.
    for (const tok of [p.ta, p.tb]) {
      const got = await call("GET", `/v1/rooms/${p.room}/sessions/${s.sid}`, { token: tok });
      expect(got.status).toBe(200);
      const info = (await got.json()) as { answer?: string; state?: string };
      expect(info.state).toBe("answered");
      expect(info.answer).toBe(ANSWER);
    }
    // After the restart a trickle with a's new ufrag is a trickle (204), not another restart.
    const trickle = await call("PATCH", `/v1/rooms/${p.room}/sessions/${s.sid}`, {
      token: p.ta,
      headers: { ...FRAG, "If-Match": String(res.headers.get("ETag")) },
      body: `a=ice-ufrag:ufragA2\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaa\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=${HOST}\r\n`,
    });
    expect(trickle.status).toBe(204);
  });

  it("an answer after the 202 comes whole, as an `answer` event with every candidate", async () => {
    const p = await pair("patch-late");
    const s = await session(p);
    const restart = await call("PATCH", `/v1/rooms/${p.room}/sessions/${s.sid}`, {
      token: p.ta,
      headers: { ...FRAG, "If-Match": "*", Prefer: "wait=1" },
      body: "a=ice-ufrag:ufragA3\r\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaa\r\n",
    });
    expect(restart.status).toBe(202);
    await restart.arrayBuffer();
    const ev = (await poll(p.room, "b", p.tb, s.cb, 10)).events.find((e) => e.type === "restart");
    const ans = await call("POST", `/v1/rooms/${p.room}/sessions/${s.sid}/answer`, {
      token: p.tb,
      headers: { ...FRAG, "If-Match": String(ev?.etag) },
      body: ANSWER,
    });
    expect(ans.status).toBe(204);
    const got = await drain(p.room, "a", p.ta, p.ca);
    const answer = got.events.find((e) => e.type === "answer" && e.session === s.sid);
    expect(answer?.frag).toBe(ANSWER);
  });
});
