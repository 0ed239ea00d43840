import { describe, expect, it } from "vitest";
import { iceServersFor, turnRestCredential } from "../../worker/ice-servers.ts";
import { call, pair, sdp, token } from "./helpers.ts";

// The edge test config sets TURN_SECRET/TURN_URLS/TURN_TTL_S; test/edge/config.test.ts covers the
// unconfigured and STUN-only deployments through the app.
describe("ICE servers", () => {
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
});
