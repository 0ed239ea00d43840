/** Prometheus metrics for one agent (prom-client), served on 127.0.0.1:<port>/metrics. */
import { createServer, type Server } from "node:http";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Agent, OutboxStats } from "./agent.ts";
import { VERSION } from "./version.ts";
import type { VideoSourceStats } from "./video-source.ts";

const STATES = ["connecting", "up", "degraded", "restarting", "rebuilding", "down"] as const;

/**
 * Application channel labels that get series of their own, per peer; the peer chooses the labels,
 * so the rest count under `channel="other"` (`control` and `telemetry` always have their own).
 */
export const MAX_CHANNEL_LABELS = 16;

export class AgentMetrics {
  readonly registry = new Registry();
  readonly messagesSent = new Counter({
    name: "roverlink_messages_sent_total",
    help: "Application messages sent",
    labelNames: ["peer", "channel"],
    registers: [this.registry],
  });
  readonly messagesReceived = new Counter({
    name: "roverlink_messages_received_total",
    help: "Application messages received",
    labelNames: ["peer", "channel"],
    registers: [this.registry],
  });
  readonly handoverGap = new Histogram({
    name: "roverlink_handover_gap_seconds",
    help: "Time from the start of a handover to the link carrying data again",
    labelNames: ["kind"],
    buckets: [0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10],
    registers: [this.registry],
  });

  readonly violations = new Counter({
    name: "roverlink_peer_violations_total",
    help: "Link protocol violations by remote peers (malformed frames, floods, out-of-window data)",
    labelNames: ["peer", "kind"],
    registers: [this.registry],
  });
  readonly misbehaving = new Counter({
    name: "roverlink_links_dropped_misbehaving_total",
    help: "Links dropped because the remote peer kept breaking the link protocol",
    labelNames: ["peer"],
    registers: [this.registry],
  });
  readonly linksRefused = new Counter({
    name: "roverlink_links_refused_total",
    help: "Remote descriptions refused: DTLS fingerprint not the trusted one (docs/rover.md)",
    labelNames: ["peer"],
    registers: [this.registry],
  });

  readonly peerStateLost = new Counter({
    name: "roverlink_peer_state_lost_total",
    help: "A peer's end of a control stream started over (it lost its state or keeps none); side: which end",
    labelNames: ["peer", "side"],
    registers: [this.registry],
  });
  readonly echoDropped = new Counter({
    name: "roverlink_echo_dropped_total",
    help: "Messages not echoed (--echo) because the peer was not taking what was already echoed",
    labelNames: ["peer"],
    registers: [this.registry],
  });
  readonly outboxFaults = new Counter({
    name: "roverlink_outbox_faults_total",
    help: "Times the durable outbox started failing to write (disk full, read-only)",
    registers: [this.registry],
  });

  /** Per peer, the application channel labels that have series of their own. */
  #labels = new Map<string, Set<string>>();

