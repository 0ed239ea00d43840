/** The benchmark report: markdown with ratios, and PNG charts (vega-lite -> vega -> SVG -> resvg). */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Resvg } from "@resvg/resvg-js";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { BurstFigures } from "./data-path.ts";
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
  // Runs before 2026-12-05 used the patched copy as their anchor: labelled as what they ran.
  werift: "werift 0.25.2 + our patches (SDP in memory)",
  "werift-unpatched": "werift 0.25.2, unpatched (SDP in memory)",
  "node-datachannel": "node-datachannel (SDP in memory)",
};

export async function writeReport(r: BenchResults, dir: string, stem: string): Promise<string[]> {
  const files: string[] = [];
  const md: string[] = [
    `# roverlink benchmarks — ${r.date}${r.quick ? " (quick mode: few runs, short windows; indicative only)" : ""}`,
    "",
    `Machine: ${r.machine}. werift ${r.versions.werift} + our patches (roverlink)${r.versions.weriftUnpatched ? `, werift ${r.versions.weriftUnpatched} unpatched (anchor rows)` : ""}; ${r.versions.nodeDatachannel ?? "node-datachannel unavailable"}.`,
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
    const anchor = t.stacks.some((s) => s.stack === "werift-unpatched")
      ? "werift 0.25.2, unpatched"
      : "werift 0.25.2 + our patches";
    md.push(
      "## 1. Time to link",
      "",
      `From creating the offering peer (the answering one already running) to an open data channel, ${t.runs} runs per stack, stacks interleaved.`,
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
        )}. On loopback node-datachannel starts DTLS the moment its own ICE check succeeds; when the first flight reaches a peer that is not ready yet it is dropped and OpenSSL resends it after its 1 s timer: those are the runs over 900 ms. Every run's figure is in the JSON (\`samples\`).`,
      "",
      `Ratios (median): roverlink / ${anchor} **${times(t.ratios.roverlinkToWerift)}**, roverlink / node-datachannel **${times(t.ratios.roverlinkToNodeDatachannel)}**, ${anchor} / node-datachannel ${times(t.ratios.weriftToNodeDatachannel)}.`,
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
    // Runs before 2026-12-05 recorded no anchor: their stock peers loaded the patched copy.
    const stock = h.anchor ?? "werift 0.25.2 + our patches";
    md.push("## 2. Handover gap (carrier-NAT lab)", "");
    if (!h.available) md.push(`Not measured: ${h.note ?? "not run"}.`, "");
    else {
      md.push(
        "Two rovers in the lab (docs/lab.md), rover A with wifi + cell behind symmetric NATs, linked through TURN; A probes B at 50 msg/s on `control`, the fault hits A once the link is up.",
        `Gap: the longest time without an echo. Lost: probes never echoed. ${stock}: two plain werift peers (test/lab/peer.ts) under the same fault and probe rate, no handover logic.`,
        "",
        "| scenario | stack | runs | gap p50 ms | gap p95 ms | gap max ms | runs with >1 handover | runs with >1 restart | lost p50 | lost p95 | lost / sent | dup | reordered |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
      );
      const row = (name: string, stack: string, g: GapFigures) =>
        md.push(
          `| ${name} | ${stack} | ${g.runs}${g.failedRuns ? ` (${g.failedRuns} unclean exits)` : ""}${g.unrecoveredRuns ? ` (${g.unrecoveredRuns} never recovered)` : ""} | ${int(g.gapMs.median)} | ${int(g.gapMs.p95)} | ${int(g.gapMs.max)} | ${g.multiHandoverRuns ?? "–"} | ${g.multiRestartRuns ?? "–"} | ${int(g.lostPerRun.median)} | ${int(g.lostPerRun.p95)} | ${g.lostTotal} / ${g.sentTotal} | ${g.duplicated} | ${g.reordered} |`,
        );
      for (const x of h.rows) {
        row(`${x.scenario}: ${x.what}`, "roverlink", x.roverlink);
        row("", stock, x.stockWerift);
      }
      md.push(
        "",
        `Median gap, roverlink / ${stock}: ${h.rows.map((x) => `${x.scenario} ${times(x.ratioGapP50)}`).join(", ")}. A ${stock} gap that runs to the end of the window means it never recovered.`,
        "",
      );
      if (h.idleSend) {
        const i = h.idleSend;
        md.push(
          `Idle ${i.idleS} s (cellular profile), wifi blackholed ~1 s before one send (--manage-routes): send to echo p50 ${int(i.summary.median)} ms, max ${int(i.summary.max)} ms; ${i.delivered} of ${i.runs} delivered; per run ${i.sendToEchoMs.map((x) => (x === null ? "never" : `${Math.round(x)} ms`)).join(", ")}; handovers ${i.handovers.join(", ")}. Goal (issue 15): delivered ≤ 1.5 s after the send.`,
          "",
        );
      }
      await chart("handover", {
        title: "Handover gap, p50 and p95 (ms)",
        width: 520,
        data: {
          values: h.rows.flatMap((x) =>
            (["roverlink", "stockWerift"] as const).flatMap((stack) =>
              (["p50", "p95"] as const).map((q) => ({
                scenario: x.scenario,
                series: `${stack === "roverlink" ? "roverlink" : stock} ${q}`,
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
      `RTT: ${d.rateHz} msg/s for ${d.seconds} s${d.pacedBlocks && d.pacedBlocks > 1 ? ` in ${d.pacedBlocks} blocks of ${d.seconds / d.pacedBlocks} s, the stacks in turn, each block on a new pair with no other linked,` : ""}${d.warmUpSeconds ? ` after ${d.warmUpSeconds} s of the same not counted${d.pacedBlocks && d.pacedBlocks > 1 ? " (per block)" : ""}` : ""}, echoed by the other peer. Throughput: ${d.burst.messages} messages of ${d.burst.bytes} B queued at once on a reliable ordered channel (roverlink: \`control\`, with its exactly-once layer), one direction. CPU: user + system of the whole process (both peers, worker and native threads included) per message.`,
      d.threads === "per-peer"
        ? "Threads: the echoing peer of each JavaScript stack runs in a worker thread of its own (two rovers are two machines); node-datachannel's both ends share the main thread for their callbacks (its addon cannot run in a worker) and run DTLS, SCTP and ICE on native threads."
        : "Threads: both peers of each stack on one event loop (`--one-thread`; every run before 2026-12-06 evening).",
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
      "| roverlink / … | RTT p50 | RTT p99 | throughput | throughput, 300 × 256 KiB | CPU at 100 msg/s | CPU in the burst |",
      "|---|---|---|---|---|---|---|",
      `| werift 0.25.2 + our patches | ${times(rw.rttP50)} | ${times(rw.rttP99)} | ${times(rw.throughput)} | ${times(rw.throughputLarge)} | ${times(rw.cpuPaced)} | ${times(rw.cpuBurst)} |`,
      ...(ru
        ? [
            `| werift 0.25.2, unpatched | ${times(ru.rttP50)} | ${times(ru.rttP99)} | ${times(ru.throughput)} | ${times(ru.throughputLarge)} | ${times(ru.cpuPaced)} | ${times(ru.cpuBurst)} |`,
          ]
        : []),
      `| node-datachannel | ${times(rn.rttP50)} | ${times(rn.rttP99)} | ${times(rn.throughput)} | ${times(rn.throughputLarge)} | ${times(rn.cpuPaced)} | ${times(rn.cpuBurst)} |`,
      "",
    );
    if (d.bursts) {
      const warmed = d.bulkWarmUpSeconds
        ? ` The first row is the headline burst on a cold stack, right after the paced phase; then ${d.bulkWarmUpSeconds} s of bulk traffic per stack, not counted (2000 × 1 KiB bursts, 300 × 1 KiB for a stack whose cold burst took over 5 s; then 16 KiB and 256 KiB messages; V8 compiles a stack's data path over its first ~10 000 messages), and each burst ${d.repeats ?? 1} time(s)${d.interleaved ? ", every stack in turn (each run of a burst taken by the stacks seconds apart, so that a slow minute of the machine weighs on all of them)" : ""}, the run of median throughput shown (a run over 10 s is not repeated; every run in the JSON).`
        : "";
      md.push(
        `Bursts (each queued at once, capped at ${d.capSeconds} s; "n of m" when the cap cut it short, the rate is then over what arrived; a stack stops at its first incomplete burst). MB/s one direction, CPU µs per message echoed.${warmed}`,
        "",
        `| burst | ${d.stacks.map((s) => label(s.stack)).join(" | ")} |`,
        `|---|${d.stacks.map(() => "---").join("|")}|`,
      );
      const cell = (s: (typeof d.stacks)[number], f: BurstFigures | undefined) => {
        if (!f) return s.unavailable ? "—" : "not run";
        if (f.unavailable) return `n/a: ${f.unavailable}`;
        const cut = f.complete ? "" : ` (${f.delivered} of ${f.messages})`;
        return `${fmt(f.throughputMBps)} MB/s, ${int(f.cpuUsPerMessage)} µs${cut}`;
      };
      if (d.stacks.some((s) => s.coldBurst))
        md.push(
          `| ${d.burst.messages} × ${d.burst.bytes / 1024} KiB, cold | ${d.stacks.map((s) => cell(s, s.coldBurst)).join(" | ")} |`,
        );
      for (const b of d.bursts) {
        const cells = d.stacks.map((s) =>
          cell(
            s,
            s.bursts?.find((x) => x.messages === b.messages && x.bytes === b.bytes),
          ),
        );
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
    const yes = (g: { met: boolean } | undefined) =>
      g === undefined ? "" : g.met ? "met" : "not met";
    md.push(
      "## 4. Edge (local workerd via wrangler dev)",
      "",
      `Offer to answer: POST offer (parked in the Worker) → the event reaches the answerer (${e.events === "sse" ? "its SSE stream, the rover agent's default" : "its long-poll wakes"}) → POST answer → the offerer's 201 carries it; ${e.runs} sequential offers, one pair. Trickle: one PATCH with a candidate on an answered session. Bare request, offer and trickle are taken in turn (GET /healthz: no token, no room; 100 ms apart, so that no step pays for the work the previous one set off), so that each ratio's two sides see the same load. Rooms' storage: ${r.edgeStorage ?? "disk"}.${e.loadAverage ? ` Load average ${fmt(e.loadAverage.start, 1)} → ${fmt(e.loadAverage.end, 1)} on ${r.machine.split(" ×")[0]} cores.` : ""}`,
      "",
      "| goal | median | p95 | ratio to a bare request | goal | |",
      "|---|---|---|---|---|---|",
      `| context: bare request (GET /healthz through wrangler dev + workerd) | ${fmt(e.healthzMs.median)} ms | ${fmt(e.healthzMs.p95)} ms | 1× | | |`,
      `| offer → answer | ${fmt(e.offerToAnswerMs.median)} ms | ${fmt(e.offerToAnswerMs.p95)} ms | **${times(e.offerOverBare ?? null)}** | ≤ 3× | ${yes(e.goals?.offerOverBare)} |`,
      ...(e.trickleMs
        ? [
            `| trickle PATCH (one candidate) | ${fmt(e.trickleMs.median)} ms | ${fmt(e.trickleMs.p95)} ms | **${times(e.trickleOverBare ?? null)}** | ≤ 1.5× | ${yes(e.goals?.trickleOverBare)} |`,
          ]
        : []),
      ...(e.goals
        ? [
            `| sessions/s in one room (best point below) | ${fmt(e.goals.sessionsPerSecondOneRoom.value, 1)} | | | ≥ 200 | ${yes(e.goals.sessionsPerSecondOneRoom)} |`,
          ]
        : []),
      "",
      "| other requests | median ms | p95 ms | IQR ms |",
      "|---|---|---|---|",
      `| authenticated GET /v1/ice-servers | ${fmt(e.iceServersMs.median)} | ${fmt(e.iceServersMs.p95)} | ${fmt(e.iceServersMs.iqr)} |`,
      ...(e.trickleDeliveredMs
        ? [
            `| trickle PATCH → the candidates event on the other party's SSE stream${e.trickleDeliveredMs.n < (e.trickleMs?.n ?? 0) ? ` (${e.trickleDeliveredMs.n} of ${e.trickleMs?.n} arrived within 5 s)` : ""} | ${fmt(e.trickleDeliveredMs.median)} | ${fmt(e.trickleDeliveredMs.p95)} | ${fmt(e.trickleDeliveredMs.iqr)} |`,
          ]
        : []),
      ...(e.offerToAnswerPollMs
        ? [
            `| offer → answer, both peers long-polling (taken in turn with the above) | ${fmt(e.offerToAnswerPollMs.median)} | ${fmt(e.offerToAnswerPollMs.p95)} | ${fmt(e.offerToAnswerPollMs.iqr)} |`,
          ]
        : []),
      `| WebSocket relay, offer → answer (baseline) | ${fmt(e.wsRelayMs.median)} | ${fmt(e.wsRelayMs.p95)} | ${fmt(e.wsRelayMs.iqr)} |`,
      "",
      `Edge / relay latency (median): **${times(e.ratioLatency)}**. The edge authenticates each request, keeps peers, sessions and the event log in the room's SQLite, and answers over plain HTTP; the relay forwards a frame on a socket that is already open.`,
      "",
      `Throughput: concurrent offerer/answerer pairs (each robot with a client address of its own) completing offer → answer → DELETE session for ${e.secondsPerPoint} s. CPU: milliseconds of CPU per completed session, the edge's processes (wrangler, its proxy workerd and the Worker's workerd) and this benchmark's client; "cores": the edge's share of one core during the point.`,
      "",
      "| rooms × pairs per room | events | sessions/s | errors | edge CPU ms/session | edge cores | client CPU ms/session |",
      "|---|---|---|---|---|---|---|",
    );
    const errs = (x: Record<string, number>) =>
      Object.entries(x)
        .map(([k, v]) => `${k}: ${v}`)
        .join(", ") || "none";
    for (const x of [...e.oneRoom, ...e.rooms])
      md.push(
        `| ${x.rooms} × ${x.pairsPerRoom} | ${x.events === "sse" ? "SSE" : "long-poll"} | ${fmt(x.sessionsPerSecond, 1)} | ${errs(x.errors)}${x.eventErrors && Object.keys(x.eventErrors).length > 0 ? `; events: ${errs(x.eventErrors)}` : ""} | ${fmt(x.cpuMsPerSession?.edge ?? null, 1)} | ${fmt(x.edgeCores ?? null)} | ${fmt(x.cpuMsPerSession?.client ?? null, 1)} |`,
      );
    md.push(
      `| WebSocket relay, ${e.wsRelay.pairs} pairs | | ${fmt(e.wsRelay.sessionsPerSecond, 1)} | | | | |`,
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
          data: {
            values: e.oneRoom
              .filter((x) => x.events !== "poll")
              .map((x) => ({ pairs: x.pairsPerRoom, sps: sps(x) })),
          },
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
              ...e.oneRoom.filter((x) => x.pairsPerRoom === e.wsRelay.pairs && x.events !== "poll"),
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
        `Idle link on the wire: two rovers linked and idle for ${fmt(p.idleSeconds, 0)} s (\`--link-profile ${p.profile ?? "cellular"}\`) in a network namespace of the run's own, every packet counted by iptables (IP bytes, both directions), scaled to a day. CPU of each linked rover (every thread and child, scheduler runtime) over that window: ${fmt(p.cpuPct?.a, 3)} % and ${fmt(p.cpuPct?.b, 3)} % of one core${p.cpuSteadyPct ? `; from ${p.steadyAfterS} s after each started (past V8's start-up memory-reducer GCs) to the end: **${fmt(p.cpuSteadyPct.a, 3)} % and ${fmt(p.cpuSteadyPct.b, 3)} %**` : ""}.`,
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

  if (r.file) {
    md.push(
      "## 6. Files and large messages (loopback)",
      "",
      "Both agents in the benchmark process (CPU covers both ends). A file goes through `sendFile` (its own channel, 64 KiB binary chunks, sha256 at both ends, fsync and rename); a large message on `control` is fragmented to ~48 KiB binary data frames (base64 in JSON before 2026-12-06) and acknowledged whole.",
      "",
      "| what | MB/s | time | CPU, both ends | CPU per MiB |",
      "|---|---|---|---|---|",
      ...r.file.rows.map(
        (x) =>
          `| ${x.what} | ${fmt(x.mbPerS)} | ${fmt(x.ms / 1000, 1)} s | ${int(x.cpuMs)} ms | ${fmt(x.cpuMsPerMiB, 1)} ms |`,
      ),
      "",
    );
  }

  if (r.outbox) {
    const o = r.outbox;
    md.push(
      "## 7. Durable outbox",
      "",
      `${int(o.messages)} messages of ${o.bytesEach} B through the SQLite outbox (no network), ${o.perTurn} per event-loop turn; messages/s. Goal: ≥ 5000 durable messages/s.`,
      "",
      "| synchronous | durable at the sender | end to end, durable at both ends |",
      "|---|---|---|",
      `| NORMAL (survives a killed process; default) | ${int(o.senderNormal)} | ${int(o.endToEndNormal)} |`,
      `| FULL (fsync per commit; survives a power cut) | ${int(o.senderFull)} | ${int(o.endToEndFull)} |`,
      `| NORMAL, one message per turn (no batching) | – | ${int(o.unbatchedEndToEndNormal)} |`,
      "",
    );
  }

  if (r.forward) {
    const f = r.forward;
    const row = (what: string, p: Summary, fw: Summary, added: number | null) =>
      `| ${what} | ${fmt(p.median)} / ${fmt(p.p99)} | ${fmt(fw.median)} / ${fmt(fw.p99)} | ${fmt(added)} |`;
    md.push(
      "## 8. Port forwarding",
      "",
      "Two agents through the local edge, werift on loopback, `--forward` to targets on the other agent's side, against the same targets reached directly on loopback (same run, one after the other).",
      "",
      `TCP throughput, ${f.mib} MiB one way until the target's sha256 of it comes back: plain loopback **${fmt(f.tcpMbps.plain, 1)} Mbit/s**, through the forward **${fmt(f.tcpMbps.forward, 1)} Mbit/s** (${times(ratio(f.tcpMbps.forward, f.tcpMbps.plain))}).`,
      "",
      `| round trip, 64 bytes, ${f.pings} one at a time | plain median / p99 ms | forward median / p99 ms | added (median) ms |`,
      "|---|---|---|---|",
      row(
        "TCP (echo on one connection)",
        f.tcpRttMs.plain,
        f.tcpRttMs.forward,
        f.tcpRttMs.addedMedian,
      ),
      row("UDP (datagram echo)", f.udpRttMs.plain, f.udpRttMs.forward, f.udpRttMs.addedMedian),
      "",
      `UDP datagrams without an answer within 1 s through the forward: ${f.udpRttMs.lost} of ${f.pings}.`,
      "",
    );
  }

  if (r.video) {
    const v = r.video;
    md.push("## 9. Video", "");
    if (!v.available) md.push(`Not measured: ${v.note ?? "not run"}.`, "");
    else {
      const sorted = [...(v.ttffMs ?? [])].sort((a, b) => a - b);
      const mid = sorted[Math.floor(sorted.length / 2)];
      const rtt = v.controlRtt;
      md.push(
        `Source: ${v.source}. One \`roverlink rover --video\` process, werift watchers (console kind) on loopback.`,
        "",
        "| figure | value |",
        "|---|---|",
        `| time to first frame (answer sent → first complete frame), median / max of ${sorted.length} | ${fmt(mid ?? null, 0)} / ${fmt(sorted.at(-1) ?? null, 0)} ms |`,
        `| complete frames/s at one watcher | ${fmt(v.fps ?? null, 1)} |`,
        `| agent CPU, linked without video / one stream / two streams | ${fmt(v.cpu?.linkedNoVideo ?? null, 1)} / ${fmt(v.cpu?.oneStream ?? null, 1)} / ${fmt(v.cpu?.twoStreams ?? null, 1)} % of a core |`,
        `| agent CPU per stream ((two − none) / 2) | ${fmt(v.cpu?.perStream ?? null, 1)} % of a core |`,
        `| control RTT p50 / p99 without video (20 Hz probes) | ${fmt(rtt?.withoutVideo.p50 ?? null, 1)} / ${fmt(rtt?.withoutVideo.p99 ?? null, 1)} ms |`,
        `| control RTT p50 / p99 with one stream | ${fmt(rtt?.withVideo.p50 ?? null, 1)} / ${fmt(rtt?.withVideo.p99 ?? null, 1)} ms |`,
        "",
      );
      if (v.failedPhases?.length)
        md.push(`Phases retried (no link or no frame in time): ${v.failedPhases.join("; ")}.`, "");
    }
    const g = v.glassToGlass;
    if (g) {
      md.push("### Glass to glass", "");
      if (!g.available) md.push(`Not measured: ${g.note ?? "not run"}.`, "");
      else {
        const ms = (x: Summary | undefined) =>
          `${fmt(x?.median ?? null, 0)} / ${fmt(x?.p95 ?? null, 0)} / ${fmt(x?.max ?? null, 0)} ms`;
        md.push(
          `Source: ${g.source}. The page reads the capture time back from every frame it presents; the reader was checked first on a frame stamped with a known time (read ${g.knownFrame?.read === g.knownFrame?.stamp ? "correctly" : "WRONG"}).`,
          "",
          "| figure | value |",
          "|---|---|",
          `| capture → shown in the console (expected display time), median / p95 / max | ${ms(g.shownMs)} |`,
          `| capture → last packet received by Chromium (its receiveTime), median / p95 / max; frames read before their stamp | ${ms(g.receivedMs)}; ${g.receivedBeforeStamp ?? "–"} (min ${fmt(g.receivedMs?.min ?? null, 0)} ms) |`,
          `| frames presented / with a valid stamp | ${g.framesSeen ?? "–"} / ${g.framesValid ?? "–"} |`,
          `| frames/s: from the encoder (at the agent) / presented with a valid stamp | ${fmt(g.sourceFps ?? null, 1)} / ${fmt(g.fps ?? null, 1)} |`,
          `| CPU during the window: live encoder (ffmpeg) / agent | ${fmt(g.cpu?.ffmpeg ?? null, 1)} / ${fmt(g.cpu?.agent ?? null, 1)} % of a core |`,
          `| load average (1 min) at start / end | ${fmt(g.load?.[0] ?? null, 2)} / ${fmt(g.load?.[1] ?? null, 2)} |`,
          "",
        );
      }
    }
  }

  const mdFile = join(dir, `${stem}.md`);
  writeFileSync(mdFile, `${md.join("\n")}\n`);
  files.push(mdFile);
  return files;
}
