/**
 * `roverlink rover`: one agent with the CLI's behaviours around it — echo, probe stream,
 * stats JSON, metrics endpoint, logs and the live status line. Resolves with the exit code.
 */
import type { Server } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { TokenSource } from "../shared/client.ts";
import type { AllowedTarget, ForwardSpec } from "../shared/forward-wire.ts";
import { type LinkProfile, profileHealth } from "../shared/link/profile.ts";
import type { Position } from "../shared/protocol.ts";
import { Agent, type AgentMessage } from "./agent.ts";
import { FileReceiver } from "./file-transfer.ts";
import { Forwarder } from "./forward.ts";
import { openPeerIdentity } from "./identity.ts";
import { createLogger, type LogLevel } from "./log.ts";
import { AgentMetrics } from "./metrics.ts";
import { ProbeStats, parseEcho, probeMessage } from "./probe.ts";
import { MessageSocket } from "./socket.ts";
import { statsFileProblem, writeStatsFile } from "./stats-file.ts";
import { formatOutbox, formatStatus, StatusLine } from "./status-line.ts";
import { onStopSignal } from "./stop-signals.ts";
import type { VideoConfig } from "./video-config.ts";
import { VideoSource } from "./video-source.ts";

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
  /** Interval between checks of each backup path (ms). */
  backupCheckMs?: number;
  /** Link cadences (shared/link/profile.ts); default `cellular`. */
  linkProfile?: LinkProfile;
  /** How edge events arrive (Agent `events`); default `poll`. */
  events?: "poll" | "sse";
  logLevel: LogLevel;
  /** Logged once at start-up (the CLI's warning for a rover holding the master secret). */
  warnings?: string[];
  /** DTLS certificate file (default: identity.ts defaultIdentityPath) and trust file (none). */
  identityFile?: string;
  trustFile?: string;
  /** `--forward` and `--allow-forward` (rover/forward.ts). */
  forwards?: ForwardSpec[];
  allowForward?: AllowedTarget[];
  /** `--socket`: the local message socket's path (rover/socket.ts); none: no socket. */
  socket?: { path: string; isDefault: boolean };
  /** Durable control streams kept here (rover/outbox.ts); none: in memory. */
  stateDir?: string;
  /** `--receive-dir`: take the files peers send into this directory (rover/file-transfer.ts). */
  receiveDir?: string;
  /** `--max-file-size`: the largest file taken (bytes). */
  maxFileBytes?: number;
  /** The camera (--video and its flags; rover/video-config.ts). */
  video?: VideoConfig;
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
  for (const w of o.warnings ?? []) log.warn(w);
  // Listen for SIGINT/SIGTERM/SIGHUP from the start: a Ctrl-C while joining still leaves cleanly.
  let stopNow: () => void = () => {};
  let stopRequested = false;
  const stopped = new Promise<void>((resolve) => {
    stopNow = () => {
      stopRequested = true;
      resolve();
    };
  });
  const onSignal = () => stopNow();
  const off = onStopSignal(onSignal);
  o.stopSignal?.addEventListener("abort", onSignal, { once: true });
  if (o.stopSignal?.aborted) stopNow();
  try {
    return await run(o, log, stopped, () => stopRequested);
  } finally {
    off();
    o.stopSignal?.removeEventListener("abort", onSignal);
  }
}

