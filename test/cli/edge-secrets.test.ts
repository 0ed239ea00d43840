/**
 * How the local edge handles secrets: worker variables reach wrangler in a private env file that
 * wrangler's own parser reads back exactly, never on a command line; the development secret
 * serves loopback only; short secrets are refused before anything starts.
 */
import { existsSync, mkdtempSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { unstable_getVarsForDev } from "wrangler";
import {
  EdgeVarsError,
  envFileLine,
  looksSecret,
  MIN_SECRET_BYTES,
  writeVarsFile,
} from "../../rover/edge-vars.ts";
import { DEV_SECRET, edgeVars, LocalEdgeError, startLocalEdge } from "../../rover/local-edge.ts";
import { isLoopbackHost } from "../../rover/loopback.ts";
import { mintToken } from "../../shared/token.ts";
import { commandLines, flagValue, groupMembers, processesMentioning } from "./proc.ts";

/** Distinctive, at least 32 bytes, and full of what env-file parsers like to interpret. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${…} is the point
const SECRET = 'it\'s-$HOME-${PATH}-\\$x-#1-"q"-roverlink-SECRET-7f3a9c';
const TURN = "turn-$TURN_SECRET-`tick`-roverlink-TURNSECRET-51be0e";
const CF_TOKEN = "cf-api-token-roverlink-CFTOKEN-a11d42";

describe("the env file for wrangler", () => {
  it("wrangler's own parser reads every value back exactly", () => {
    const values: Record<string, string> = {
      PLAIN: "plain",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${…} is the point
      DOLLARS: "it's $HOME ${PATH} \\$x $ $$ ${A:-b}",
      APOSTROPHE: "it's",
      BOTH_QUOTES: "a'b`c $HOME",
      SPACES: "  spaces  # not a comment ",
      BACKSLASH_N: "\\n stays two characters",
      BACKSLASH: "\\",
      EQUALS: "x=y==",
      EMPTY: "",
      UNICODE: "grüße 🚀",
    };
    const file = writeVarsFile(values);
    try {
      const parsed = unstable_getVarsForDev(undefined, [file.path], {}, undefined, true);
      const back = Object.fromEntries(
        Object.entries(parsed).map(([k, v]) => [k, (v as { value: string }).value]),
      );
      expect(back).toEqual(values);
    } finally {
      file.remove();
    }
    expect(existsSync(file.path)).toBe(false);
  });

  it("the file is 0600 in a private 0700 directory", () => {
    const file = writeVarsFile({ ROVERLINK_SECRET: SECRET });
    try {
      expect(statSync(file.path).mode & 0o777).toBe(0o600);
      expect(statSync(dirname(file.path)).mode & 0o777).toBe(0o700);
    } finally {
      file.remove();
    }
    expect(existsSync(dirname(file.path))).toBe(false);
  });

  it("refuses what it cannot write faithfully", () => {
    expect(() => envFileLine("A", "line\nbreak")).toThrow(EdgeVarsError);
    expect(() => envFileLine("A", "a'b`c\"d")).toThrow(/env file cannot hold it/);
    // The only quote left would be "…", which turns \n into a line break.
    expect(() => envFileLine("A", "a'b`\\n")).toThrow(/env file cannot hold it/);
    expect(() => envFileLine("BAD-NAME", "x")).toThrow(/must match/);
    expect(() => envFileLine("1ST", "x")).toThrow(/must match/);
  });

  it("knows which variable names hold secrets", () => {
    for (const n of ["ROVERLINK_SECRET", "TURN_SECRET", "CF_TURN_API_TOKEN", "DB_PASSWORD", "KEY"])
      expect(looksSecret(n)).toBe(true);
    for (const n of ["CF_TURN_KEY_ID", "TURN_URLS", "NEARBY_RADIUS", "PRESENCE_TTL_S", "MONKEY_ID"])
      expect(looksSecret(n)).toBe(false);
  });
});

describe("which secret the edge may serve", () => {
  it("loopback is 127.0.0.0/8, ::1 and localhost; nothing else", () => {
    for (const h of ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "::ffff:127.0.0.1", "localhost"])
      expect(isLoopbackHost(h)).toBe(true);
    for (const h of ["0.0.0.0", "::", "10.0.0.1", "192.168.1.5", "fe80::1", "example.com", "::2"])
      expect(isLoopbackHost(h)).toBe(false);
  });

  it("the development secret serves loopback only; short secrets are refused", () => {
    const saved = process.env.ROVERLINK_SECRET;
    delete process.env.ROVERLINK_SECRET;
    try {
      expect(edgeVars("127.0.0.1")).toEqual({
        vars: { ROVERLINK_SECRET: DEV_SECRET },
        devSecret: true,
      });
      expect(edgeVars("::1").devSecret).toBe(true);
      for (const ip of ["0.0.0.0", "::", "10.1.2.3"]) {
        expect(() => edgeVars(ip)).toThrow(/refusing to serve .* development secret/);
        expect(() => edgeVars(ip, { ROVERLINK_SECRET: DEV_SECRET })).toThrow(LocalEdgeError);
        // A real secret may serve any address.
        expect(edgeVars(ip, { ROVERLINK_SECRET: SECRET }).devSecret).toBe(false);
      }
      const short = "x".repeat(MIN_SECRET_BYTES - 1);
      expect(() => edgeVars("127.0.0.1", { ROVERLINK_SECRET: short })).toThrow(
        `ROVERLINK_SECRET is ${MIN_SECRET_BYTES - 1} bytes; use at least ${MIN_SECRET_BYTES}`,
      );
      // Bytes, not characters: 16 two-byte characters are enough.
      expect(edgeVars("127.0.0.1", { ROVERLINK_SECRET: "é".repeat(16) }).devSecret).toBe(false);
      process.env.ROVERLINK_SECRET = SECRET;
      expect(edgeVars("0.0.0.0").vars.ROVERLINK_SECRET).toBe(SECRET);
    } finally {
      if (saved === undefined) delete process.env.ROVERLINK_SECRET;
      else process.env.ROVERLINK_SECRET = saved;
    }
  });

  it("startLocalEdge on 0.0.0.0 without a secret starts nothing", async () => {
    const persistTo = mkdtempSync(join(tmpdir(), "roverlink-edge-refused-"));
    const saved = process.env.ROVERLINK_SECRET;
    delete process.env.ROVERLINK_SECRET;
    try {
      await expect(startLocalEdge({ ip: "0.0.0.0", persistTo })).rejects.toThrow(
        /^refusing to serve 0\.0\.0\.0 with the public development secret/,
      );
    } finally {
      if (saved !== undefined) process.env.ROVERLINK_SECRET = saved;
    }
    expect(processesMentioning(persistTo)).toEqual([]);
  });
});

describe("a local edge with secrets", () => {
  it("no secret is on any command line on this machine; the worker gets them intact", async () => {
    const edge = await startLocalEdge({
      vars: {
        ROVERLINK_SECRET: SECRET,
        TURN_SECRET: TURN,
        CF_TURN_API_TOKEN: CF_TOKEN,
        NEARBY_RADIUS: "5",
      },
    });
    const envFile = flagValue(edge.persistTo, "--env-file");
    try {
      const lines = commandLines();
      // We can read the edge's own command lines: wrangler's names the env file, no secret.
      const wrangler = [...lines.values()].filter((c) => c.includes(edge.persistTo));
      expect(wrangler.length).toBeGreaterThan(0);
      expect(envFile).toMatch(/roverlink-vars-[^/]+\/worker\.env$/);
      const members = groupMembers(edge.pid);
      expect(members.map((m) => m.comm)).toContain("workerd");
      for (const [pid, cmd] of lines) {
        for (const s of [SECRET, TURN, CF_TOKEN, "roverlink-SECRET-7f3a9c", "TURNSECRET-51be0e"])
          expect({ pid, cmd: cmd.includes(s) }).toEqual({ pid, cmd: false });
      }
      const file = envFile as string;
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(dirname(file)).mode & 0o777).toBe(0o700);

      // The secret reached the worker exactly: its tokens pass, others are refused.
      const peers = `${edge.url}/v1/rooms/secrets/peers`;
      const mint = (secret: string) =>
        mintToken({ secret, sub: "a", room: "secrets", ttlSeconds: 60 });
      const ok = await fetch(peers, { headers: { Authorization: `Bearer ${await mint(SECRET)}` } });
      expect(ok.status).toBe(200);
      for (const other of [DEV_SECRET, SECRET.replaceAll("$", ""), `${SECRET}x`]) {
        const r = await fetch(peers, { headers: { Authorization: `Bearer ${await mint(other)}` } });
        expect(r.status).toBe(401);
      }
    } finally {
      await edge.stop();
    }
    // The file goes with the edge.
    expect(existsSync(dirname(envFile as string))).toBe(false);
  });
});