  /** An application message sent to `peer` on `channel`. */
  sent(peer: string, channel: string): void {
    this.messagesSent.inc({ peer, channel: this.#channelLabel(peer, channel) });
  }

  #channelLabel(peer: string, channel: string): string {
    if (channel === "control" || channel === "telemetry") return channel;
    let labels = this.#labels.get(peer);
    if (!labels) {
      labels = new Set();
      this.#labels.set(peer, labels);
    }
    if (labels.has(channel)) return channel;
    if (labels.size >= MAX_CHANNEL_LABELS) return "other";
    labels.add(channel);
    return channel;
  }

  constructor(agent: Agent) {
    const reg = [this.registry];
    // Process figures (resident memory, event-loop lag, handles): what an operator watches first.
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: "roverlink_link_state",
      help: "1 for the link's current state",
      labelNames: ["peer", "state"],
      registers: reg,
      collect() {
        this.reset();
        for (const s of agent.stats())
          for (const st of STATES) this.set({ peer: s.peer, state: st }, s.state === st ? 1 : 0);
      },
    });
    const perLink = (
      name: string,
      help: string,
      pick: (s: ReturnType<Agent["stats"]>[number]) => number | null,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: ["peer"],
        registers: reg,
        collect() {
          this.reset();
          for (const s of agent.stats()) {
            const v = pick(s);
            if (v !== null) this.set({ peer: s.peer }, v);
          }
        },
      });
    perLink("roverlink_link_rtt_seconds", "Smoothed probe RTT", (s) =>
      s.rttMs === null ? null : s.rttMs / 1000,
    );
    perLink(
      "roverlink_link_rtt_age_seconds",
      "Age of the RTT figure (an idle link's answering end measures none)",
      (s) => (s.rttAgeMs === null ? null : s.rttAgeMs / 1000),
    );
    perLink("roverlink_link_loss_ratio", "Probe loss over the recent window", (s) =>
      s.lossPct === null ? null : s.lossPct / 100,
    );
    perLink("roverlink_link_restarts", "ICE restarts completed", (s) => s.restarts);
    perLink("roverlink_link_rebuilds", "PeerConnection rebuilds", (s) => s.rebuilds);
    perLink(
      "roverlink_link_backlog_messages",
      "Reliable messages not yet acknowledged",
      (s) => s.backlog,
    );
    perLink("roverlink_link_relayed", "1 when the link goes through TURN", (s) =>
      s.path === "relay" ? 1 : 0,
    );
    const perOutbox = (name: string, help: string, pick: (o: OutboxStats) => number | null) =>
      new Gauge({
        name,
        help,
        labelNames: ["peer"],
        registers: reg,
        collect() {
          this.reset();
          for (const o of agent.outboxStats()) {
            const v = pick(o);
            if (v !== null) this.set({ peer: o.peer }, v);
          }
        },
      });
    perOutbox(
      "roverlink_outbox_messages",
      "Control messages kept until acknowledged",
      (o) => o.messages,
    );
    perOutbox("roverlink_outbox_bytes", "Payload bytes kept until acknowledged", (o) => o.bytes);
    perOutbox(
      "roverlink_outbox_oldest_age_seconds",
      "Age of the oldest unacknowledged message",
      (o) => (o.oldestAgeMs === null ? 0 : o.oldestAgeMs / 1000),
    );
    perOutbox(
      "roverlink_outbox_expired",
      "Messages dropped because their TTL passed (since start)",
      (o) => o.expired,
    );
    perOutbox(
      "roverlink_outbox_rejected",
      "Messages refused: outbox full or disk fault (since start)",
      (o) => o.rejected,
    );
    new Gauge({
      name: "roverlink_outbox_fault",
      help: "1 while the durable outbox cannot write",
      registers: reg,
      collect() {
        this.set(agent.outbox?.fault ? 1 : 0);
      },
    });
    // The edge and the token: what a fleet alerts on before links are lost.
    new Gauge({
      name: "roverlink_edge_reachable",
      help: "1 while the edge answers the agent's requests for events, 0 while it does not (absent before the first)",
      registers: reg,
      collect() {
        this.reset();
        const { reachable } = agent.edgeStatus();
        if (reachable !== null) this.set(reachable ? 1 : 0);
      },
    });
    new Gauge({
      name: "roverlink_edge_reachable_changed_timestamp_seconds",
      help: "When roverlink_edge_reachable last changed (seconds since the epoch)",
      registers: reg,
      collect() {
        this.set(agent.edgeStatus().since / 1000);
      },
    });
    // Only for a fixed token. A gauge without labels is never absent once registered: reset()
    // exports 0, and an alert on the expiry fired forever for every rover renewing its own.
    if (agent.tokenExpiry() !== null)
      new Gauge({
        name: "roverlink_token_expiry_timestamp_seconds",
        help: "When the agent's token expires (seconds since the epoch; absent for a token it renews itself)",
        registers: reg,
        collect() {
          const exp = agent.tokenExpiry();
          if (exp !== null) this.set(exp);
        },
      });
    new Gauge({
      name: "roverlink_build_info",
      help: "1, labelled with the roverlink and Node.js versions running",
      labelNames: ["version", "node"],
      registers: reg,
    }).set({ version: VERSION, node: process.versions.node }, 1);
    // The camera (--video): what came from the encoder, what the browsers' reports allow. Only
    // with a camera (without, they read 0: a target bitrate of 0).
    const video = () => agent.video?.stats() ?? null;
    const videoRegs = agent.video ? reg : [];
    const videoGauge = (name: string, help: string, pick: (v: VideoSourceStats) => number | null) =>
      new Gauge({
        name,
        help,
        registers: videoRegs,
        collect() {
          this.reset();
          const v = video();
          const x = v ? pick(v) : null;
          if (x !== null) this.set(x);
        },
      });
    videoGauge(
      "roverlink_video_target_bitrate_bps",
      "Target bitrate for the encoder: the lowest of the console links' (REMB and receiver-report loss)",
      (v) => v.targetBps,
    );
    videoGauge(
      "roverlink_video_rtp_packets",
      "RTP packets received from the encoder",
      (v) => v.packets,
    );
    videoGauge(
      "roverlink_video_frames",
      "Video frames received from the encoder (RTP marker bits)",
      (v) => v.frames,
    );
    videoGauge("roverlink_video_rtp_bytes", "RTP bytes received from the encoder", (v) => v.bytes);
    videoGauge(
      "roverlink_video_keyframe_requests",
      "Keyframe requests (PLI/FIR, new receivers) passed to the encoder",
      (v) => v.keyframeRequests,
    );
    perLink(
      "roverlink_video_link_target_bitrate_bps",
      "One console link's target bitrate",
      (s) => s.videoTargetBps,
    );
    agent.on("peer-state-lost", (peer: string, side: string) =>
      this.peerStateLost.inc({ peer, side }),
    );
    agent.on("outbox-fault", (err: Error | null) => {
      if (err) this.outboxFaults.inc();
    });
    agent.on("message", (m: { peer: string; channel: string }) =>
      this.messagesReceived.inc({ peer: m.peer, channel: this.#channelLabel(m.peer, m.channel) }),
    );
    agent.on("violation", (peer: string, kind: string) => this.violations.inc({ peer, kind }));
    agent.on("misbehaving", (peer: string) => this.misbehaving.inc({ peer }));
    agent.on("link-refused", (peer: string) => this.linksRefused.inc({ peer }));
    agent.on("handover", (h: { kind: string; gapMs: number }) =>
      this.handoverGap.observe({ kind: h.kind }, h.gapMs / 1000),
    );
  }

  serve(port: number): Promise<Server> {
    const server = createServer(async (req, res) => {
      if (req.url !== "/metrics") {
        res.writeHead(404).end("not found\n");
        return;
      }
      res.writeHead(200, { "Content-Type": this.registry.contentType });
      res.end(await this.registry.metrics());
    });
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve(server));
    });
  }
}
