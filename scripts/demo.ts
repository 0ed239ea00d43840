/**
 * `npm start`: the whole product on one machine. Starts the local edge (the Worker on workerd,
 * Durable Object state on local disk under .wrangler/state), two demo rovers in room `demo`
 * (alpha links to bravo and probes it 20 times a second; bravo echoes), shows the link with
 * live RTT and loss, forces an ICE-restart handover after a few seconds, and shows that nothing
 * was lost. Runs until Ctrl-C, which stops everything.
 */
import { Agent, type AgentMessage } from "../rover/agent.ts";
import { DEV_SECRET, startLocalEdge } from "../rover/local-edge.ts";
import { ProbeStats, parseEcho, probeMessage } from "../rover/probe.ts";
import { formatStatus } from "../rover/status-line.ts";
import { mintToken } from "../shared/token.ts";

const ROOM = "demo";
const port = Number(process.env.PORT ?? 8787);
const secret = process.env.ROVERLINK_SECRET ?? DEV_SECRET;
const tty = Boolean(process.stdout.isTTY);
const say = (s: string) => process.stdout.write(`${tty ? "\r\x1b[2K" : ""}${s}\n`);

if (!process.env.ROVERLINK_SECRET)
  say("roverlink: ROVERLINK_SECRET is not set: using a development secret (never in production)");
say("roverlink: starting the local edge (workerd) ...");
const edge = await startLocalEdge({
  port,
  persistTo: ".wrangler/state",
  vars: { ROVERLINK_SECRET: secret },
}).catch((e: Error) => {
  say(`roverlink: ${e.message.split("\n")[0]}`);
  process.exit(1);
});
const curlToken = await mintToken({ secret, sub: "curl", room: ROOM, ttlSeconds: 3600 });
say(`edge:    ${edge.url}   (browser console: ${edge.url}/)`);
say(
  `try:     curl -s -H "Authorization: Bearer ${curlToken}" ${edge.url}/v1/rooms/${ROOM}/peers | jq`,
);

const agent = async (id: string, connect: string[]) =>
  new Agent({
    edge: edge.url,
    room: ROOM,
    id,
    token: await mintToken({ secret, sub: id, room: ROOM, ttlSeconds: 86_400 }),
    connect,
    watchNetwork: false,
    position: id === "alpha" ? { x: 0, y: 0 } : { x: 3, y: 4 },
  });
const bravo = await agent("bravo", []);
const alpha = await agent("alpha", ["bravo"]);
bravo.on("message", (m: AgentMessage) => bravo.send(m.peer, m.channel, m.data));

const start = Date.now();
const stats = new ProbeStats(start);
let seq = 0;
let linked = false;
let restarted = false;
alpha.on("link-up", (_peer: string, info: { path: string; firstTime: boolean }) => {
  if (!info.firstTime) return;
  linked = true;
  stats.linkUp(Date.now());
  say(`link:    alpha <-> bravo up in ${Date.now() - start} ms, path ${info.path}`);
});
alpha.on("handover", (h: { kind: string; gapMs: number }) => {
  stats.handover();
  say(`handover: ${h.kind} done, link back after ${h.gapMs} ms`);
  setTimeout(() => {
    const f = stats.figures(Date.now());
    say(
      `check:   ${f.sent} probes sent, ${f.received} echoed, ${f.lost} lost, ${f.duplicated} duplicated, ${f.reordered} reordered`,
    );
    say("running: Ctrl-C to stop");
  }, 1500);
});
alpha.on("message", (m: AgentMessage) => {
  const e = typeof m.data === "string" ? parseEcho(m.data, "alpha") : null;
  if (e) stats.echoed(e, Date.now());
});

await bravo.start();
await alpha.start();

const probe = setInterval(() => {
  if (!linked) return;
  alpha.send("bravo", "control", probeMessage("alpha", "bravo", seq++, Date.now()));
  stats.sent();
  if (!restarted && Date.now() - start > 6_000) {
    restarted = true;
    say("handover: forcing an ICE restart (as after a Wi-Fi -> cellular switch) ...");
    void alpha.restart("bravo", "demo");
  }
}, 50);
const status = setInterval(() => {
  const f = stats.figures(Date.now());
  const line = formatStatus("alpha", alpha.stats(), `probes echoed ${f.received}/${f.sent}`);
  if (tty) process.stdout.write(`\r\x1b[2K${line}`);
  else say(line);
}, 1000);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  clearInterval(probe);
  clearInterval(status);
  say("stopping ...");
  const f = stats.figures(Date.now());
  await Promise.all([alpha.stop(), bravo.stop()]);
  await edge.stop();
  say(`done:    ${f.sent} probes, ${f.lost} lost, ${f.handovers} handover(s)`);
  process.exit(0);
};
process.on("SIGINT", () => void stop());
process.on("SIGTERM", () => void stop());
