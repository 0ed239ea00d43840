/**
 * A TCP proxy on loopback between a client under test and a real edge, to make the edge
 * unreachable in the ways a network does: `goDark()` (a black hole: connections stay open, no
 * byte passes, as after a dead uplink), `cut()`/`mend()` (connections refused for a while), and
 * `switchTo(port)` (another server behind the same address, e.g. an edge with a rotated secret).
 * `upstream` null: dark from the start.
 */
import { createConnection, createServer, type Socket } from "node:net";

export async function tcpProxy(upstream: number | null) {
  let target = upstream;
  let dark = upstream === null;
  let refusing = false;
  let accepted = 0;
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  };
  const server = createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    accepted += 1;
    track(client);
    client.on("error", () => client.destroy());
    if (dark || target === null) return; // accepted; never read, never answered
    const up = createConnection({ host: "127.0.0.1", port: target });
    track(up);
    up.on("error", () => client.destroy());
    client.on("error", () => up.destroy());
    client.pipe(up);
    up.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    /** Connections accepted so far (refused ones not counted). */
    get accepted() {
      return accepted;
    },
    /** Every byte from now on is swallowed, on new and existing connections alike. */
    goDark() {
      dark = true;
      for (const s of sockets) {
        s.unpipe();
        s.removeAllListeners("data");
        s.pause();
      }
    },
    /** Drop every connection and refuse new ones until mend(). */
    cut() {
      refusing = true;
      for (const s of sockets) s.destroy();
    },
    mend() {
      refusing = false;
    },
    /** New connections go to `next`; the ones open now are dropped. */
    switchTo(next: number) {
      target = next;
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
