/**
 * The browser console end to end: Debian's Chromium loads the console from a local edge
 * (`wrangler dev` serving console/dist as static assets), signs in with a token, and links over
 * WebRTC through the edge's HTTP protocol only — to a real werift rover (the roverlink CLI with
 * --echo) and to another browser for a voice call with Chromium's fake microphone.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { freePort, startLocalEdge } from "../../rover/local-edge.ts";
import { mintToken } from "../../shared/token.ts";
import { tcpProxy } from "../cli/tcp-proxy.ts";
import { launchChromium, recordPeerConnections } from "./chromium.ts";
import { echoedBack, link, received, sendChat } from "./console-page.ts";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const SECRET = "browser-test-secret-browser-test-secret";
const ROOM = "console-e2e";
const ARTIFACTS = join(repo, "test-results");

let edge: { url: string; stop(): Promise<void> };
let browser: Browser;
const children: ChildProcess[] = [];
const cspViolations: string[] = [];

async function token(sub: string): Promise<string> {
  return mintToken({ secret: SECRET, sub, room: ROOM, ttlSeconds: 900 });
}

/** Open the console served by the edge and sign in through the form. */
async function signIn(page: Page, peer: string): Promise<void> {
  // The page runs under its Content-Security-Policy (console/public/_headers): anything the
  // console does that the policy forbids is reported, and fails the test at its end.
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  const res = await page.goto(`${edge.url}/`);
  expect(res?.headers()["content-security-policy"]).toContain("frame-ancestors 'none'");
  // The edge URL defaults to the page's origin.
  await expect.poll(() => page.getByLabel("Edge URL").inputValue()).toBe(new URL(edge.url).origin);
  await page.getByLabel("Token").fill(await token(peer));
  // The room is read from the token's claims.
  await expect.poll(() => page.getByLabel("Room").inputValue()).toBe(ROOM);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: `Room ${ROOM}` }).waitFor();
  await expect.poll(() => page.locator("#status").textContent()).toContain(`Signed in as ${peer}`);
}

/** Two operators signed in, each in a browser of its own; `caller` calls `callee`, who rings. */
async function ringing(caller: string, callee: string): Promise<[Page, Page]> {
  const from = await (await browser.newContext()).newPage();
  const to = await (await browser.newContext()).newPage();
  await signIn(from, caller);
  await signIn(to, callee);
  await from.locator(`tr[data-peer="${callee}"]`).waitFor();
  await from.getByRole("button", { name: `Call ${callee}` }).click();
  await expect
    .poll(() => link(to, caller).getAttribute("data-voice"), { timeout: 20_000 })
    .toBe("ringing");
  return [from, to];
}

function startRover(id: string, extra: string[] = []): ChildProcess {
  const child = spawn(
    process.execPath,
    [
      join(repo, "rover/cli.ts"),
      "rover",
      "--edge",
      edge.url,
      "--room",
      ROOM,
      "--id",
      id,
      "--echo",
      ...extra,
    ],
    {
      cwd: repo,
      env: { ...process.env, ROVERLINK_SECRET: SECRET, ROVERLINK_LOG_LEVEL: "warn" },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let err = "";
  child.stderr?.on("data", (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  child.on("exit", (code) => {
    if (code && code !== 0) console.error(`rover ${id} exited ${code}: ${err}`);
  });
  children.push(child);
  return child;
}

async function figure(page: Page, peer: string, name: string): Promise<string> {
  return (await link(page, peer).locator(`[data-figure="${name}"]`).textContent()) ?? "";
}

async function audioRx(page: Page, peer: string): Promise<number> {
  return Number((await link(page, peer).getAttribute("data-audio-rx")) ?? "0");
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET, NEARBY_RADIUS: "5" } });
  browser = await launchChromium();
});

afterEach(() => {
  const seen = cspViolations.splice(0);
  expect(seen, "the console broke its own Content-Security-Policy").toEqual([]);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  await browser?.close();
  await edge?.stop();
});

