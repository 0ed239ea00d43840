/**
 * `npm start`: the whole product on one machine. Starts the local edge (the Worker on workerd,
 * Durable Object state on local disk under .wrangler/state), two demo rovers in room `demo`
 * (alpha links to bravo and probes it 20 times a second; bravo echoes), shows the link with
 * live RTT and loss, forces an ICE-restart handover a few seconds after the link is up, and
 * shows that nothing was lost. Both send telemetry once a second to browsers linked to them, and
 * publish their position (the console's map) every 5 s.
 * Runs until Ctrl-C, which stops everything (no workerd left).
 * Env: PORT (8787), ROVERLINK_SECRET (32+ bytes; a development secret otherwise). The edge listens
 * on loopback and gets the secret in a private file (rover/local-edge.ts), never on a command line.
 */

import { join } from "node:path";
import { Agent, type AgentMessage } from "../rover/agent.ts";
import { DEV_SECRET, type LocalEdge, REPO_ROOT, startLocalEdge } from "../rover/local-edge.ts";
import { ProbeStats, parseEcho, probeMessage } from "../rover/probe.ts";
import { formatStatus } from "../rover/status-line.ts";
import { mintToken } from "../shared/token.ts";

const ROOM = "demo";
const PROBE_HZ = 20;
/** The forced handover comes this long after the link is up. */
const RESTART_AFTER_MS = 5_000;

const tty = Boolean(process.stdout.isTTY);
const say = (s: string) => process.stdout.write(`${tty ? "\r\x1b[2K" : ""}${s}\n`);
const fail = (s: string) => {
  process.stderr.write(`${tty ? "\r\x1b[2K" : ""}roverlink: ${s.split("\n")[0]}\n`);
};

const port = process.env.PORT ? Number(process.env.PORT) : 8787;
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  fail(`PORT must be a port number 1..65535, got "${process.env.PORT}"`);
  process.exit(1);
}
const secret = process.env.ROVERLINK_SECRET || DEV_SECRET;

// Ctrl-C works from the first moment: while the edge starts, it is stopped before it is up.
const interrupted = new AbortController();
let edgeStarting: Promise<LocalEdge> | null = null;
let edge: LocalEdge | null = null;
const agents: Agent[] = [];
const timers: NodeJS.Timeout[] = [];
const stats = new ProbeStats(Date.now());
let stopping = false;

async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    for (const t of timers) clearInterval(t);
    if (code === 0) say("stopping ...");
    const f = stats.figures(Date.now());
    // Each agent's goodbye to the edge is bounded: an edge that stopped answering cannot hold
    // up Ctrl-C (1 s is plenty on loopback, and this edge goes down next anyway).
    await Promise.all(
      agents.map((a) =>
        a.stop(1_000).catch((e: unknown) => fail(`${a.id} did not stop cleanly: ${String(e)}`)),
      ),
    );
    // An edge still starting stops itself on the abort; wait for it to be gone.
    // Its failure was already reported by main(); here only its end matters.
    await edgeStarting?.catch(() => null);
    // Room state is on disk (SQLite), so a short grace before SIGKILL loses nothing.
    await edge?.stop(500);
    if (code === 0) say(`done:    ${f.sent} probes, ${f.lost} lost, ${f.handovers} handover(s)`);
    process.exit(code);
  }
  return new Promise<never>(() => {});
}
const onSignal = () => {
  interrupted.abort();
  void stop(0);
};
// SIGHUP too: a closed terminal stops the demo as Ctrl-C does (the edge with it).
for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(s, onSignal);

