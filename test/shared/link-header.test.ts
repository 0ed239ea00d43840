import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  formatLinkValue,
  iceServerLinks,
  iceServersFromLinks,
  LinkHeaderError,
  parseLinkHeader,
} from "../../shared/link-header.ts";

describe("parseLinkHeader", () => {
  it("parses the RFC 9725 §4.6 examples (one header per server)", () => {
    const headers = [
      '<stun:stun.example.net>; rel="ice-server"',
      '<turn:turn.example.net?transport=udp>; rel="ice-server"; username="user"; credential="myPassword"; credential-type="password"',
      '<turn:turn.example.net?transport=tcp>; rel="ice-server"; username="user"; credential="myPassword"; credential-type="password"',
      '<turns:turn.example.net?transport=tcp>; rel="ice-server"; username="user"; credential="myPassword"; credential-type="password"',
    ];
    expect(iceServersFromLinks(headers)).toEqual([
      { urls: "stun:stun.example.net" },
      { urls: "turn:turn.example.net?transport=udp", username: "user", credential: "myPassword" },
      { urls: "turn:turn.example.net?transport=tcp", username: "user", credential: "myPassword" },
      { urls: "turns:turn.example.net?transport=tcp", username: "user", credential: "myPassword" },
    ]);
    // Headers.get() joins repeated headers with ", ": same result.
    expect(iceServersFromLinks(headers.join(", "))).toEqual(iceServersFromLinks(headers));
  });

  it("handles commas/semicolons/escapes in quoted strings, token values, case and extra whitespace", () => {
    const v =
      '<turn:127.0.0.1:3478?transport=udp>;REL=ice-server ; username="1700000000:rover1" ;credential="a,b;c\\"d\\\\e";credential-type=password,' +
      ' </x>; rel="preload next"; crossorigin , ,<stun:[::1]:3478>;rel="ice-server"';
    const links = parseLinkHeader(v);
    expect(links).toEqual([
      {
        uri: "turn:127.0.0.1:3478?transport=udp",
        rel: ["ice-server"],
        params: {
          rel: "ice-server",
          username: "1700000000:rover1",
          credential: 'a,b;c"d\\e',
          "credential-type": "password",
        },
      },
      { uri: "/x", rel: ["preload", "next"], params: { rel: "preload next", crossorigin: "" } },
      { uri: "stun:[::1]:3478", rel: ["ice-server"], params: { rel: "ice-server" } },
    ]);
    expect(iceServersFromLinks(v)).toHaveLength(2);
  });

  it("keeps the first of repeated parameters", () => {
    expect(parseLinkHeader('<a>; rel="x"; rel="y"')[0]?.rel).toEqual(["x"]);
  });

  it("absent or empty headers give no links", () => {
    expect(parseLinkHeader(null)).toEqual([]);
    expect(parseLinkHeader("")).toEqual([]);
    expect(iceServersFromLinks(undefined)).toEqual([]);
  });

  it.each([
    ["no angle brackets", "turn:x; rel=ice-server", /expected "<"/],
    ["unterminated URI", "<turn:x; rel=ice-server", /missing ">"/],
    ["unterminated quote", '<turn:x>; rel="ice-server', /unterminated quoted string/],
    ["junk after URI", "<turn:x> rel=ice-server", /expected ";" or ","/],
    ["empty parameter value", "<turn:x>; rel=", /expected a token/],
  ])("rejects %s", (_n, v, re) => {
    expect(() => parseLinkHeader(v)).toThrow(LinkHeaderError);
    expect(() => parseLinkHeader(v)).toThrow(re);
  });
});

describe("formatting", () => {
  it("iceServerLinks emits one value per URL with credential-type for TURN", () => {
    expect(
      iceServerLinks([
        { urls: "stun:127.0.0.1:3478" },
        {
          urls: ["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"],
          username: "9:a",
          credential: 'x"y',
        },
      ]),
    ).toEqual([
      '<stun:127.0.0.1:3478>; rel="ice-server"',
      '<turn:127.0.0.1:3478?transport=udp>; rel="ice-server"; username="9:a"; credential="x\\"y"; credential-type="password"',
      '<turn:127.0.0.1:3478?transport=tcp>; rel="ice-server"; username="9:a"; credential="x\\"y"; credential-type="password"',
    ]);
  });

  it("refuses URIs and values that would break the header", () => {
    expect(() => formatLinkValue("turn:a>b", {})).toThrow(LinkHeaderError);
    expect(() => formatLinkValue("turn:a b", {})).toThrow(LinkHeaderError);
    expect(() => formatLinkValue("turn:a", { username: "x\r\nSet-Cookie: y" })).toThrow(
      LinkHeaderError,
    );
    expect(() => formatLinkValue("turn:a", { "bad name": "x" })).toThrow(LinkHeaderError);
  });

  it("property: iceServersFromLinks ∘ iceServerLinks is the identity per URL", () => {
    const printable = fc.stringMatching(/^[\x20-\x7e\t]{0,24}$/);
    const server = fc.record(
      {
        urls: fc.stringMatching(/^(stun|turn|turns):[A-Za-z0-9.:?=_,;-]{1,30}$/),
        username: printable,
        credential: printable,
      },
      { requiredKeys: ["urls"] },
    );
    fc.assert(
      fc.property(fc.array(server, { maxLength: 4 }), fc.boolean(), (servers, joined) => {
        const links = iceServerLinks(servers);
        const back = iceServersFromLinks(joined ? links.join(", ") : links);
        expect(back).toEqual(servers);
      }),
      { numRuns: 500 },
    );
  });
});
