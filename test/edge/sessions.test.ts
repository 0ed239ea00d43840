import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { parseLinkHeader } from "../../shared/link-header.ts";
import {
  CAND,
  call,
  frag,
  heldOffer,
  join,
  pair,
  poll,
  problemOf,
  sdp,
  session,
  text,
  token,
  turnCredential,
} from "./helpers.ts";

const SDP = { "Content-Type": "application/sdp" };
const FRAG = { "Content-Type": "application/trickle-ice-sdpfrag" };

/** The ice-server Link headers of a response: one per TURN URL, valid credentials for `sub`. */
async function expectTurnLinks(res: Response, sub: string): Promise<void> {
  const links = parseLinkHeader(res.headers.get("Link")).filter((l) =>
    l.rel.includes("ice-server"),
  );
  expect(links.map((l) => l.uri)).toEqual([
    "turn:127.0.0.1:3478?transport=udp",
    "turn:127.0.0.1:3478?transport=tcp",
  ]);
  for (const l of links) {
    expect(l.params["credential-type"]).toBe("password");
    expect(l.params.username).toMatch(new RegExp(`^\\d+:${sub}$`));
    expect(l.params.credential).toBe(await turnCredential(l.params.username as string));
  }
}

describe("sessions", () => {
  it("202 when the answer is late; the answer comes as an event and from GET", async () => {
    const p = await pair();
    const res = await call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
      token: p.ta,
      headers: { ...SDP, Prefer: "wait=1" },
      body: sdp("ufragA1"),
    });
    expect(res.status).toBe(202);
    expect(res.headers.get("Retry-After")).toBeTruthy();
    expect(res.headers.get("Preference-Applied")).toBe("wait=1");
    const etag = res.headers.get("ETag") as string;
    const sid = (res.headers.get("Location") as string).split("/").pop() as string;
    const offer = (await poll(p.room, "b", p.tb, p.cb)).events.find((e) => e.type === "offer");
    expect(offer?.etag).toBe(etag);
    const before = await call("GET", `/v1/rooms/${p.room}/sessions/${sid}`, { token: p.ta });
    expect(await before.json()).toMatchObject({
      session: sid,
      from: "a",
      to: "b",
      state: "offered",
    });
    expect(
      (
        await call("POST", `/v1/rooms/${p.room}/sessions/${sid}/answer`, {
          token: p.tb,
          headers: { ...SDP, "If-Match": etag },
          body: sdp("ufragB1"),
        })
      ).status,
    ).toBe(204);
    const ea = await poll(p.room, "a", p.ta, p.ca);
    expect(ea.events).toEqual([
      expect.objectContaining({ type: "answer", session: sid, from: "b", etag }),
    ]);
    expect((ea.events[0] as { sdp?: string }).sdp).toContain("ufragB1");
    const after = await call("GET", `/v1/rooms/${p.room}/sessions/${sid}`, { token: p.tb });
    const info = (await after.json()) as { state: string; answer: string };
    expect(info.state).toBe("answered");
    expect(info.answer).toContain("ufragB1");
  });

  it("201 and the re-POST's 200 carry Link rel=ice-server headers with TURN credentials", async () => {
    const p = await pair();
    const offer = call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
      token: p.ta,
      headers: SDP,
      body: sdp("ufragA1"),
    });
    const eb = await poll(p.room, "b", p.tb, p.cb, 10);
    const ev = eb.events.find((e) => e.type === "offer") as unknown as {
      session: string;
      etag: string;
    };
    await call("POST", `/v1/rooms/${p.room}/sessions/${ev.session}/answer`, {
      token: p.tb,
      headers: { ...SDP, "If-Match": ev.etag },
      body: sdp("ufragB1"),
    });
    const r201 = await offer;
    expect(r201.status).toBe(201);
    // No Prefer: the deployment's OFFER_WAIT_S applied, so no Preference-Applied.
    expect(r201.headers.get("Preference-Applied")).toBeNull();
    expect(r201.headers.get("Accept-Patch")).toBe("application/trickle-ice-sdpfrag");
    await expectTurnLinks(r201, "a");
    await text(r201);
    // b restarts (re-POST from the answerer): a gets the offer and answers; b gets 200.
    const restart = call("POST", `/v1/rooms/${p.room}/sessions/${ev.session}`, {
      token: p.tb,
      headers: { ...SDP, "If-Match": r201.headers.get("ETag") as string },
      body: sdp("ufragB2"),
    });
    const ea = await poll(p.room, "a", p.ta, p.ca, 10);
    const ev2 = ea.events.find((e) => e.type === "offer") as unknown as {
      from: string;
      etag: string;
    };
    expect(ev2.from).toBe("b");
    await call("POST", `/v1/rooms/${p.room}/sessions/${ev.session}/answer`, {
      token: p.ta,
      headers: { ...SDP, "If-Match": ev2.etag },
      body: sdp("ufragA2"),
    });
    const r200 = await restart;
    expect(r200.status).toBe(200);
    expect(await text(r200)).toContain("ufragA2");
    await expectTurnLinks(r200, "b");
  });

  it("an offer parked while the room object is evicted still gets its answer (201)", async () => {
    const p = await pair("evict-offer");
    const { offered: offer, ev } = await heldOffer(p);
    await evictDurableObject(env.ROOMS.get(env.ROOMS.idFromName(p.room)));
    const ans = await call("POST", `/v1/rooms/${p.room}/sessions/${ev.session}/answer`, {
      token: p.tb,
      headers: { ...SDP, "If-Match": ev.etag },
      body: sdp("ufragB1"),
    });
    expect(ans.status).toBe(204);
    const res = await offer;
    expect(res.status).toBe(201);
    expect(await text(res)).toContain("ufragB1");
    // Answered in time: no `answer` event for a as well.
    expect((await poll(p.room, "a", p.ta, p.ca)).events).toEqual([]);
  });

  it("the answerer's candidates sent before its answer reach the offerer in order", async () => {
    const p = await pair();
    const r1 = await call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
      token: p.ta,
      headers: { ...SDP, Prefer: "wait=1" },
      body: sdp("ufragA1"),
    });
    const sid = (r1.headers.get("Location") as string).split("/").pop() as string;
    const etag = r1.headers.get("ETag") as string;
    for (const port of [7, 8]) {
      const r = await call("PATCH", `/v1/rooms/${p.room}/sessions/${sid}`, {
        token: p.tb,
        headers: { ...FRAG, "If-Match": etag },
        body: frag("ufragB1", { candidates: [CAND.replace("50000", `5000${port}`)] }),
      });
      expect(r.status).toBe(204);
    }
    const ea = await poll(p.room, "a", p.ta, p.ca);
    expect(
      ea.events.map((e) => [e.type, e.from, /\b(5000\d)\b/.exec(String(e.frag))?.[1]]),
    ).toEqual([
      ["candidates", "b", "50007"],
      ["candidates", "b", "50008"],
    ]);
  });

  it("an offer from a peer that has not joined: 409", async () => {
    const p = await pair();
    const ghost = await token("ghost", p.room);
    await problemOf(
      await call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
        token: ghost,
        headers: SDP,
        body: sdp("ufr1"),
      }),
      409,
    );
  });

  it("offer errors: target absent 409 + Retry-After, self 400, wrong media type 415, bad SDP 400, too big 413", async () => {
    const p = await pair();
    const absent = await call("POST", `/v1/rooms/${p.room}/peers/zed/sessions`, {
      token: p.ta,
      headers: SDP,
      body: sdp("ufr1"),
    });
    await problemOf(absent, 409);
    expect(absent.headers.get("Retry-After")).toBeTruthy();
    await problemOf(
      await call("POST", `/v1/rooms/${p.room}/peers/a/sessions`, {
        token: p.ta,
        headers: SDP,
        body: sdp("ufr1"),
      }),
      400,
    );
    await problemOf(
      await call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
        token: p.ta,
        headers: { "Content-Type": "text/plain" },
        body: sdp("ufr1"),
      }),
      415,
    );
    for (const bad of [
      "hello",
      "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
      sdp("ufr1").replace(/a=ice-ufrag:.*\r\n/, ""),
      sdp("ufr1").replace(/a=fingerprint:.*\r\n/, ""),
    ]) {
      await problemOf(
        await call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
          token: p.ta,
          headers: SDP,
          body: bad,
        }),
        400,
      );
    }
    const big = await problemOf(
      await call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
        token: p.ta,
        headers: SDP,
        body: `${sdp("ufr1")}a=x-pad:${"x".repeat(65 * 1024)}\r\n`,
      }),
      413,
    );
    expect(big.detail).toBe("SDP and sdpfrag bodies are limited to 64 KiB");
  });

  it("re-POST is an ICE restart: 200 with the answer and a new ETag; the old ETag is stale (412)", async () => {
    const p = await pair();
    const s = await session(p);
    const restart = call("POST", `/v1/rooms/${p.room}/sessions/${s.sid}`, {
      token: p.ta,
      headers: { ...SDP, "If-Match": s.etag },
      body: sdp("ufragA2"),
    });
    const eb = await poll(p.room, "b", p.tb, s.cb, 10);
    const ev = eb.events.find((e) => e.type === "offer") as unknown as {
      etag: string;
      session: string;
    };
    expect(ev.session).toBe(s.sid);
    await call("POST", `/v1/rooms/${p.room}/sessions/${s.sid}/answer`, {
      token: p.tb,
      headers: { ...SDP, "If-Match": ev.etag },
      body: sdp("ufragB2"),
    });
    const r = await restart;
    expect(r.status).toBe(200);
    expect(await text(r)).toContain("ufragB2");
    const etag2 = r.headers.get("ETag");
    expect(etag2).not.toBe(s.etag);
    expect(etag2).toBe(ev.etag);
    await problemOf(
      await call("POST", `/v1/rooms/${p.room}/sessions/${s.sid}`, {
        token: p.ta,
        headers: { ...SDP, "If-Match": s.etag },
        body: sdp("ufragA3"),
      }),
      412,
    );
    await problemOf(
      await call("POST", `/v1/rooms/${p.room}/sessions/${s.sid}`, {
        token: p.ta,
        headers: SDP,
        body: sdp("ufragA3"),
      }),
      428,
    );
  });

  it("glare: a second restart while the other party's offer is pending gets 409; the loser answers", async () => {
    const p = await pair();
    const s = await session(p);
    const first = call("POST", `/v1/rooms/${p.room}/sessions/${s.sid}`, {
      token: p.ta,
      headers: { ...SDP, "If-Match": "*", Prefer: "wait=5" },
      body: sdp("ufragA2"),
    });
    const eb = await poll(p.room, "b", p.tb, s.cb, 10);
    const ev = eb.events.find((e) => e.type === "offer") as unknown as { etag: string };
    const second = await call("POST", `/v1/rooms/${p.room}/sessions/${s.sid}`, {
      token: p.tb,
      headers: { ...SDP, "If-Match": "*" },
      body: sdp("ufragB2"),
    });
    await problemOf(second, 409);
    expect(second.headers.get("Retry-After")).toBeTruthy();
    await call("POST", `/v1/rooms/${p.room}/sessions/${s.sid}/answer`, {
      token: p.tb,
      headers: { ...SDP, "If-Match": ev.etag },
      body: sdp("ufragB2"),
    });
    expect((await first).status).toBe(200);
  });

  it("glare by PATCH: both parties restart at once, the second gets 409, the first completes", async () => {
    const p = await pair();
    const s = await session(p);
    const url = `/v1/rooms/${p.room}/sessions/${s.sid}`;
    const first = call("PATCH", url, {
      token: p.ta,
      headers: { ...FRAG, "If-Match": s.etag, Prefer: "wait=5" },
      body: frag("ufragA2", { pwd: "apwdapwdapwdapwdapwdap" }),
    });
    const eb = await poll(p.room, "b", p.tb, s.cb, 10);
    const ev = eb.events.find((e) => e.type === "restart") as unknown as { etag: string };
    const second = await call("PATCH", url, {
      token: p.tb,
      headers: { ...FRAG, "If-Match": "*" },
      body: frag("ufragB2", { pwd: "bpwdbpwdbpwdbpwdbpwdbp" }),
    });
    await problemOf(second, 409);
    expect(second.headers.get("Retry-After")).toBeTruthy();
    const info = (await (await call("GET", url, { token: p.tb })).json()) as {
      pending: { by: string; kind: string };
    };
    expect(info.pending).toMatchObject({ by: "a", kind: "restart" });
    expect(
      (
        await call("POST", `${url}/answer`, {
          token: p.tb,
          headers: { ...FRAG, "If-Match": ev.etag },
          body: frag("ufragB2", { pwd: "bpwdbpwdbpwdbpwdbpwdbp" }),
        })
      ).status,
    ).toBe(204);
    const won = await first;
    expect(won.status).toBe(200);
    expect(won.headers.get("ETag")).toBe(ev.etag);
    expect(await text(won)).toContain("ufragB2");
  });

  it("an ICE restart by PATCH on a session not answered yet: 409, and the offer is still answered as it was", async () => {
    const p = await pair();
    const first = await call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
      token: p.ta,
      headers: { ...SDP, Prefer: "wait=1" },
      body: sdp("ufragA1"),
    });
    expect(first.status).toBe(202);
    const etag = first.headers.get("ETag") as string;
    const sid = (first.headers.get("Location") as string).split("/").pop() as string;
    const restart = await call("PATCH", `/v1/rooms/${p.room}/sessions/${sid}`, {
      token: p.ta,
      headers: { ...FRAG, "If-Match": "*", Prefer: "wait=1" },
      body: frag("ufragA2", { pwd: "aaaaaaaaaaaaaaaaaaaaaa" }),
    });
    const prob = await problemOf(restart, 409);
    expect(prob.detail).toMatch(/no answer yet.*re-POST a full offer/);
    // Nothing changed: b gets only the offer, answers it with its ETag, a gets the answer.
    const eb = await poll(p.room, "b", p.tb, p.cb);
    expect(eb.events.map((e) => e.type)).toEqual(["offer"]);
    const ans = await call("POST", `/v1/rooms/${p.room}/sessions/${sid}/answer`, {
      token: p.tb,
      headers: { ...SDP, "If-Match": etag },
      body: sdp("ufragB1"),
    });
    expect(ans.status).toBe(204);
    const info = (await (
      await call("GET", `/v1/rooms/${p.room}/sessions/${sid}`, { token: p.ta })
    ).json()) as { state: string; answer: string };
    expect(info.state).toBe("answered");
    expect(info.answer).toContain("a=fingerprint:");
  });

  it("answers: superseded etag 412, wrong media type 415, nothing pending 409, missing If-Match 428", async () => {
    const p = await pair();
    const r1 = await call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
      token: p.ta,
      headers: { ...SDP, Prefer: "wait=1" },
      body: sdp("ufragA1"),
    });
    const sid = (r1.headers.get("Location") as string).split("/").pop() as string;
    const old = r1.headers.get("ETag") as string;
    // a supersedes its own pending offer.
    const r2 = await call("POST", `/v1/rooms/${p.room}/sessions/${sid}`, {
      token: p.ta,
      headers: { ...SDP, "If-Match": "*", Prefer: "wait=1" },
      body: sdp("ufragA2"),
    });
    expect(r2.status).toBe(202);
    const current = r2.headers.get("ETag") as string;
    await problemOf(
      await call("POST", `/v1/rooms/${p.room}/sessions/${sid}/answer`, {
        token: p.tb,
        headers: { ...SDP, "If-Match": old },
        body: sdp("ufragB1"),
      }),
      412,
    );
    await problemOf(
      await call("POST", `/v1/rooms/${p.room}/sessions/${sid}/answer`, {
        token: p.tb,
        headers: SDP,
        body: sdp("ufragB1"),
      }),
      428,
    );
    await problemOf(
      await call("POST", `/v1/rooms/${p.room}/sessions/${sid}/answer`, {
        token: p.tb,
        headers: { ...FRAG, "If-Match": current },
        body: frag("ufragB1", { pwd: "pwdpwdpwdpwdpwdpwdpwdp" }),
      }),
      415,
    );
    await problemOf(
      await call("POST", `/v1/rooms/${p.room}/sessions/${sid}/answer`, {
        token: p.tb,
        headers: { "Content-Type": "text/plain", "If-Match": current },
        body: "x",
      }),
      415,
    );
    await problemOf(
      await call("POST", `/v1/rooms/${p.room}/sessions/${sid}/answer`, {
        token: p.ta,
        headers: { ...SDP, "If-Match": current },
        body: sdp("ufragB1"),
      }),
      409,
    );
    expect(
      (
        await call("POST", `/v1/rooms/${p.room}/sessions/${sid}/answer`, {
          token: p.tb,
          headers: { ...SDP, "If-Match": current },
          body: sdp("ufragB1"),
        })
      ).status,
    ).toBe(204);
    await problemOf(
      await call("POST", `/v1/rooms/${p.room}/sessions/${sid}/answer`, {
        token: p.tb,
        headers: { ...SDP, "If-Match": current },
        body: sdp("ufragB1"),
      }),
      409,
    );
  });

  it("PATCH: trickle 204 (candidates before the answer are kept in order), 415, 400, 428, 412, restart 202", async () => {
    const p = await pair();
    const r1 = await call("POST", `/v1/rooms/${p.room}/peers/b/sessions`, {
      token: p.ta,
      headers: { ...SDP, Prefer: "wait=1" },
      body: sdp("ufragA1"),
    });
    const sid = (r1.headers.get("Location") as string).split("/").pop() as string;
    const etag = r1.headers.get("ETag") as string;
    const url = `/v1/rooms/${p.room}/sessions/${sid}`;
    for (const port of [1, 2, 3]) {
      const c = CAND.replace("50000", String(50000 + port));
      expect(
        (
          await call("PATCH", url, {
            token: p.ta,
            headers: { ...FRAG, "If-Match": etag },
            body: frag("ufragA1", { candidates: [c] }),
          })
        ).status,
      ).toBe(204);
    }
    const eb = await poll(p.room, "b", p.tb, p.cb);
    expect(eb.events.map((e) => e.type)).toEqual([
      "offer",
      "candidates",
      "candidates",
      "candidates",
    ]);
    expect(eb.events.slice(1).map((e) => /127\.0\.0\.1 (\d+)/.exec(String(e.frag))?.[1])).toEqual([
      "50001",
      "50002",
      "50003",
    ]);
    await problemOf(
      await call("PATCH", url, {
        token: p.ta,
        headers: { "Content-Type": "application/sdp", "If-Match": etag },
        body: frag("ufragA1"),
      }),
      415,
    );
    await problemOf(
      await call("PATCH", url, {
        token: p.ta,
        headers: { ...FRAG, "If-Match": etag },
        body: "a=candidate:garbage\r\n",
      }),
      400,
    );
    await problemOf(
      await call("PATCH", url, {
        token: p.ta,
        headers: FRAG,
        body: frag("ufragA1", { candidates: [CAND] }),
      }),
      428,
    );
    await problemOf(
      await call("PATCH", url, {
        token: p.ta,
        headers: { ...FRAG, "If-Match": '"stale"' },
        body: frag("ufragA1", { candidates: [CAND] }),
      }),
      412,
    );
    // b answers; then a restarts by PATCH and b does not answer in time: 202.
    await call("POST", `/v1/rooms/${p.room}/sessions/${sid}/answer`, {
      token: p.tb,
      headers: { ...SDP, "If-Match": etag },
      body: sdp("ufragB1"),
    });
    const late = await call("PATCH", url, {
      token: p.ta,
      headers: { ...FRAG, "If-Match": "*", Prefer: "wait=1" },
      body: frag("ufragA2", { pwd: "pwdpwdpwdpwdpwdpwdpwdp" }),
    });
    expect(late.status).toBe(202);
    const restartEv = (await poll(p.room, "b", p.tb, eb.cursor)).events.find(
      (e) => e.type === "restart",
    );
    expect(restartEv).toMatchObject({ session: sid, from: "a" });
    await problemOf(
      await call("PATCH", url, {
        token: p.ta,
        headers: { ...FRAG, "If-Match": "*" },
        body: frag("ufragA9"),
      }),
      400,
    );
    expect(
      (
        await call("POST", `/v1/rooms/${p.room}/sessions/${sid}/answer`, {
          token: p.tb,
          headers: { ...FRAG, "If-Match": String(restartEv?.etag) },
          body: frag("ufragB2", { pwd: "bpwdbpwdbpwdbpwdbpwdbp" }),
        })
      ).status,
    ).toBe(204);
    const ea = await poll(p.room, "a", p.ta, p.ca);
    const answers = ea.events.filter((e) => e.type === "answer");
    // The first offer's answer (its POST had returned 202), then the restart's, as an sdpfrag.
    expect(answers).toHaveLength(2);
    expect(answers[1]).toMatchObject({ session: sid, frag: expect.stringContaining("ufragB2") });
  });

  it("DELETE: 200, the other party gets session-closed, then 404; sessions close when a party leaves", async () => {
    const p = await pair();
    const s = await session(p);
    const del = await call("DELETE", `/v1/rooms/${p.room}/sessions/${s.sid}`, {
      token: p.ta,
      headers: { "If-Match": '"whatever"' },
    });
    expect(del.status).toBe(200);
    expect((await poll(p.room, "b", p.tb, s.cb)).events).toEqual([
      expect.objectContaining({ type: "session-closed", session: s.sid, by: "a" }),
    ]);
    await problemOf(
      await call("GET", `/v1/rooms/${p.room}/sessions/${s.sid}`, { token: p.ta }),
      404,
    );
    await problemOf(
      await call("DELETE", `/v1/rooms/${p.room}/sessions/${s.sid}`, { token: p.ta }),
      404,
    );

    const s2 = await session({ ...p, cb: (await poll(p.room, "b", p.tb, s.cb)).cursor });
    expect((await call("DELETE", `/v1/rooms/${p.room}/peers/a`, { token: p.ta })).status).toBe(204);
    const eb = await poll(p.room, "b", p.tb, s2.cb);
    expect(eb.events.map((e) => e.type)).toEqual(["session-closed", "peer-left"]);
    await problemOf(
      await call("GET", `/v1/rooms/${p.room}/sessions/${s2.sid}`, { token: p.tb }),
      404,
    );
    void join;
    void token;
  });
});