async function main(): Promise<void> {
  if (!process.env.ROVERLINK_SECRET)
    say("roverlink: ROVERLINK_SECRET is not set: using a development secret (never in production)");
  say("roverlink: starting the local edge (workerd) ...");
  edgeStarting = startLocalEdge({
    port,
    persistTo: join(REPO_ROOT, ".wrangler", "state"),
    vars: { ROVERLINK_SECRET: secret },
    signal: interrupted.signal,
  });
  edge = await edgeStarting;
  const url = edge.url;
  const curlToken = await mintToken({ secret, sub: "curl", room: ROOM, ttlSeconds: 3600 });
  // The console signs in from the link's fragment, which the browser never sends to the edge.
  const consoleToken = await mintToken({
    secret,
    sub: "operator",
    room: ROOM,
    ttlSeconds: 12 * 3600,
  });
  say(`edge:    ${url}`);
  say(`console: ${url}/#token=${consoleToken}   (signs in as "operator", valid 12 h)`);
  say(
    `try:     curl -s -H "Authorization: Bearer ${curlToken}" ${url}/v1/rooms/${ROOM}/peers | jq`,
  );

  const agent = async (id: string, connect: string[]) => {
    const a = new Agent({
      edge: url,
      room: ROOM,
      id,
      token: await mintToken({ secret, sub: id, room: ROOM, ttlSeconds: 86_400 }),
      connect,
      watchNetwork: false,
      position: id === "alpha" ? { x: 1, y: 0 } : { x: 4, y: 4 }, // where the telemetry starts
    });
    agents.push(a);
    return a;
  };
  const bravo = await agent("bravo", []);
  const alpha = await agent("alpha", ["bravo"]);
  // bravo echoes everything back on the same channel (alpha's probes).
  bravo.on("message", (m: AgentMessage) => {
    try {
      bravo.send(m.peer, m.channel, m.data);
    } catch {
      // no link to echo on (alpha left): nothing to do
    }
  });

  const start = Date.now();
  let linkedAt: number | null = null;
  let restarted = false;
  let checkTimer: NodeJS.Timeout | null = null;
  let seq = 0;
  alpha.on("link-up", (peer: string, info: { path: string; firstTime: boolean }) => {
    // Only the link the demo is about: a browser linking to alpha is not bravo coming up.
    if (peer !== "bravo" || !info.firstTime) return;
    linkedAt = Date.now();
    stats.linkUp(linkedAt);
    say(`link:    alpha <-> bravo up in ${linkedAt - start} ms, path ${info.path}`);
  });
  alpha.on("handover", (h) => {
    if (h.peer !== "bravo") return;
    stats.handover(h.kind);
    say(`handover: ${h.kind} done, link back after ${h.gapMs} ms`);
    // Give the probes in flight during the handover time to come back, then count: once, after
    // the last of a series (the pair may still move once right after an ICE restart).
    if (checkTimer) clearTimeout(checkTimer);
    const t = setTimeout(() => {
      const f = stats.figures(Date.now());
      say(
        `check:   ${f.sent} probes sent, ${f.received} echoed, ${f.lost} lost, ${f.duplicated} duplicated, ${f.reordered} reordered`,
      );
      say("running: Ctrl-C to stop");
    }, 1500);
    checkTimer = t;
    timers.push(t);
  });
  alpha.on("message", (m: AgentMessage) => {
    const e = typeof m.data === "string" ? parseEcho(m.data, "alpha") : null;
    if (e) stats.echoed(e, Date.now());
  });

  await bravo.start();
  await alpha.start();

  let readings = 0;
  timers.push(
    setInterval(() => {
      if (linkedAt === null) return;
      try {
        alpha.send("bravo", "control", probeMessage("alpha", "bravo", seq, Date.now()));
        seq++;
        stats.sent();
      } catch {
        return; // the link is being replaced; the next tick sends again
      }
      if (!restarted && Date.now() - linkedAt > RESTART_AFTER_MS) {
        restarted = true;
        say("handover: forcing an ICE restart (as after a Wi-Fi -> cellular switch) ...");
        // The link is up here; if it dropped meanwhile the check below says what was lost.
        alpha.restart("bravo", "demo").catch(() => {});
      }
    }, 1000 / PROBE_HZ),
    // Telemetry for whoever watches from a browser (the console's Telemetry pane): each rover's
    // position and battery once a second on the unordered `telemetry` channel, as a rover's own
    // program would send them. Rovers get none (bravo would echo it).
    setInterval(() => {
      const t = (Date.now() - start) / 1000;
      const publish = ++readings % 5 === 0;
      for (const [a, x0, y0] of [[alpha, 0, 0] as const, [bravo, 3, 4] as const]) {
        const x = Math.round((x0 + Math.cos(t / 20)) * 100) / 100;
        const y = Math.round((y0 + Math.sin(t / 20)) * 100) / 100;
        const reading = JSON.stringify({
          type: "telemetry",
          rover: a.id,
          x,
          y,
          battery: Math.round((100 - t / 60) * 10) / 10,
        });
        // The room's map follows the rovers: the position goes to the edge every 5 s.
        if (publish)
          a.setPosition({ x, y }).catch((e: unknown) =>
            fail(`${a.id}: position not published: ${(e as Error).message}`),
          );
        const browsers = new Set(
          a
            .peers()
            .filter((p) => p.kind === "browser")
            .map((p) => p.id),
        );
        for (const l of a.stats()) {
          if (l.state !== "up" || !browsers.has(l.peer)) continue;
          try {
            a.send(l.peer, "telemetry", reading);
          } catch {
            // the link went meanwhile: the next second's reading goes on the next one
          }
        }
      }
    }, 1000),
    setInterval(() => {
      const f = stats.figures(Date.now());
      const line = formatStatus("alpha", alpha.stats(), `probes echoed ${f.received}/${f.sent}`);
      if (tty) process.stdout.write(`\r\x1b[2K${line}`);
      else say(line);
    }, 1000),
  );
}

main().catch((e: unknown) => {
  if (stopping) return; // Ctrl-C while starting: stop() is already on it
  fail(e instanceof Error ? e.message : String(e));
  void stop(1);
});