async function run(
  o: RoverRunOptions,
  log: Logger,
  stopped: Promise<void>,
  stopRequested: () => boolean,
): Promise<number> {
  const id = await openPeerIdentity({
    id: o.id,
    ...(o.identityFile ? { identityFile: o.identityFile } : {}),
    ...(o.trustFile ? { trustFile: o.trustFile } : {}),
  });
  // The video port first of all: a port in use fails before anything else starts.
  const video = o.video ? new VideoSource(o.video, log) : null;
  await video?.start();
  const agent = new Agent({
    ...(video ? { video } : {}),
    identity: id.identity,
    edge: o.edge,
    room: o.room,
    id: o.id,
    token: o.token,
    kind: o.kind ?? "rover",
    connect: o.connect,
    connectNearby: o.connectNearby,
    manageRoutes: o.manageRoutes ?? false,
    ...(o.backupCheckMs !== undefined ? { backupCheckMs: o.backupCheckMs } : {}),
    health: profileHealth(o.linkProfile ?? "cellular"),
    events: o.events ?? "sse",
    logger: log,
    ...(o.position ? { position: o.position } : {}),
    ...(o.stateDir ? { stateDir: o.stateDir } : {}),
  });
  const started = probeNow();
  const stats = new ProbeStats(started);
  /** Peers whose link came up: probed while the agent keeps a link to them. */
  const linked = new Set<string>();
  const status = new StatusLine();
  let metricsServer: Server | null = null;
  const metrics = o.metricsPort !== undefined ? new AgentMetrics(agent) : null;
  /** Peers whose echoes are being dropped now (one warn line per stall). */
  const echoStalled = new Set<string>();
  const send = (peer: string, channel: string, data: string | Uint8Array) => {
    agent.send(peer, channel, data);
    metrics?.sent(peer, channel);
  };

  agent.on("link-up", (peer: string) => {
    linked.add(peer);
    stats.linkUp(probeNow());
  });
  agent.on("handover", (h: { kind: string }) => stats.handover(h.kind));
  agent.on("message", (m: AgentMessage) => {
    const text = typeof m.data === "string" ? m.data : null;
    if (text !== null) {
      const echoOfOurs = parseEcho(text, o.id);
      // An earlier process's probe, resent from the durable outbox: not this run's figures.
      if (echoOfOurs && echoOfOurs.ts < started) return;
      if (echoOfOurs) {
        stats.echoed(echoOfOurs, probeNow());
        return;
      }
      // Anything else of ours coming back is an echo too: never send it round again.
      if (fromSelf(text, o.id)) return;
    }
    if (o.echo) {
      // An application channel has no flow control: a peer that sends but does not take what
      // comes back would have the rover keep every echo (60 MB of echoes grew it by 190 MB).
      // Past the bound, messages are not echoed: counted, and said once per stall. `control`
      // has its own bound (the backlog: an echo past it fails below).
      if (m.channel !== "control" && agent.bufferedAmount(m.peer, m.channel) > ECHO_MAX_BUFFERED) {
        metrics?.echoDropped.inc({ peer: m.peer });
        if (!echoStalled.has(m.peer)) {
          echoStalled.add(m.peer);
          log.warn(
            { peer: m.peer, channel: m.channel, buffered: agent.bufferedAmount(m.peer, m.channel) },
            "not echoing: the peer is not taking what was echoed",
          );
        }
        return;
      }
      echoStalled.delete(m.peer);
      try {
        send(m.peer, m.channel, m.data);
      } catch (e) {
        log.warn({ peer: m.peer, err: (e as Error).message }, "echo failed");
      }
    }
  });

  const statsProblem = o.statsJson ? statsFileProblem(o.statsJson) : null;
  if (statsProblem) throw new Error(statsProblem);
  // The metrics port first: a port in use fails before we join anyone.
  if (metrics && o.metricsPort !== undefined) {
    try {
      metricsServer = await metrics.serve(o.metricsPort);
    } catch (e) {
      video?.close();
      throw new Error(`metrics port ${o.metricsPort}: ${(e as Error).message}`);
    }
    log.info({ url: `http://127.0.0.1:${o.metricsPort}/metrics` }, "metrics");
  }
  // Forward ports next: a port in use fails before we join anyone, too.
  const forwarder = new Forwarder({
    agent,
    forwards: o.forwards ?? [],
    allow: o.allowForward ?? [],
    log,
  });
  // The receive directory is checked before we join anyone, too.
  const files = o.receiveDir
    ? new FileReceiver({
        agent,
        dir: o.receiveDir,
        log,
        ...(o.maxFileBytes !== undefined ? { limits: { maxFileBytes: o.maxFileBytes } } : {}),
      })
    : null;
  try {
    files?.start();
    await forwarder.start();
  } catch (e) {
    files?.stop();
    video?.close();
    await closeServer(metricsServer);
    throw e;
  }
  // And the message socket: a path in use is one line before joining.
  const socket = o.socket
    ? new MessageSocket({ agent, path: o.socket.path, log, defaultPath: o.socket.isDefault })
    : null;
  try {
    await socket?.start();
  } catch (e) {
    await forwarder.stop();
    files?.stop();
    video?.close();
    await closeServer(metricsServer);
    throw e;
  }
  // A stop while joining aborts the join (the edge may not be answering at all).
  const joining = new AbortController();
  void stopped.then(() => joining.abort(new Error("stopped while joining")));
  try {
    await agent.start(joining.signal);
  } catch (e) {
    files?.stop();
    await socket?.stop();
    await forwarder.stop();
    await agent.stop();
    video?.close();
    await closeServer(metricsServer);
    if (stopRequested()) {
      if (o.statsJson) writeStatsFile(o.statsJson, stats.figures(probeNow()));
      return 0;
    }
    throw e;
  }
  // Logged once joined: a failure before that stays one line on stderr.
  log.info(
    {
      file: id.file,
      fingerprint: `sha-256 ${id.fingerprint}`,
      created: id.created,
      trust: o.trustFile ?? null,
    },
    o.trustFile ? "identity" : "identity (no --trust: remote fingerprints are not checked)",
  );
  o.onStarted?.(agent);

  let seq = 0;
  const probeTimer =
    o.probeHz !== undefined
      ? setInterval(() => {
          const now = probeNow();
          const had = linked.size;
          for (const peer of linked) {
            // A dropped link (the peer left) is no longer probed, until it comes up again.
            if (!agent.hasLink(peer)) {
              linked.delete(peer);
              continue;
            }
            try {
              send(peer, "control", probeMessage(o.id, peer, seq, now));
              stats.sent();
            } catch (e) {
              log.warn({ peer, err: (e as Error).message }, "probe not sent");
            }
          }
          if (had > 0 && linked.size === 0) stats.linksGone(now);
          seq++;
        }, 1000 / o.probeHz)
      : null;

  const statusTimer = status.enabled
    ? setInterval(() => {
        const f = o.probeHz !== undefined ? stats.figures(probeNow()) : null;
        const extra = [
          f ? `probes ${f.received}/${f.sent}` : "",
          formatOutbox(agent.outboxStats()),
        ];
        status.show(formatStatus(o.id, agent.stats(), extra.filter(Boolean).join(" · ")));
      }, 1000)
    : null;

  // Until SIGINT/SIGTERM/stopSignal, --duration after the join, or the edge refusing our token
  // for good (then the exit is non-zero, for a supervisor to see).
  let refused: Error | null = null;
  const refusal = new Promise<void>((resolve) => {
    agent.once("token-refused", (e: Error) => {
      refused = e;
      resolve();
    });
    // Another process joined as us (a second rover given this id): ours stops, non-zero.
    agent.once("seat-taken", () => {
      refused = new Error(
        `another process joined room "${o.room}" as "${o.id}": two rovers cannot share an id (give each its own --id); this one stops`,
      );
      resolve();
    });
  });
  const duration = new AbortController();
  await Promise.race([
    stopped,
    refusal,
    o.durationS !== undefined
      ? // Rejects only when aborted below, once the race is already decided.
        sleep(o.durationS * 1000, undefined, { signal: duration.signal }).catch(() => undefined)
      : stopped,
  ]);
  duration.abort();

  if (probeTimer) clearInterval(probeTimer);
  if (statusTimer) clearInterval(statusTimer);
  status.clear();
  if (o.probeHz !== undefined) {
    // Give the last probes time to come back: briefly when told to stop (a supervisor waits for
    // us), longer at the end of --duration.
    const end = probeNow() + (stopRequested() ? PROBE_SETTLE_ON_STOP_MS : PROBE_SETTLE_MS);
    while (probeNow() < end && stats.figures(probeNow()).lost > 0)
      await new Promise((r) => setTimeout(r, 50));
  }
  const figures = stats.figures(probeNow());
  if (o.probeHz !== undefined) log.info(figures, "probe figures");
  // The figures first: leaving may find the edge unreachable (bounded by LEAVE_BUDGET_MS).
  if (o.statsJson) writeStatsFile(o.statsJson, figures);
  files?.stop();
  await socket?.stop();
  await forwarder.stop();
  await agent.stop();
  video?.close();
  await closeServer(metricsServer);
  if (refused) throw refused;
  return 0;
}

/**
 * The probes' clock: wall-clock ms with a fraction (Date.now() counts whole ms, and on a LAN
 * every RTT came out 1, 2 or 3 ms). Comparable with Date.now() (an earlier run's probes).
 */
function probeNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Wait for probes in flight at the end of --duration, and when stopped by a signal. */
const PROBE_SETTLE_MS = 2_000;
/** --echo: bytes werift may hold for a peer's application channel before echoes are dropped. */
const ECHO_MAX_BUFFERED = 4 * 1024 * 1024;
const PROBE_SETTLE_ON_STOP_MS = 300;

async function closeServer(server: Server | null): Promise<void> {
  if (!server) return;
  server.closeAllConnections(); // a scraper's keep-alive connection must not hold us up
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
