import { describe, expect, it } from "vitest";
import { isPrivateHost } from "../../rover/loopback.ts";
import { plainHttpWarning } from "../../rover/plain-http.ts";

describe("plain http to the edge", () => {
  it("is said for an edge beyond the machine and its LAN, not for https or a LAN address", () => {
    expect(plainHttpWarning("http://edge.example.net:8787")).toBe(
      "the edge edge.example.net:8787 is plain http: the token and the session descriptions cross the network unencrypted; use https://",
    );
    expect(plainHttpWarning("http://203.0.113.7")).toMatch(
      /^the edge 203\.0\.113\.7 is plain http/,
    );
    expect(plainHttpWarning("http://100.64.1.2:8787")).toMatch(/plain http/); // carrier NAT space
    for (const quiet of [
      "https://edge.example.net",
      "http://127.0.0.1:8787",
      "http://localhost:8787",
      "http://[::1]:8787",
      "http://10.99.0.1:8787",
      "http://192.168.1.20",
      "http://172.20.0.5",
      "http://[fd00::1]:8787",
      "http://0.0.0.0:8787",
    ])
      expect(plainHttpWarning(quiet), quiet).toBeNull();
  });

  it("private means loopback, RFC 1918, link-local and ULA literals only", () => {
    expect(isPrivateHost("172.32.0.1")).toBe(false);
    expect(isPrivateHost("169.254.10.1")).toBe(true);
    expect(isPrivateHost("[fe80::1]")).toBe(true);
    expect(isPrivateHost("printer.lan")).toBe(false);
  });
});