/** `npm start` as a newcomer runs it, on a free port; its stdout lines as they come. */
function startDemo(port: number) {
  const child = spawn(process.execPath, [join(repo, "scripts/demo.ts")], {
    cwd: repo,
    env: { ...process.env, PORT: String(port), ROVERLINK_SECRET: SECRET },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.on("exit", (code, signal) => r({ code, signal })),
  );
  return {
    child,
    exited,
    out: () => out,
    async line(pattern: RegExp, ms = 120_000): Promise<RegExpMatchArray> {
      const end = Date.now() + ms;
      for (;;) {
        const m = out.match(pattern);
        if (m) return m;
        if (Date.now() > end) throw new Error(`no ${pattern} in the demo's output:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

/** The process group wrangler runs in for the demo (its child, started in a group of its own). */
function edgeGroupOf(parent: number): number | null {
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      const [, ppid, pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(ppid) === parent && Number(pgrp) === Number(d)) return Number(d);
    } catch {
      // exited while we looked
    }
  }
  return null;
}

describe("npm start", () => {
  it("prints a sign-in link that signs the console in; Ctrl-C ends it even with the edge frozen", async () => {
    const port = await freePort();
    const demo = startDemo(port);
    const [, url] = await demo.line(/^console: (\S+)/m);
    expect(url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${port}/#token=eyJ`));
    const ctx = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    const page = await ctx.newPage();
    await page.goto(String(url));
    await page.getByRole("heading", { name: "Room demo" }).waitFor({ timeout: 30_000 });
    await expect
      .poll(() => page.locator("#status").textContent())
      .toContain("Signed in as operator");
    // The token left the address bar at once.
    expect(page.url()).toBe(`http://127.0.0.1:${port}/`);
    // A reload signs the tab in again (the tab kept the token), without the form.
    await page.reload();
    await page.getByRole("heading", { name: "Room demo" }).waitFor({ timeout: 30_000 });
    await expect
      .poll(() => page.locator("#status").textContent())
      .toContain("Signed in as operator");
    // The demo rovers are there; link to alpha: its health pings fill RTT and loss, and none of
    // them shows as telemetry.
    await page.locator('tr[data-peer="alpha"]').waitFor({ timeout: 30_000 });
    await page.getByRole("button", { name: "Connect to alpha" }).click();
    await expect
      .poll(() => link(page, "alpha").getAttribute("data-state"), { timeout: 30_000 })
      .toBe("connected");
    await expect.poll(() => figure(page, "alpha", "ping"), { timeout: 15_000 }).toMatch(/ms$/);
    await expect.poll(() => figure(page, "alpha", "loss"), { timeout: 15_000 }).toMatch(/%$/);
    const telemetry = link(page, "alpha").getByRole("log", { name: "Telemetry from alpha" });
    // The demo rover's own telemetry shows (before, the pane stayed empty), its pings do not.
    await expect
      .poll(() => telemetry.textContent(), { timeout: 10_000 })
      .toMatch(/telemetry · rover alpha · x [-\d.]+ · y [-\d.]+ · battery /);
    expect((await telemetry.allTextContents()).join("\n")).not.toContain("rlp");
    // Each reading says when it came.
    expect(
      Date.parse((await telemetry.locator("li time").last().getAttribute("datetime")) ?? ""),
    ).toBeGreaterThan(Date.now() - 10_000);
    // The map follows the rovers: the demo publishes their positions every 5 s.
    const where = page.locator('svg.map g[data-peer="alpha"] title');
    const first = await where.textContent();
    expect(first).toMatch(/^alpha at \(/);
    await expect.poll(() => where.textContent(), { timeout: 15_000 }).not.toBe(first);
    // The demo's terminal is about alpha and bravo: a browser linking to alpha is no second
    // "link: alpha <-> bravo up" (before, one with the time since the demo started).
    expect(demo.out().match(/^link: /gm)?.length, demo.out()).toBe(1);
    // Disconnect: the panel goes, and the room log says the link ended and why.
    await link(page, "alpha").getByRole("button", { name: "Disconnect" }).click();
    await expect
      .poll(() => page.getByRole("log", { name: "Room log" }).textContent())
      .toContain("alpha: link closed: disconnected");
    expect(await link(page, "alpha").count()).toBe(0);
    // Signing out is for good: a reload shows the form, not the room.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor({ timeout: 10_000 });
    await page.reload();
    await page.getByRole("heading", { name: "Sign in" }).waitFor({ timeout: 10_000 });
    expect(await page.getByRole("heading", { name: "Room demo" }).count()).toBe(0);
    await ctx.close();

    // The edge stops answering (frozen: connections open, nothing comes back); Ctrl-C still
    // ends the demo before a supervisor's 3 s are up.
    await demo.line(/^link: /m);
    const group = edgeGroupOf(demo.child.pid as number);
    expect(group).not.toBeNull();
    process.kill(-(group as number), "SIGSTOP");
    try {
      demo.child.kill("SIGINT");
      const killer = setTimeout(() => demo.child.kill("SIGKILL"), 3_000);
      const exit = await demo.exited;
      clearTimeout(killer);
      expect(exit, demo.out()).toEqual({ code: 0, signal: null });
      expect(demo.out()).toMatch(/^done: /m);
    } finally {
      // Whatever happened, leave no frozen edge behind.
      for (const sig of ["SIGCONT", "SIGKILL"] as const) {
        try {
          process.kill(-(group as number), sig);
        } catch {
          // the group is gone: the demo took its edge down, as it should
        }
      }
    }
  });
});

describe("console served by the edge", () => {
  it("links to a werift rover, exchanges messages both ways, restarts ICE on a network change", async () => {
    startRover("rover-1", ["--position", "3,4"]);
    const ctx = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    const page = await ctx.newPage();
    // The edge's list of peers, read again every 15 s, says rover-1 was last seen an hour ago:
    // once linked, the row must show what the link hears instead.
    let staleLists = 0;
    await page.route(/\/v1\/rooms\/[^/]+\/peers(\?.*)?$/, async (route) => {
      if (route.request().method() !== "GET") return route.continue();
      const res = await route.fetch();
      const body = (await res.json()) as { peers: { id: string; lastSeen: number }[] };
      for (const p of body.peers) if (p.id === "rover-1") p.lastSeen = Date.now() - 3_600_000;
      staleLists++;
      await route.fulfill({ response: res, json: body });
    });
    await signIn(page, "op-1");
    // A missing coordinate is said at its field, and nothing is sent.
    await page.getByRole("button", { name: "Set position" }).click();
    expect(
      await page
        .getByLabel("x", { exact: true })
        .evaluate((el) => (el as HTMLInputElement).validationMessage),
    ).toBe("a number, please");
    await page.getByLabel("x", { exact: true }).fill("1");
    await page.getByLabel("y", { exact: true }).fill("2");
    await page.getByRole("button", { name: "Set position" }).click();

    // The rover shows up in the room view with its kind.
    const row = page.locator('tr[data-peer="rover-1"]');
    await row.waitFor({ timeout: 30_000 });
    await expect.poll(() => row.locator("td").first().textContent()).toBe("rover");

    await page.getByRole("button", { name: "Connect to rover-1" }).click();
    await expect
      .poll(() => link(page, "rover-1").getAttribute("data-state"), { timeout: 30_000 })
      .toBe("connected");
    // Said in the (polite, live) room log, once: a screen reader was told nothing of it.
    await expect
      .poll(() => page.getByRole("log", { name: "Room log" }).textContent())
      .toContain("rover-1: linked");

    // Browser -> rover on `control`, and back (the rover echoes).
    await sendChat(page, "rover-1", "hello rover");
    await expect.poll(() => received(page, "rover-1")).toContain("op-1: hello rover");
    await link(page, "rover-1").getByLabel("Command").fill('drive {"v":0.5}');
    await link(page, "rover-1").getByRole("button", { name: "Run" }).click();
    await expect.poll(() => received(page, "rover-1")).toContain('op-1 ▸ drive {"v":0.5}');
    // A missing brace: not sent as words, kept in the box with the reason on it.
    const cmd = link(page, "rover-1").getByLabel("Command");
    await cmd.fill('drive {"v":0.7');
    await link(page, "rover-1").getByRole("button", { name: "Run" }).click();
    expect(await cmd.evaluate((el) => (el as HTMLInputElement).validationMessage)).toMatch(
      /^not sent: the arguments are not valid JSON/,
    );
    expect(await cmd.inputValue()).toBe('drive {"v":0.7');
    const sent = link(page, "rover-1").getByRole("log", { name: "Messages with rover-1" });
    expect(await sent.textContent()).not.toContain('{"v":0.7');

    // Pings on `telemetry` come back from the rover: a measured round trip, loss, and a path.
    await expect.poll(() => figure(page, "rover-1", "ping"), { timeout: 15_000 }).toMatch(/ms$/);
    await expect.poll(() => figure(page, "rover-1", "loss"), { timeout: 15_000 }).toMatch(/%$/);
    await expect.poll(() => figure(page, "rover-1", "path")).toBe("direct");
    // The link's own health probes (both ways) are not application telemetry: none shown.
    const telemetry = link(page, "rover-1").getByRole("log", { name: "Telemetry from rover-1" });
    expect((await telemetry.allTextContents()).join("\n")).not.toContain("rlp");

    // The browser's network changes: ICE restart by re-POST, the link comes back and still works.
    await page.evaluate(() => window.dispatchEvent(new Event("online")));
    await expect
      .poll(async () => Number(await figure(page, "rover-1", "restarts")), { timeout: 15_000 })
      .toBeGreaterThanOrEqual(1);
    await expect
      .poll(() => link(page, "rover-1").getAttribute("data-state"), { timeout: 30_000 })
      .toBe("connected");
    await echoedBack(page, "rover-1", "op-1", "after restart");

    // Voice to a rover: the agent declines audio, and the console says so (before: "Voice: on",
    // the microphone going nowhere). Adding voice renegotiates: no handover to count.
    const restartsBefore = await figure(page, "rover-1", "restarts");
    await link(page, "rover-1").getByRole("button", { name: "Start voice" }).click();
    await expect
      .poll(() => page.getByRole("log", { name: "Room log" }).textContent(), { timeout: 15_000 })
      .toContain("rover-1: takes no voice (no call)");
    expect(await link(page, "rover-1").getAttribute("data-voice")).toBe("off");
    await page.waitForTimeout(1_200); // a figures sample after it
    expect(await figure(page, "rover-1", "restarts")).toBe(restartsBefore);
    const log = (await page.getByRole("log", { name: "Room log" }).textContent()) ?? "";
    expect(log).toContain("rover-1: ICE restart (adding voice)");
    expect(log).not.toContain("rover-1: ICE restart (manual");
    await echoedBack(page, "rover-1", "op-1", "after voice");
    // Our line says the rover has it (its acknowledgement), not only that it went out.
    await expect
      .poll(() =>
        link(page, "rover-1").locator("li.out.delivered", { hasText: "op-1: after voice" }).count(),
      )
      .toBe(1);
    // Our own line coming back from the echoing rover says so (it looked sent twice).
    const echoLine = link(page, "rover-1").locator("li.in", { hasText: "op-1: after voice" });
    expect(await echoLine.locator(".tag").textContent()).toBe("echoed by rover-1");

    // "Last seen" of the linked rover is its last message on the link, not the edge's stale list.
    await expect.poll(() => staleLists, { timeout: 20_000 }).toBeGreaterThan(0);
    await page.waitForTimeout(1_000); // the table rendered after that read
    expect(await page.locator('tr[data-peer="rover-1"] time').textContent()).toMatch(/^\d s ago$/);

    // A reload links again to the peers the tab was linked to, and control works on it.
    await page.reload();
    await expect
      .poll(() => page.getByRole("log", { name: "Room log" }).textContent(), { timeout: 20_000 })
      .toContain("linking again to rover-1 (as before the reload)");
    await expect
      .poll(() => link(page, "rover-1").getAttribute("data-state"), { timeout: 30_000 })
      .toBe("connected");
    await echoedBack(page, "rover-1", "op-1", "after reload");

    // The room view as an artifact (desktop and phone widths); the map shows both positions.
    await expect.poll(() => page.locator('svg.map g[data-peer="rover-1"]').count()).toBe(1);
    await expect.poll(() => page.locator('svg.map g[data-peer="op-1"]').count()).toBe(1);
    await page.waitForTimeout(1500); // a few chart samples
    await page.screenshot({ path: join(ARTIFACTS, "console-room.png"), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(ARTIFACTS, "console-room-phone.png"), fullPage: true });
    await ctx.close();
  });

  it("keeps control exactly-once and in order to a rover and back across an ICE restart and a rebuild", async () => {
    startRover("rover-2");
    const ctx = await browser.newContext();
    // So that the test can kill one under the console (as a crashed network stack would).
    await recordPeerConnections(ctx);
    const page = await ctx.newPage();
    await signIn(page, "op-2");
    await page.locator('tr[data-peer="rover-2"]').waitFor({ timeout: 30_000 });
    await page.getByRole("button", { name: "Connect to rover-2" }).click();
    await expect
      .poll(() => link(page, "rover-2").getAttribute("data-state"), { timeout: 30_000 })
      .toBe("connected");

    // 90 chats, one every 40 ms, through the UI: an ICE restart (network change) after 30, the
    // PeerConnection killed after 60 (the policy's restarts fail, it rebuilds). The rover echoes.
    const N = 90;
    const sent = Array.from({ length: N }, (_, i) => `m${i}`);
    await page.evaluate(
      async ({ peer, texts }) => {
        const panel = document.querySelector(`section[data-link="${peer}"]`) as HTMLElement;
        const input = panel.querySelector(`#chat-${peer}`) as HTMLInputElement;
        const form = input.closest("form") as HTMLFormElement;
        const pause = () => new Promise((r) => setTimeout(r, 40));
        for (const [i, text] of texts.entries()) {
          if (i === 30) window.dispatchEvent(new Event("online"));
          if (i === 60)
            (window as unknown as { madePcs: RTCPeerConnection[] }).madePcs.at(-1)?.close();
          input.value = text;
          form.requestSubmit();
          await pause();
        }
      },
      { peer: "rover-2", texts: sent },
    );
    const echoed = async () =>
      (await received(page, "rover-2"))
        .filter((t) => /^op-2: m\d+$/.test(t))
        .map((t) => t.slice("op-2: ".length));
    await expect.poll(echoed, { timeout: 60_000 }).toHaveLength(N);
    // A rebuild happened (a new RTCPeerConnection), and the link is back.
    expect(
      await page.evaluate(() => (window as unknown as { madePcs: unknown[] }).madePcs.length),
    ).toBeGreaterThanOrEqual(2);
    await expect
      .poll(() => link(page, "rover-2").getAttribute("data-state"), { timeout: 30_000 })
      .toBe("connected");
    // The policy's decisions were carried out: an ICE restart that completed, then a rebuild.
    const roomLog = page.getByRole("log", { name: "Room log" });
    await expect.poll(() => roomLog.textContent()).toMatch(/rover-2: ICE restart done/);
    await expect
      .poll(() => roomLog.textContent())
      .toMatch(/rover-2: rebuilding the PeerConnection/);
    // Late duplicates would show up after the acks and resends settled.
    await page.waitForTimeout(1500);
    expect(await echoed()).toEqual(sent);
    await ctx.close();
  });

  it.each([
    ["in memory", "phoenix-m", false],
    ["with its state on disk", "phoenix-d", true],
  ] as const)(
    "lines typed just before and while a rover (%s) restarts reach its new process, each once and in order",
    async (_how, id, durable) => {
      const self = `${id}-op`;
      const extra = durable
        ? ["--state-dir", mkdtempSync(join(tmpdir(), "console-restart-"))]
        : ["--in-memory"];
      let rover = startRover(id, extra);
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await signIn(page, self);
      await page.locator(`tr[data-peer="${id}"]`).waitFor({ timeout: 30_000 });
      await page.getByRole("button", { name: `Connect to ${id}` }).click();
      const panel = link(page, id);
      await expect
        .poll(() => panel.getAttribute("data-state"), { timeout: 30_000 })
        .toBe("connected");
      // Acknowledged by the first process: a new process without its state then needs a new
      // stream (with nothing acknowledged the old one from 0 would do).
      await echoedBack(page, id, self, "before");
      await expect.poll(() => panel.locator("li.out.delivered").count()).toBe(1);
      const lines = (texts: string[]) => texts.map((t) => `${self}: ${t}`);
      // Just before: typed, and the process stopped at once (each may or may not have reached it).
      // Not with its state on disk: a line it took and kept is not owed to the next process, and
      // its echoes, resent from its own outbox, would not tell which process took it.
      const justBefore = durable ? [] : ["just-before-0", "just-before-1"];
      for (const t of justBefore) await sendChat(page, id, t);
      rover.kill("SIGSTOP");
      // While it is stopped, killed and not yet back: nobody acknowledges these.
      const whileDown = ["while-stopped-0", "while-stopped-1", "while-stopped-2"];
      for (const t of whileDown) await sendChat(page, id, t);
      rover.kill("SIGKILL");
      await new Promise((r) => setTimeout(r, 500)); // anything the old process sent has landed
      const whileDead = ["while-dead-0", "while-dead-1"];
      for (const t of whileDead) await sendChat(page, id, t);
      // What the old process acknowledged is its own; the rest is the new one's, each once.
      const ackedByOld = await panel.locator("li.out.delivered .text").allTextContents();
      const owed = lines([...justBefore, ...whileDown, ...whileDead]).filter(
        (t) => !ackedByOld.includes(t),
      );
      // The premise: the old process died owing lines (those typed while it was stopped at least).
      expect(ackedByOld).toEqual(expect.arrayContaining(lines(["before"])));
      for (const t of lines([...whileDown, ...whileDead])) expect(owed).toContain(t);

      rover = startRover(id, extra);
      const roomLog = page.getByRole("log", { name: "Room log" });
      await expect
        .poll(() => roomLog.textContent(), { timeout: 30_000 })
        .toContain(`${id}: link closed: the peer restarted`);
      await expect
        .poll(() => panel.getAttribute("data-state"), { timeout: 45_000 })
        .toBe("connected");
      expect(await roomLog.textContent()).toContain(`${id} is back: linking again`);
      // The new process echoes what it received: every owed line, once, in order.
      const echoed = async () =>
        (await received(page, id)).filter((t) => t.startsWith(`${self}: `));
      await expect.poll(echoed, { timeout: 30_000 }).toHaveLength(owed.length);
      await page.waitForTimeout(1500); // late duplicates would show by now
      expect(await echoed()).toEqual(owed);
      // The new panel shows them as ours, now acknowledged.
      await expect
        .poll(() => panel.locator("li.out.delivered .text").allTextContents(), { timeout: 10_000 })
        .toEqual(owed);
      if (!durable)
        expect(await roomLog.textContent()).toContain(
          `${id}: its new process starts from nothing: ${owed.length} unacknowledged messages of ours go to it again`,
        );
      // Nothing of this test runs on under the ones after it.
      await ctx.close();
      rover.kill("SIGTERM");
    },
  );

  it("holds a voice call between two browsers (fake microphone), with mute and hang up", async () => {
    const [a, b] = await ringing("alice", "bob");
    await expect
      .poll(() => link(a, "bob").getAttribute("data-state"), { timeout: 20_000 })
      .toBe("connected");

    // Chat works on the same link.
    await sendChat(a, "bob", "can you hear me?");
    await expect.poll(() => received(b, "alice")).toContain("alice: can you hear me?");

    await link(b, "alice").getByRole("button", { name: "Accept call" }).click();
    await expect.poll(() => link(b, "alice").getAttribute("data-voice")).toBe("on");

    // Audio RTP flows both ways: inbound-rtp bytesReceived keeps growing on each side.
    const a0 = await audioRx(a, "bob");
    const b0 = await audioRx(b, "alice");
    await expect.poll(() => audioRx(a, "bob"), { timeout: 15_000 }).toBeGreaterThan(a0 + 1000);
    await expect.poll(() => audioRx(b, "alice"), { timeout: 15_000 }).toBeGreaterThan(b0 + 1000);

    await link(a, "bob").getByRole("button", { name: "Mute" }).click();
    await expect.poll(() => link(a, "bob").getAttribute("data-voice")).toBe("muted");
    await link(a, "bob").getByRole("button", { name: "Unmute" }).click();
    await expect.poll(() => link(a, "bob").getAttribute("data-voice")).toBe("on");

    await link(a, "bob").getByRole("button", { name: "Hang up" }).click();
    await expect.poll(() => link(a, "bob").getAttribute("data-voice")).toBe("off");
    await expect
      .poll(() => b.getByRole("log", { name: "Room log" }).textContent())
      .toContain("alice: hung up");
    await expect.poll(() => link(b, "alice").getAttribute("data-voice")).toBe("off");
    // The call's signaling is logged, not listed with the messages (before: raw JSON there).
    expect(await b.getByRole("log", { name: "Room log" }).textContent()).toContain(
      "alice: calling",
    );
    expect((await received(b, "alice")).join("\n")).not.toContain('"type":"voice"');
    expect((await received(a, "bob")).join("\n")).not.toContain('"type":"voice"');
  });

  it("a tab reloaded while called: no stale call or stuck link after it, and the caller says why its link ended", async () => {
    const [b, a] = await ringing("dan", "carla");
    await a.reload();
    await a.getByRole("heading", { name: `Room ${ROOM}` }).waitFor({ timeout: 20_000 });
    await expect.poll(() => a.locator("#status").textContent()).toContain("Signed in as carla");
    const bLog = b.getByRole("log", { name: "Room log" });
    await expect
      .poll(() => bLog.textContent(), { timeout: 20_000 })
      .toContain("carla: link closed: the peer restarted");
    // The new page got none of the old page's events (before, dan's call was offered to it
    // again and its link sat at "connecting", or "409 Nothing to answer"); an offer dan's side
    // still had in flight when it learned of the reload is hung up, not left answered. Dan's
    // console links again to the new page by itself (dan made that link), without voice.
    await a.locator('tr[data-peer="dan"]').waitFor();
    await expect
      .poll(() => bLog.textContent(), { timeout: 20_000 })
      .toContain("carla is back: linking again");
    await expect
      .poll(() => link(a, "dan").getAttribute("data-state"), { timeout: 20_000 })
      .toBe("connected");
    expect(await link(a, "dan").getAttribute("data-voice")).toBe("off");
    expect(await a.getByRole("log", { name: "Room log" }).textContent()).not.toContain("409");
    expect(await bLog.textContent()).not.toContain("rebuild:");
  });

  it("rebuilds at once when the peer closes its PeerConnection without a word to the edge", async () => {
    const a = await (await browser.newContext()).newPage();
    const bCtx = await browser.newContext();
    await recordPeerConnections(bCtx);
    const b = await bCtx.newPage();
    await signIn(a, "carol");
    await signIn(b, "dave");
    await a.locator('tr[data-peer="dave"]').waitFor();
    await a.getByRole("button", { name: "Connect to dave" }).click();
    await expect
      .poll(() => link(a, "dave").getAttribute("data-state"), { timeout: 20_000 })
      .toBe("connected");
    // An idle link: b's PeerConnection closes (its SCTP ABORT and DTLS close_notify reach a),
    // nothing goes to the edge. a must not wait for its keepalive to miss (~25 s).
    await b.evaluate(() =>
      (window as unknown as { madePcs: RTCPeerConnection[] }).madePcs.at(-1)?.close(),
    );
    const roomLog = a.getByRole("log", { name: "Room log" });
    await expect
      .poll(() => roomLog.textContent(), { timeout: 10_000 })
      .toMatch(
        /dave: the peer closed the PeerConnection.*dave: rebuilding the PeerConnection \(peer-closed/,
      );
    await expect
      .poll(() => link(a, "dave").getAttribute("data-state"), { timeout: 20_000 })
      .toBe("connected");
    await sendChat(a, "dave", "still there?");
    await expect.poll(() => received(b, "carol")).toContain("carol: still there?");
    // b saw its own PeerConnection closed under it (not a peer close); nobody broke the protocol.
    await expect
      .poll(() => b.getByRole("log", { name: "Room log" }).textContent())
      .toMatch(/carol: the PeerConnection was closed under the link/);
    expect(await roomLog.textContent()).not.toContain("protocol violation");
    expect(await b.getByRole("log", { name: "Room log" }).textContent()).not.toContain(
      "protocol violation",
    );
  });

  it("log panes are keyboard-focusable, scrollable and polite; the map has a scale that matches it", async () => {
    const aCtx = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    const bCtx = await browser.newContext();
    const a = await aCtx.newPage();
    const b = await bCtx.newPage();
    await signIn(a, "scale-a");
    await signIn(b, "scale-b");
    // Two positions 10 map units apart (a 6-8-10 triangle).
    for (const [page, x, y] of [
      [a, 1, 2],
      [b, 7, 10],
    ] as const) {
      await page.getByLabel("x", { exact: true }).fill(String(x));
      await page.getByLabel("y", { exact: true }).fill(String(y));
      await page.getByRole("button", { name: "Set position" }).click();
    }
    await a.locator('svg.map g[data-peer="scale-b"]').waitFor({ timeout: 15_000 });
    await expect
      .poll(() => a.locator('svg.map g[data-peer="scale-b"] title').textContent())
      .toBe("scale-b at (7, 10)");
    const map = await a.evaluate(() => {
      const num = (el: Element | null | undefined, k: string) => Number(el?.getAttribute(k));
      const dot = (id: string) =>
        document.querySelector(`svg.map g[data-peer="${id}"] circle`) as Element;
      const bar = document.querySelector("svg.map g.scale line") as Element | null;
      return {
        title: document.querySelector("svg.map > title")?.textContent ?? "",
        label: document.querySelector("svg.map g.scale text")?.textContent ?? "",
        units: num(document.querySelector("svg.map g.scale"), "data-units"),
        bar: num(bar, "x2") - num(bar, "x1"),
        apart: Math.hypot(
          num(dot("scale-b"), "cx") - num(dot("scale-a"), "cx"),
          num(dot("scale-b"), "cy") - num(dot("scale-a"), "cy"),
        ),
      };
    });
    // The bar says its length in map units, and so does the map's title (read out as its name).
    expect(map.units).toBeGreaterThan(0);
    expect(map.label).toBe(`${map.units} map unit${map.units === 1 ? "" : "s"}`);
    expect(map.title).toContain(`grid lines every ${map.label}`);
    // It means what it says: the two markers are 10 map units apart on its scale.
    expect(map.bar).toBeGreaterThan(0);
    expect((map.apart / map.bar) * map.units).toBeCloseTo(10, 6);

    // Log panes: in the tab order, named, announced politely (telemetry not at all: it comes every
    // second and would drown the rest), the Room log and a link's two.
    await a.getByRole("button", { name: "Connect to scale-b" }).click();
    await expect
      .poll(() => link(a, "scale-b").getAttribute("data-state"), { timeout: 20_000 })
      .toBe("connected");
    const panes = [
      ["Room log", "polite"],
      ["Messages with scale-b", "polite"],
      ["Telemetry from scale-b", "off"],
    ] as const;
    for (const [name, live] of panes) {
      const pane = a.getByRole("log", { name });
      expect(await pane.getAttribute("aria-live"), name).toBe(live);
      // Focusable even while empty and not scrollable (the telemetry pane is empty here).
      await pane.focus();
      expect(
        await pane.evaluate((el) => el === document.activeElement && el.tabIndex === 0),
        name,
      ).toBe(true);
    }
    // Reached by Tab from the top of the page, and scrolled with the keyboard once it is full.
    const roomLog = a.getByRole("log", { name: "Room log" });
    for (let i = 0; i < 30; i++) await a.evaluate(() => window.dispatchEvent(new Event("online")));
    await expect
      .poll(() => roomLog.evaluate((el) => el.scrollHeight > el.clientHeight + 50))
      .toBe(true);
    await a.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
    const tabbed: string[] = [];
    for (let i = 0; i < 100; i++) {
      await a.keyboard.press("Tab");
      const label = await a.evaluate(() => document.activeElement?.getAttribute("aria-label"));
      tabbed.push(label ?? "");
      if (label === "Room log") break;
    }
    expect(tabbed.at(-1), tabbed.join(" | ")).toBe("Room log");
    const top = () => roomLog.evaluate((el) => el.scrollTop);
    await a.keyboard.press("Home");
    await expect.poll(top).toBe(0);
    await a.keyboard.press("End");
    await expect.poll(top).toBeGreaterThan(0);
    await a.keyboard.press("Home");
    await expect.poll(top).toBe(0);
    await Promise.all([aCtx.close(), bCtx.close()]);
  });

  it("fits a phone's width and a desktop's: the room's table and its buttons stay inside the page, whatever a peer's id and kind", async () => {
    const other = await (await browser.newContext()).newPage();
    await signIn(other, "operator-with-a-rather-long-name");
    const short = await (await browser.newContext()).newPage();
    await signIn(short, "alpha");
    // The longest id and kind the edge takes (64 and 32 characters): one such peer pushed every
    // operator's Connect buttons out of the card, on a desktop too.
    const longId = "x".repeat(64);
    const joined = await fetch(`${edge.url}/v1/rooms/${ROOM}/peers`, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${await token(longId)}`,
        "Content-Type": "application/json",
      },
      body: JSON.stringify({ kind: "rover.with.a.long.kind.name.32ch" }),
    });
    expect(joined.status).toBe(201);
    const page = await (
      await browser.newContext({ viewport: { width: 360, height: 800 } })
    ).newPage();
    await signIn(page, "narrow");
    await page.getByRole("button", { name: "Call operator-with-a-rather-long-name" }).waitFor();
    await page.getByRole("button", { name: "Call alpha" }).waitFor();
    await page.getByRole("button", { name: `Call ${longId}` }).waitFor();
    // A short id stays on one line (before: "alph|a").
    const lines = (sel: string) =>
      page.evaluate((s) => {
        const r = document.createRange();
        r.selectNodeContents(document.querySelector(s) as Node);
        return r.getClientRects().length;
      }, sel);
    expect(await lines('tr[data-peer="alpha"] > th')).toBe(1);
    /** How far the page scrolls sideways, and the peers table sticks out of its card (px). */
    const overflowOf = (p: Page) =>
      p.evaluate(() => {
        const section = document.getElementById("peers") as HTMLElement;
        const table = section.querySelector("table") as HTMLElement;
        return {
          page: document.documentElement.scrollWidth - window.innerWidth,
          table: table.getBoundingClientRect().right - section.getBoundingClientRect().right,
        };
      });
    const overflow = await overflowOf(page);
    // Before: the Call buttons stuck out past the card and the page scrolled sideways.
    expect(overflow.page).toBeLessThanOrEqual(0);
    expect(overflow.table).toBeLessThanOrEqual(0);
    // A desktop's width: the table stays in its card, beside the map, not over it.
    const wide = await (
      await browser.newContext({ viewport: { width: 1280, height: 800 } })
    ).newPage();
    await signIn(wide, "wide");
    await wide.getByRole("button", { name: `Call ${longId}` }).waitFor();
    const desk = await overflowOf(wide);
    expect(desk.page).toBeLessThanOrEqual(0);
    expect(desk.table).toBeLessThanOrEqual(0);
  });

  it("a peer that never answers: the console offers again, as the health policy says (it stayed connecting)", async () => {
    // A present peer that takes no offers (joined with curl): kept present by its long-polls.
    const mute = await token("mute");
    const auth = { Authorization: `Bearer ${mute}` };
    const joined = await fetch(`${edge.url}/v1/rooms/${ROOM}/peers`, {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/json" },
      body: "{}",
    });
    const { cursor } = (await joined.json()) as { cursor: string };
    const stop = new AbortController();
    const present = (async () => {
      while (!stop.signal.aborted) {
        await fetch(`${edge.url}/v1/rooms/${ROOM}/peers/mute/events?wait=5&after=${cursor}`, {
          headers: auth,
          signal: stop.signal,
        }).catch(() => undefined);
      }
    })();
    try {
      const page = await (await browser.newContext()).newPage();
      await signIn(page, "patient-offerer");
      await page.getByRole("button", { name: "Connect to mute" }).click();
      await expect
        .poll(() => page.getByRole("log", { name: "Room log" }).textContent(), {
          timeout: 30_000,
        })
        .toMatch(/mute: offering again \(offer-unanswered, attempt 1\)/);
    } finally {
      stop.abort();
      await present;
    }
  }, 60_000);

  it("a sign-in link that fails its checks keeps its token in the form, and says why", async () => {
    const page = await (await browser.newContext()).newPage();
    const expired = await mintToken({
      secret: SECRET,
      sub: "late",
      room: ROOM,
      ttlSeconds: 60,
      nowS: Math.floor(Date.now() / 1000) - 3600,
    });
    await page.goto(`${edge.url}/#token=${expired}`);
    await expect
      .poll(() => page.locator("#signin-error").textContent())
      .toBe("this token has expired");
    // Before, the form came back empty: the link's token was nowhere else.
    expect(await page.getByLabel("Token").inputValue()).toBe(expired);
    // A token for every room, no room given: asked to choose one.
    const roamer = await mintToken({ secret: SECRET, sub: "ops", room: "*", ttlSeconds: 60 });
    await page.goto(`${edge.url}/?r=1#token=${roamer}`);
    await expect
      .poll(() => page.locator("#signin-error").textContent())
      .toBe("this token is for every room: choose one");
  });

  it("says 5 min and 1 min ahead that its token expires (at once when less is left), in the room log and the status line", async () => {
    // Tokens minted earlier, so that each window is ~15 s away once signed in.
    const nowS = Math.floor(Date.now() / 1000);
    const soon = async (sub: string, leftS: number) =>
      mintToken({ secret: SECRET, sub, room: ROOM, ttlSeconds: 600, nowS: nowS - 600 + leftS });
    const pages = await Promise.all(
      [
        { sub: "soon5", min: 5, token: await soon("soon5", 5 * 60 + 15) },
        { sub: "soon1", min: 1, token: await soon("soon1", 60 + 15) },
        // Signed in with 3 min left: no 5-minute mark to wait for, and the 1-minute one is 2 min
        // away: said at once (it was not said until the last minute).
        { sub: "soon3", min: 3, token: await soon("soon3", 3 * 60 + 10) },
      ].map(async (c) => {
        const page = await (await browser.newContext()).newPage();
        await page.goto(`${edge.url}/#token=${c.token}`);
        await expect
          .poll(() => page.locator("#status").textContent(), { timeout: 10_000 })
          .toContain(`Signed in as ${c.sub}`);
        return { ...c, page };
      }),
    );
    for (const { sub, min, page } of pages) {
      const said = new RegExp(
        `your token expires at [^(]+ \\(in ${min} min\\): the edge then signs you out and your links close\\. Sign in again with a new token before then\\.`,
      );
      const roomLog = page.getByRole("log", { name: "Room log" });
      await expect.poll(() => roomLog.textContent(), { timeout: 45_000 }).toMatch(said);
      const status = (await page.locator("#status").textContent()) ?? "";
      expect(status).toMatch(new RegExp(`^Signed in as ${sub} in ${ROOM}: ${said.source}$`));
      // The 1-minute token's 5-minute mark had passed before it signed in, and its 1-minute mark
      // was 15 s away: said once, not twice (nor the 3-minute token's, its 1-minute mark not yet).
      expect(((await roomLog.textContent()) ?? "").match(/your token expires at/g)).toHaveLength(1);
    }
    for (const { page } of pages) await page.context().close();
  }, 120_000);

  it("logs who joins and leaves; says so when the edge cannot be reached; signs out when the token is refused", async () => {
    const page = await (await browser.newContext()).newPage();
    // The console talks to the edge through a proxy this test can cut; the token lives 2 s (the
    // edge allows 30 s of clock skew, so it is refused ~32 s after it was minted).
    const proxy = await tcpProxy(Number(new URL(edge.url).port));
    const short = await mintToken({ secret: SECRET, sub: "brief", room: ROOM, ttlSeconds: 2 });
    const minted = Date.now();
    await page.goto(`${edge.url}/#token=${short}&edge=${encodeURIComponent(proxy.url)}`);
    await expect.poll(() => page.locator("#status").textContent()).toContain("Signed in as brief");
    const roomLog = page.getByRole("log", { name: "Room log" });
    const rover = startRover("comer");
    await expect
      .poll(() => roomLog.textContent(), { timeout: 20_000 })
      .toContain("comer joined (rover)");
    // Said at the expiry itself (the page looked signed in until the edge refused the token).
    await expect
      .poll(() => roomLog.textContent(), { timeout: 10_000 })
      .toMatch(/your token expired at .+?: the edge signs you out within 30 s/);
    rover.kill("SIGINT");
    await expect.poll(() => roomLog.textContent(), { timeout: 20_000 }).toMatch(/comer left \(/);
    // The edge unreachable: the status line says so, once, and recovers.
    proxy.cut();
    await expect
      .poll(() => page.locator("#status").textContent(), { timeout: 20_000 })
      .toContain("the edge cannot be reached, retrying");
    // Said once in the room log, not once per retry (six lines in 15 s of an outage before).
    await new Promise((r) => setTimeout(r, 4_000));
    const outage = (await roomLog.textContent()) ?? "";
    expect(outage.match(/edge unreachable/g) ?? []).toHaveLength(1);
    proxy.mend();
    // Back: the status line says so, and still what it said of the token (its expiry has come).
    await expect
      .poll(() => page.locator("#status").textContent(), { timeout: 20_000 })
      .toMatch(
        /^Signed in as brief in console-e2e: your token expired at .+?: the edge signs you out/,
      );
    // The token refused for good: back to the sign-in form, saying why.
    expect(Date.now() - minted).toBeLessThan(30_000); // the premise: it was still good until now
    await expect
      .poll(() => page.locator("#signin-error").textContent(), { timeout: 45_000 })
      .toMatch(/^Signed out: the edge refused the token \(401 /);
    await proxy.close();
  }, 120_000);

  it("a second console as the same operator: the first steps back and says so; the focus outlives a refresh", async () => {
    startRover("twin-r", []);
    const a = await (await browser.newContext()).newPage();
    await signIn(a, "twin-op");
    await a.locator('tr[data-peer="twin-r"]').waitFor({ timeout: 30_000 });
    // The peers table is made anew every 5 s: a keyboard user's button keeps the focus.
    await a.getByRole("button", { name: "Call twin-r" }).focus();
    await new Promise((r) => setTimeout(r, 6_000));
    expect(await a.evaluate(() => document.activeElement?.getAttribute("aria-label"))).toBe(
      "Call twin-r",
    );
    await a.getByRole("button", { name: "Connect to twin-r" }).click();
    await expect
      .poll(() => link(a, "twin-r").getAttribute("data-state"), { timeout: 30_000 })
      .toBe("connected");
    // The same operator in another browser: the two used to undo each other's links for good.
    const b = await (await browser.newContext()).newPage();
    await signIn(b, "twin-op");
    await expect
      .poll(() => a.locator("#signin-error").textContent(), { timeout: 30_000 })
      .toMatch(/another console \(a tab or browser\) signed in as twin-op/);
    await b.getByRole("button", { name: "Connect to twin-r" }).click();
    await expect
      .poll(() => link(b, "twin-r").getAttribute("data-state"), { timeout: 30_000 })
      .toBe("connected");
    await echoedBack(b, "twin-r", "twin-op", "only one of us now");
    // And it stays so: the first no longer reads the id's events.
    await new Promise((r) => setTimeout(r, 5_000));
    expect(await link(b, "twin-r").getAttribute("data-state")).toBe("connected");
    expect(await a.locator("section.link").count()).toBe(0);
  }, 120_000);

  it("a command sent while the link is down says it waits, and how late it went; a rover back is linked again", async () => {
    let rover = startRover("frozen-r", []);
    const page = await (await browser.newContext()).newPage();
    await signIn(page, "patient-op");
    await page.locator('tr[data-peer="frozen-r"]').waitFor({ timeout: 30_000 });
    await page.getByRole("button", { name: "Connect to frozen-r" }).click();
    const panel = link(page, "frozen-r");
    await expect
      .poll(() => panel.getAttribute("data-state"), { timeout: 30_000 })
      .toBe("connected");
    await expect.poll(() => figure(page, "frozen-r", "ping"), { timeout: 10_000 }).toMatch(/ms$/);
    rover.kill("SIGSTOP");
    try {
      await expect
        .poll(() => panel.getAttribute("data-state"), { timeout: 30_000 })
        .not.toMatch(/^(connected|degraded)$/);
      // What it measured before going down is not shown as live.
      await expect.poll(() => figure(page, "frozen-r", "ping"), { timeout: 5_000 }).toBe("–");
      await panel.getByLabel("Command").fill("stop");
      await panel.getByRole("button", { name: "Run" }).click();
      const line = panel.locator("li.out", { hasText: "patient-op ▸ stop" });
      await expect.poll(() => line.textContent()).toContain("queued: link down");
      await new Promise((r) => setTimeout(r, 3_000));
    } finally {
      rover.kill("SIGCONT");
    }
    await expect
      .poll(() => panel.locator("li.out.delivered").last().textContent(), { timeout: 30_000 })
      .toMatch(/delivered \d+ s after it was sent/);
    // The rover stops and starts again: the link the operator made comes back by itself.
    rover.kill("SIGTERM");
    await expect.poll(() => panel.count(), { timeout: 30_000 }).toBe(0);
    rover = startRover("frozen-r", []);
    await expect
      .poll(() => link(page, "frozen-r").getAttribute("data-state"), { timeout: 45_000 })
      .toBe("connected");
    expect(await page.getByRole("log", { name: "Room log" }).textContent()).toContain(
      "frozen-r is back: linking again",
    );
  }, 150_000);
});
