// EdgeHttp (rover/http.ts): requests to the edge leave from the local address they are bound to,
// and from the routing table's choice again once unbound. Loopback has many addresses (127/8):
// a server on 127.0.0.1 sees which one a connection came from.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EdgeHttp } from "../../rover/http.ts";

let server: Server;
let url = "";

beforeAll(async () => {
  server = createServer((req, res) => {
    res.end(req.socket.remoteAddress ?? "");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const from = async (http: EdgeHttp) => (await http.fetch(url, {})).text();

describe("EdgeHttp.bindTo", () => {
  it("binds new connections to the given local address, and lets the routing table choose after null", async () => {
    const http = new EdgeHttp();
    try {
      expect(http.localAddress).toBeNull();
      expect(await from(http)).toBe("127.0.0.1");
      expect(http.bindTo("127.0.0.2")).toBe(true);
      expect(http.localAddress).toBe("127.0.0.2");
      // The kept-alive connection from 127.0.0.1 is not reused: the pool is new.
      expect(await from(http)).toBe("127.0.0.2");
      expect(http.bindTo("127.0.0.2")).toBe(false);
      expect(http.bindTo(null)).toBe(true);
      expect(await from(http)).toBe("127.0.0.1");
    } finally {
      await http.destroy();
    }
  });
});
