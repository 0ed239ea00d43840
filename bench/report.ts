/** The benchmark report: markdown with ratios, and PNG charts (vega-lite -> vega -> SVG -> resvg). */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Resvg } from "@resvg/resvg-js";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { Throughput } from "./edge.ts";
import type { GapFigures } from "./handover.ts";
import type { BenchResults } from "./run.ts";
import { ratio, type Summary } from "./stats.ts";

const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";

async function png(spec: TopLevelSpec, file: string): Promise<void> {
  const full = { $schema: SCHEMA, background: "white", ...spec } as TopLevelSpec;
  const view = new vega.View(vega.parse(compile(full).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  const out = new Resvg(svg, {
    fitTo: { mode: "zoom", value: 2 },
    background: "white",
    font: { loadSystemFonts: true },
  });
  writeFileSync(file, out.render().asPng());
}

const fmt = (x: number | null | undefined, digits = 2) =>
  x === null || x === undefined || !Number.isFinite(x)
    ? "–"
    : String(Math.round(x * 10 ** digits) / 10 ** digits);
// Ratios far below 1 keep two significant digits (0.0018×), not "0×".
const times = (x: number | null | undefined) =>
  x === null || x === undefined || !Number.isFinite(x)
    ? "–"
    : x !== 0 && Math.abs(x) < 0.1
      ? `${Number(x.toPrecision(2))}×`
      : `${fmt(x)}×`;
const int = (x: number | null | undefined) =>
  x === null || x === undefined ? "–" : Math.round(x).toLocaleString("en-US");
const spread = (s: Summary) => `${fmt(s.min)}–${fmt(s.max)}`;

const STACK_LABEL: Record<string, string> = {
  roverlink: "roverlink agents (via local edge)",
  werift: "stock werift (SDP in memory)",
  "node-datachannel": "node-datachannel (SDP in memory)",
};

export async function writeReport(r: BenchResults, dir: string, stem: string): Promise<string[]> {
  const files: string[] = [];
  const md: string[] = [
    `# roverlink benchmarks — ${r.date}${r.quick ? " (quick mode: few runs, short windows; indicative only)" : ""}`,
    "",
    `Machine: ${r.machine}. werift ${r.versions.werift}; ${r.versions.nodeDatachannel ?? "node-datachannel unavailable"}.`,
    "All traffic on loopback or in network namespaces created by the run. The machine is shared:",
    "read the ratios (measured side by side in the same run) before the absolute figures.",
    `Wall time per benchmark (s): ${Object.entries(r.took)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}.`,
    "",
  ];
  const chart = async (name: string, spec: TopLevelSpec) => {
    const f = join(dir, `${stem}-${name}.png`);
    await png(spec, f);
    files.push(f);
    md.push(`![${name}](${stem}-${name}.png)`, "");
  };

  if (r.timeToLink) {
    const t = r.timeToLink;
    md.push(
      "## 1. Time to link",
      "",
      `From creating the first peer to an open data channel, ${t.runs} runs per stack, stacks interleaved.`,
      "roverlink's figure includes joining the room, the offer parked in the edge, the answerer's long-poll, the answer, trickled candidates, ICE, DTLS and SCTP.",
      "",
      "| stack | median ms | p95 ms | IQR ms | min–max ms | runs |",
      "|---|---|---|---|---|---|",
    );
    for (const s of t.stacks) {
      if (s.unavailable) md.push(`| ${STACK_LABEL[s.stack]} | ${s.unavailable} | | | | 0 |`);
      else
        md.push(
          `| ${STACK_LABEL[s.stack]} | ${fmt(s.ms.median)} | ${fmt(s.ms.p95)} | ${fmt(s.ms.iqr)} | ${spread(s.ms)} | ${s.ms.n} |`,
        );
    }
    md.push(
      "",
      `Runs over 900 ms: ${Object.entries(t.slowRuns)
        .map(([k, v]) => `${k} ${v}/${t.runs}`)
        .join(
          ", ",
        )}. On loopback node-datachannel starts DTLS the moment its own ICE check succeeds; when the first flight reaches a peer that is not ready yet it is dropped and OpenSSL resends it after its 1 s timer, hence ~5 ms or ~1005 ms and nothing between (the median follows whichever is the majority).`,
      "",
      `Ratios (median): roverlink / stock werift **${times(t.ratios.roverlinkToWerift)}**, roverlink / node-datachannel **${times(t.ratios.roverlinkToNodeDatachannel)}**, stock werift / node-datachannel ${times(t.ratios.weriftToNodeDatachannel)}.`,
      "",
    );
    await chart("time-to-link", {
      title: "Time to link (ms, log scale): box = quartiles, dots = runs",
      width: 560,
      height: 140,
      data: { values: t.stacks.flatMap((s) => s.samples.map((ms) => ({ stack: s.stack, ms }))) },
      encoding: {
        y: { field: "stack", type: "nominal", title: null },
        x: { field: "ms", type: "quantitative", scale: { type: "log" }, title: "ms" },
        color: { field: "stack", type: "nominal", legend: null },
      },
      layer: [
        { mark: { type: "boxplot", extent: "min-max", opacity: 0.35 } },
        { mark: { type: "point", filled: true, opacity: 0.8, color: "black", size: 25 } },
      ],
    });
  }

  if (r.handover) {
    const h = r.handover;
    md.push("## 2. Handover gap (carrier-NAT lab)", "");
    if (!h.available) md.push(`Not measured: ${h.note ?? "not run"}.`, "");
    else {
      md.push(
        "Two rovers in the lab (docs/lab.md), rover A with wifi + cell behind symmetric NATs, linked through TURN; A probes B at 50 msg/s on `control`, the fault hits A once the link is up.",
        "Gap: the longest time without an echo. Lost: probes never echoed. Stock werift: two plain werift peers (test/lab/peer.ts) under the same fault and probe rate, no handover logic.",
        "",
        "| scenario | stack | runs | gap p50 ms | gap p95 ms | gap max ms | runs with >1 handover | lost p50 | lost p95 | lost / sent | dup | reordered |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
      );
      const row = (name: string, stack: string, g: GapFigures) =>
        md.push(
          `| ${name} | ${stack} | ${g.runs}${g.failedRuns ? ` (${g.failedRuns} unclean exits)` : ""}${g.unrecoveredRuns ? ` (${g.unrecoveredRuns} never recovered)` : ""} | ${int(g.gapMs.median)} | ${int(g.gapMs.p95)} | ${int(g.gapMs.max)} | ${g.multiHandoverRuns ?? "–"} | ${int(g.lostPerRun.median)} | ${int(g.lostPerRun.p95)} | ${g.lostTotal} / ${g.sentTotal} | ${g.duplicated} | ${g.reordered} |`,
        );
      for (const x of h.rows) {
        row(`${x.scenario}: ${x.what}`, "roverlink", x.roverlink);
        row("", "stock werift", x.stockWerift);
      }
      md.push(
        "",
        `Median gap, roverlink / stock werift: ${h.rows.map((x) => `${x.scenario} ${times(x.ratioGapP50)}`).join(", ")}. A stock werift gap that runs to the end of the window means it never recovered.`,
        "",
      );
      await chart("handover", {
        title: "Handover gap, p50 and p95 (ms)",
        width: 520,
        data: {
          values: h.rows.flatMap((x) =>
            (["roverlink", "stockWerift"] as const).flatMap((stack) =>
              (["p50", "p95"] as const).map((q) => ({
                scenario: x.scenario,
                series: `${stack === "roverlink" ? "roverlink" : "stock werift"} ${q}`,
                ms: q === "p50" ? x[stack].gapMs.median : x[stack].gapMs.p95,
              })),
            ),
          ),
        },
        mark: "bar",
        encoding: {
          y: { field: "scenario", type: "nominal", title: null },
          yOffset: { field: "series" },
          x: { field: "ms", type: "quantitative", title: "ms" },
          color: { field: "series", type: "nominal", title: null },
        },
      });
    }
  }

  if (r.dataPath) {
    const d = r.dataPath;
    const label = (stack: string) =>
      stack === "werift"
        ? "werift 0.25.2 + our patches"
        : stack === "werift-unpatched"
          ? "werift 0.25.2, unpatched"
          : stack;
    md.push(
      "## 3. Data path (loopback)",
      "",
      `RTT: ${d.rateHz} msg/s for ${d.seconds} s, echoed by the other peer. Throughput: ${d.burst.messages} messages of ${d.burst.bytes} B queued at once on a reliable ordered channel (roverlink: \`control\`, with its exactly-once layer), one direction. CPU: user + system of the whole process (both peers, native threads included) per message.`,
      "",
      "| stack | RTT p50 ms | RTT p99 ms | throughput MB/s | CPU µs/msg at 100 msg/s | CPU µs/msg in the burst |",
      "|---|---|---|---|---|---|",
    );
    for (const s of d.stacks) {
      if (s.unavailable) md.push(`| ${label(s.stack)} | ${s.unavailable} | | | | |`);
      else
        md.push(
          `| ${label(s.stack)} | ${fmt(s.rttMs.median)} | ${fmt(s.rttMs.p99)} | ${fmt(s.throughputMBps)} | ${int(s.cpuUsPerMessagePaced)} | ${int(s.cpuUsPerMessageBurst)} |`,
        );
    }
    const rw = d.ratios.werift;
    const ru = d.ratios.weriftUnpatched;
    const rn = d.ratios.nodeDatachannel;
    md.push(
      "",
      "| roverlink / … | RTT p50 | RTT p99 | throughput | CPU at 100 msg/s | CPU in the burst |",
      "|---|---|---|---|---|---|",
      `| werift 0.25.2 + our patches | ${times(rw.rttP50)} | ${times(rw.rttP99)} | ${times(rw.throughput)} | ${times(rw.cpuPaced)} | ${times(rw.cpuBurst)} |`,
      ...(ru
        ? [
            `| werift 0.25.2, unpatched | ${times(ru.rttP50)} | ${times(ru.rttP99)} | ${times(ru.throughput)} | ${times(ru.cpuPaced)} | ${times(ru.cpuBurst)} |`,
          ]
        : []),
      `| node-datachannel | ${times(rn.rttP50)} | ${times(rn.rttP99)} | ${times(rn.throughput)} | ${times(rn.cpuPaced)} | ${times(rn.cpuBurst)} |`,
      "",
    );
    if (d.bursts) {
      md.push(
        `Bursts (each queued at once, capped at ${d.capSeconds} s; "n of m" when the cap cut it short, the rate is then over what arrived; a stack stops at its first incomplete burst). MB/s one direction, CPU µs per message echoed:`,
        "",
        `| burst | ${d.stacks.map((s) => label(s.stack)).join(" | ")} |`,
        `|---|${d.stacks.map(() => "---").join("|")}|`,
      );
      for (const b of d.bursts) {
        const cells = d.stacks.map((s) => {
          const f = s.bursts?.find((x) => x.messages === b.messages && x.bytes === b.bytes);
          if (!f) return s.unavailable ? "—" : "not run";
          if (f.unavailable) return `n/a: ${f.unavailable}`;
          const cut = f.complete ? "" : ` (${f.delivered} of ${f.messages})`;
          return `${fmt(f.throughputMBps)} MB/s, ${int(f.cpuUsPerMessage)} µs${cut}`;
        });
        md.push(`| ${b.messages} × ${b.bytes / 1024} KiB | ${cells.join(" | ")} |`);
      }
      md.push("");
    }
    const ok = d.stacks.filter((s) => !s.unavailable);
    await chart("data-path", {
      hconcat: [
        {
          title: "RTT at 100 msg/s (ms)",
          width: 260,
          data: {
            values: ok.flatMap((s) => [
              { stack: s.stack, q: "p50", ms: s.rttMs.median },
              { stack: s.stack, q: "p99", ms: s.rttMs.p99 },
            ]),
          },
          mark: "bar",
          encoding: {
            y: { field: "stack", type: "nominal", title: null },
            yOffset: { field: "q" },
            x: { field: "ms", type: "quantitative", title: "ms" },
            color: { field: "q", type: "nominal", title: null },
          },
        },
        {
          title: "Reliable throughput (MB/s)",
          width: 240,
          data: { values: ok.map((s) => ({ stack: s.stack, mbps: s.throughputMBps })) },
          encoding: {
            y: { field: "stack", type: "nominal", title: null },
            x: { field: "mbps", type: "quantitative", title: "MB/s" },
          },
          layer: [
            { mark: "bar" },
            {
              mark: { type: "text", align: "left", dx: 4 },
              encoding: { text: { field: "mbps", type: "quantitative" } },
            },
          ],
        },
      ],
    });
  }

  if (r.edge) {
    const e = r.edge;
    md.push(
      "## 4. Edge (local workerd via wrangler dev)",
      "",
      `Offer to answer: POST offer (parked in the Worker) → the answerer's long-poll wakes → POST answer → the offerer's 201 carries it; ${e.runs} sequential offers, one pair. Baseline: a minimal \`ws\` relay forwarding offer and answer frames over open WebSockets. Throughput: concurrent offerer/answerer pairs completing offer → answer → DELETE session for ${e.secondsPerPoint} s.`,
      "",
      "| offer → answer | median ms | p95 ms | IQR ms |",
      "|---|---|---|---|",
      `| roverlink edge | ${fmt(e.offerToAnswerMs.median)} | ${fmt(e.offerToAnswerMs.p95)} | ${fmt(e.offerToAnswerMs.iqr)} |`,
      `| WebSocket relay | ${fmt(e.wsRelayMs.median)} | ${fmt(e.wsRelayMs.p95)} | ${fmt(e.wsRelayMs.iqr)} |`,
      `| context: one GET /healthz through wrangler dev + workerd | ${fmt(e.healthzMs.median)} | ${fmt(e.healthzMs.p95)} | ${fmt(e.healthzMs.iqr)} |`,
      `| context: one authenticated GET /v1/ice-servers | ${fmt(e.iceServersMs.median)} | ${fmt(e.iceServersMs.p95)} | ${fmt(e.iceServersMs.iqr)} |`,
      ...(e.trickleMs
        ? [
            `| trickle PATCH (one candidate) on an answered session | ${fmt(e.trickleMs.median)} | ${fmt(e.trickleMs.p95)} | ${fmt(e.trickleMs.iqr)} |`,
          ]
        : []),
      "",
      ...(e.offerOverBare !== undefined
        ? [
            `Over a bare request (GET /healthz, median): offer → answer **${times(e.offerOverBare)}** (goal ≤ 3×), trickle PATCH **${times(e.trickleOverBare ?? null)}** (goal ≤ 1.5×).`,
            "",
          ]
        : []),
      `Edge / relay latency (median): **${times(e.ratioLatency)}**. The edge authenticates each request, keeps peers, sessions and the event log in the room's SQLite, and answers over plain HTTP; the relay forwards a frame on a socket that is already open.`,
      "",
      "| rooms × pairs per room | sessions/s | errors |",
      "|---|---|---|",
    );
    const errs = (x: Record<string, number>) =>
      Object.entries(x)
        .map(([k, v]) => `${k}: ${v}`)
        .join(", ") || "none";
    for (const x of [...e.oneRoom, ...e.rooms])
      md.push(
        `| ${x.rooms} × ${x.pairsPerRoom} | ${fmt(x.sessionsPerSecond, 1)} | ${errs(x.errors)} |`,
      );
    md.push(
      `| WebSocket relay, ${e.wsRelay.pairs} pairs | ${fmt(e.wsRelay.sessionsPerSecond, 1)} | |`,
      "",
      `Edge / relay throughput at ${e.wsRelay.pairs} concurrent pairs in one room: **${times(e.ratioThroughput)}**.`,
      "",
    );
    const sps = (x: Throughput) => x.sessionsPerSecond;
    await chart("edge", {
      title: `Sessions per second on local workerd (${e.secondsPerPoint} s per point)`,
      hconcat: [
        {
          title: "one room, more concurrent pairs",
          width: 240,
          data: { values: e.oneRoom.map((x) => ({ pairs: x.pairsPerRoom, sps: sps(x) })) },
          mark: { type: "line", point: true },
          encoding: {
            x: { field: "pairs", type: "quantitative", title: "pairs in the room" },
            y: { field: "sps", type: "quantitative", title: "sessions/s" },
          },
        },
        {
          title: `${e.wsRelay.pairs} pairs spread over more rooms`,
          width: 240,
          data: {
            values: [
              ...e.oneRoom.filter((x) => x.pairsPerRoom === e.wsRelay.pairs),
              ...e.rooms,
            ].map((x) => ({
              rooms: x.rooms,
              sps: sps(x),
            })),
          },
          mark: { type: "line", point: true, color: "#e45756" },
          encoding: {
            x: { field: "rooms", type: "quantitative", title: "rooms (Durable Objects)" },
            y: { field: "sps", type: "quantitative", title: "sessions/s" },
          },
        },
      ],
    });
  }

  if (r.footprint) {
    const p = r.footprint;
    md.push("## 5. Footprint", "");
    if (!p.available) md.push(`Not measured: ${p.note ?? "not run"}.`, "");
    else {
      md.push(
        `Memory: RSS of a \`roverlink rover\` process joined and alone **${fmt(p.rssIdleMiB, 1)} MiB**, linked to one peer and idle **${fmt(p.rssLinkedMiB, 1)} MiB**; a bare \`node\` process doing nothing: ${fmt(p.rssBareNodeMiB, 1)} MiB (linked agent / bare Node: ${times(ratio(p.rssLinkedMiB, p.rssBareNodeMiB))}).`,
        "",
        `Idle link on the wire: two rovers linked and idle for ${fmt(p.idleSeconds, 0)} s (\`--link-profile ${p.profile ?? "cellular"}\`) in a network namespace of the run's own, every packet counted by iptables (IP bytes, both directions), scaled to a day. CPU of each linked rover over that window: ${fmt(p.cpuPct?.a, 3)} % and ${fmt(p.cpuPct?.b, 3)} % of one core.`,
        "",
        "| traffic | packets/day | bytes/day | MB/day |",
        "|---|---|---|---|",
        `| roverlink link (UDP: STUN keepalive, DTLS/SCTP) | ${int(p.link?.packetsPerDay)} | ${int(p.link?.bytesPerDay)} | ${fmt((p.link?.bytesPerDay ?? 0) / 1e6, 2)} |`,
        `| … of which STUN (consent checks: the keepalive) | ${int(p.stun?.packetsPerDay)} | ${int(p.stun?.bytesPerDay)} | ${fmt((p.stun?.bytesPerDay ?? 0) / 1e6, 2)} |`,
        `| roverlink signaling (TCP to the edge, both rovers; half per rover) | ${int(p.signaling?.packetsPerDay)} | ${int(p.signaling?.bytesPerDay)} | ${fmt((p.signaling?.bytesPerDay ?? 0) / 1e6, 2)} |`,
        ...(r.footprintLan?.available
          ? [
              `| link with \`--link-profile lan\` (${fmt(r.footprintLan.idleSeconds, 0)} s) | ${int(r.footprintLan.link?.packetsPerDay)} | ${int(r.footprintLan.link?.bytesPerDay)} | ${fmt((r.footprintLan.link?.bytesPerDay ?? 0) / 1e6, 2)} |`,
            ]
          : []),
        `| WireGuard persistent keepalive 25 s, one way (reference, computed) | ${int(p.wireguard.packetsPerDay)} | ${int(p.wireguard.bytesPerDay)} | ${fmt(p.wireguard.bytesPerDay / 1e6, 2)} |`,
        "",
        `roverlink link / WireGuard keepalive: **${times(p.ratioLinkBytes)} the bytes**, ${times(p.ratioLinkPackets)} the packets. The reference is a lower bound for WireGuard (60-byte keepalive: 32 B message + 28 B UDP/IPv4; handshakes every 2 min under traffic not counted).`,
        "",
      );
      await chart("footprint", {
        title: "Idle link, bytes per day (log scale)",
        width: 520,
        height: 120,
        data: {
          values: [
            { what: "roverlink link (UDP)", bytes: p.link?.bytesPerDay },
            { what: "roverlink signaling (TCP)", bytes: p.signaling?.bytesPerDay },
            { what: "WireGuard keepalive 25 s", bytes: p.wireguard.bytesPerDay },
          ],
        },
        mark: "bar",
        encoding: {
          y: { field: "what", type: "nominal", title: null, sort: null },
          x: { field: "bytes", type: "quantitative", scale: { type: "log" }, title: "bytes/day" },
        },
      });
    }
  }

  const mdFile = join(dir, `${stem}.md`);
  writeFileSync(mdFile, `${md.join("\n")}\n`);
  files.push(mdFile);
  return files;
}
