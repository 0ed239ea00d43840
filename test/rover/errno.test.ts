/** rover/errno.ts: system errors in words for the CLI's one-line messages. */
import { statSync } from "node:fs";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { errnoText } from "../../rover/errno.ts";

describe("errnoText", () => {
  it("says what a system error means, with its code", async () => {
    let missing: unknown;
    try {
      statSync("/nonexistent/roverlink-errno-test");
    } catch (e) {
      missing = e;
    }
    expect(errnoText(missing)).toBe("no such file or directory (ENOENT)");
    // A port in use, as `--forward` and `--metrics-port` meet it.
    const a = createServer();
    await new Promise<void>((r) => a.listen(0, "127.0.0.1", r));
    const port = (a.address() as { port: number }).port;
    const b = createServer();
    const inUse = await new Promise<unknown>((r) => {
      b.once("error", r);
      b.listen(port, "127.0.0.1");
    });
    a.close();
    expect(errnoText(inUse)).toBe("address already in use (EADDRINUSE)");
  });

  it("falls back to the code, then the message", () => {
    expect(errnoText(Object.assign(new Error("x"), { code: "ERR_SOMETHING" }))).toBe(
      "ERR_SOMETHING",
    );
    expect(errnoText(new Error("plain"))).toBe("plain");
    expect(errnoText("text")).toBe("text");
  });
});
