/**
 * `roverlink rover`: one agent with the CLI's behaviours around it — echo, probe stream,
 * stats JSON, metrics endpoint, logs and the live status line. Resolves with the exit code.
 */
import { writeFileSync } from "node:fs";
import type { Server } from "node:http";
import type { TokenSource } from "../shared/client.ts";
import type { Position } from "../shared/protocol.ts";
import { Agent, type AgentMessage } from "./agent.ts";
import { createLogger, type LogLevel } from "./log.ts";
import { AgentMetrics } from "./metrics.ts";
import { ProbeStats, parseEcho, probeMessage } from "./probe.ts";
import { formatStatus, StatusLine } from "./status-line.ts";

export interface RoverRunOptions {
  edge: string;
  room: string;
  id: string;
  token: TokenSource;
  kind?: string;
  connect: string[];
  connectNearby: boolean;
  position?: Position;
  echo: boolean;
  probeHz?: number;
  durationS?: number;
  statsJson?: string;
  metricsPort?: number;
  manageRoutes?: boolean;
  logLevel: LogLevel;
  /** Called once the agent joined (tests, the demo). */
  onStarted?: (agent: Agent) => void;
  /** Resolve to stop (in addition to SIGINT/SIGTERM and --duration). */
  stopSignal?: AbortSignal;
}

/** Our own JSON message coming back from an echoing peer (never echo it again). */
function fromSelf(text: string, self: string): boolean {
  if (!text.startsWith("{")) return false;
  try {
    return (JSON.parse(text) as { from?: unknown }).from === self;
  } catch {
    return false;
  }
}

export async function runRover(o: RoverRunOptions): Promise<number> {
  const log = createLogger(o.logLevel);
  const agent = new Agent({
    edge: o.edge,
    room: o.room,
    id: o.id,
    token: o.token,
    kind: o.kind ?? "rover",
    connect: o.connect,
    connectNearby: o.connectNearby,
    manageRoutes: o.manageRoutes ?? false,
    logger: log,
    ...(o.position ? { position: o.position } : {}),
  });
  const started = Date.now();
  const stats = new ProbeStats(started);
  const linked = new Set<string>();
  const status = new StatusLine();
  let metricsServer: Server | null = null;
  const metrics = o.metricsPort !== undefined ? new AgentMetrics(agent) : null;

  agent.on("link-up", (peer: string) => {
    linked.add(peer);
    stats.linkUp(Date.now());
  });
  agent.on("handover", () => stats.handover());
  agent.on("message", (m: AgentMessage) => {
    const text = typeof m.data === "string" ? m.data : null;
    if (text !== null) {
      const echoOfOurs = parseEcho(text, o.id);
      if (echoOfOurs) {
        stats.echoed(echoOfOurs, Date.now());
        return;
      }
      if (fromSelf(text, o.id)) return;
    }
    if (o.echo) {
      try {
        agent.send(m.peer, m.channel, m.data);
      } catch (e) {
        log.warn({ peer: m.peer, err: (e as Error).message }, "echo failed");
      }
    }
  });

  await agent.start();
  o.onStarted?.(agent);
  if (metrics && o.metricsPort !== undefined) {
    metricsServer = await metrics.serve(o.metricsPort);
    log.info({ url: `http://127.0.0.1:${o.metricsPort}/metrics` }, "metrics");
  }

  let seq = 0;
  const probeTimer =
    o.probeHz !== undefined
      ? setInterval(() => {
          const now = Date.now();
          for (const peer of linked) {
            try {
              agent.send(peer, "control", probeMessage(o.id, peer, seq, now));
              stats.sent();
              metrics?.messagesSent.inc({ peer, channel: "control" });
            } catch (e) {
              log.warn({ peer, err: (e as Error).message }, "probe not sent");
            }
          }
          seq++;
        }, 1000 / o.probeHz)
      : null;

  const statusTimer = setInterval(() => {
    const f = o.probeHz !== undefined ? stats.figures(Date.now()) : null;
    const extra = f ? `probes ${f.received}/${f.sent}` : "";
    if (status.enabled) status.show(formatStatus(o.id, agent.stats(), extra));
  }, 1000);

  await new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once("SIGINT", done);
    process.once("SIGTERM", done);
    o.stopSignal?.addEventListener("abort", done, { once: true });
    if (o.durationS !== undefined) setTimeout(done, o.durationS * 1000).unref();
  });

  if (probeTimer) clearInterval(probeTimer);
  clearInterval(statusTimer);
  status.clear();
  if (o.probeHz !== undefined) {
    // Give the last probes time to come back.
    const end = Date.now() + 2_000;
    while (Date.now() < end && stats.figures(Date.now()).lost > 0)
      await new Promise((r) => setTimeout(r, 50));
  }
  const figures = stats.figures(Date.now());
  if (o.statsJson) writeFileSync(o.statsJson, `${JSON.stringify(figures, null, 2)}\n`);
  if (o.probeHz !== undefined) log.info(figures, "probe figures");
  await agent.stop();
  metricsServer?.close();
  return 0;
}
