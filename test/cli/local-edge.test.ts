/**
 * startLocalEdge: the real wrangler dev + workerd on a free loopback port. It serves /healthz,
 * passes its vars to the worker, reports wrangler's own reason when it cannot start, and stop()
 * leaves no process behind and removes the temporary state it made; so does its owner's death by
 * SIGKILL (the reaper).
 */
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LocalEdgeError, startFailureIsTransient, startLocalEdge } from "../../rover/local-edge.ts";
import { mintToken } from "../../shared/token.ts";
import { groupMembers, processesMentioning } from "./proc.ts";

const SECRET = "local-edge-test-secret-local-edge";

describe("startLocalEdge", () => {
  it("tries again when wrangler's bundler crashed or its own port was taken, not when the Worker is broken", () => {
    // The tail of a CI failure (2026-12-07): esbuild's goroutine dump, its panic line cut off.
    const crash = [
      "wrangler dev exited before the edge was up: github.com/evanw/esbuild/internal/bundler/bundler.go:1634 +0xca9",
      "\tgithub.com/evanw/esbuild/internal/bundler/bundler.go:1509 +0xecc",
      "github.com/evanw/esbuild/pkg/api.rebuildImpl",
      "goroutine 15 [chan receive]:",
    ].join("\n");
    expect(startFailureIsTransient(crash, false)).toBe(true);
    expect(startFailureIsTransient(crash, true)).toBe(true);
    const taken =
      "wrangler dev exited before the edge was up: Address already in use (127.0.0.1:8787)";
    expect(startFailureIsTransient(taken, false)).toBe(true);
    expect(startFailureIsTransient(taken, true)).toBe(false); // the caller's port: said, not moved
    const broken =
      'wrangler dev exited before the edge was up: Build failed with 1 error:\n✘ [ERROR] Could not resolve "./missing.ts"';
    expect(startFailureIsTransient(broken, false)).toBe(false);
  });

  // `group`: the owner's whole process group killed (a closed terminal's SIGHUP reaches a group;
  // the reaper was in it, died with the owner, and wrangler ran on).
  it.each(["alone", "group"])(
    "a process killed with SIGKILL (%s) leaves no edge, no secrets file and no state behind",
    async (how) => {
      const secret = `killed-owner-${randomUUID()}`;
      const owner = spawn(
        process.execPath,
        [join(import.meta.dirname, "edge-owner.ts"), secret, how],
        { stdio: ["ignore", "pipe", "inherit"], detached: how === "group" },
      );
      const line = await new Promise<string>((resolve, reject) => {
        let out = "";
        owner.stdout.on("data", (d: Buffer) => {
          out += d.toString();
          if (out.includes("\n")) resolve(out.split("\n")[0] as string);
        });
        owner.once("exit", () => reject(new Error(`the owner exited first: ${out}`)));
      });
      const started = JSON.parse(line) as { pid: number; port: number; persistTo: string };
      // The premise: the owner died without running its exit handlers, its edge still up.
      expect(await new Promise((r) => owner.once("exit", (_c, sig) => r(sig)))).toBe("SIGKILL");
      const gone = async () => {
        const deadline = Date.now() + 15_000;
        while (groupMembers(started.pid).length > 0 && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 100));
        return groupMembers(started.pid).length === 0;
      };
      expect(await gone()).toBe(true);
      await expect(fetch(`http://127.0.0.1:${started.port}/healthz`)).rejects.toThrow();
      const deadline = Date.now() + 5_000;
      while (existsSync(started.persistTo) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      expect(existsSync(started.persistTo)).toBe(false);
      const varsFiles = readdirSync(tmpdir())
        .filter((d) => d.startsWith("roverlink-vars-"))
        .map((d) => join(tmpdir(), d, "worker.env"))
        .filter((f) => existsSync(f) && readFileSync(f, "utf8").includes(secret));
      expect(varsFiles).toEqual([]);
    },
    60_000,
  );

  it("serves /healthz and the worker with the given vars; stop() leaves no process behind", async () => {
    const edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET } });
    expect(edge.url).toBe(`http://127.0.0.1:${edge.port}`);
    expect(edge.devSecret).toBe(false);
    // State goes to a fresh temporary directory by default.
    expect(edge.persistTo.startsWith(tmpdir())).toBe(true);
    expect(existsSync(edge.persistTo)).toBe(true);
    try {
      const health = await fetch(`${edge.url}/healthz`);
      expect(health.status).toBe(200);
      expect((await health.text()).trim()).toBe("ok");

      // The secret var reached the worker: its tokens pass, others are refused.
      const peers = `${edge.url}/v1/rooms/local-edge/peers`;
      const good = await mintToken({
        secret: SECRET,
        sub: "a",
        room: "local-edge",
        ttlSeconds: 60,
      });
      const bad = await mintToken({
        secret: "other",
        sub: "a",
        room: "local-edge",
        ttlSeconds: 60,
      });
      const ok = await fetch(peers, { headers: { Authorization: `Bearer ${good}` } });
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ peers: [] });
      const refused = await fetch(peers, { headers: { Authorization: `Bearer ${bad}` } });
      expect(refused.status).toBe(401);

      // wrangler and workerd share the edge's own process group.
      expect(groupMembers(edge.pid).map((m) => m.comm)).toContain("workerd");
    } finally {
      await edge.stop();
    }
    expect(groupMembers(edge.pid)).toEqual([]);
    await expect(fetch(`${edge.url}/healthz`)).rejects.toThrow();
    // The temporary state directory it made went with it.
    expect(existsSync(edge.persistTo)).toBe(false);
    // A second stop is harmless.
    await edge.stop();
  });

  it("a taken port fails at once, on the first line, and nothing is left running", async () => {
    // What holds the port answers /healthz as an edge does: it must not pass for this one.
    const blocker: Server = createServer((sock) =>
      sock.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
    );
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const port = (blocker.address() as { port: number }).port;
    const persistTo = mkdtempSync(join(tmpdir(), "roverlink-edge-taken-"));
    try {
      const err = await startLocalEdge({ port, persistTo }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(LocalEdgeError);
      const first = (err as Error).message.split("\n")[0];
      expect(first).toBe(
        `127.0.0.1:${port} is already in use (another edge, or another program): pick another --port`,
      );
      // Once wrangler exits, none of its processes stay behind.
      const deadline = Date.now() + 3_000;
      while (processesMentioning(persistTo).length > 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      expect(processesMentioning(persistTo)).toEqual([]);
    } finally {
      blocker.close();
    }
  });
});
