/** The benchmark report: markdown with ratios, and PNG charts (vega-lite -> SVG -> resvg). */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Resvg } from "@resvg/resvg-js";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { BenchResults } from "./run.ts";

async function png(spec: TopLevelSpec, file: string): Promise<void> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  const svg = await view.toSVG();
  writeFileSync(
    file,
    new Resvg(svg, { fitTo: { mode: "width", value: 720 }, background: "white" }).render().asPng(),
  );
}

const fmt = (x: number | null | undefined, unit = "") =>
  x === null || x === undefined ? "–" : `${x}${unit}`;

export async function writeReport(r: BenchResults, dir: string, stem: string): Promise<string[]> {
  const files: string[] = [];
  const md: string[] = [
    `# roverlink benchmarks — ${r.date}${r.quick ? " (quick)" : ""}`,
    "",
    `Machine: ${r.machine}. Shared and noisy: read the ratios.`,
    "",
  ];
  if (r.timeToLink) {
    const t = r.timeToLink;
    md.push(
      "## 1. Time to link",
      "",
      "| stack | median ms | p95 ms | IQR ms | runs |",
      "|---|---|---|---|---|",
    );
    md.push(
      `| roverlink agents via local edge | ${fmt(t.roverlinkMs.median)} | ${fmt(t.roverlinkMs.p95)} | ${fmt(t.roverlinkMs.iqr)} | ${t.roverlinkMs.n} |`,
    );
    md.push(
      `| stock werift, SDP in memory | ${fmt(t.weriftMs.median)} | ${fmt(t.weriftMs.p95)} | ${fmt(t.weriftMs.iqr)} | ${t.weriftMs.n} |`,
    );
    md.push(
      `| node-datachannel | – | – | – | ${t.nodeDatachannel} |`,
      "",
      `Ratio roverlink / stock werift (median): **${fmt(t.ratioRoverlinkToWerift)}**. roverlink's figure includes joining the room and HTTP signaling through workerd.`,
      "",
    );
    const f = join(dir, `${stem}-time-to-link.png`);
    await png(
      {
        $schema: "https://vega.github.io/schema/vega-lite/v6.json",
        title: "Time to link (ms)",
        width: 500,
        data: {
          values: [
            ...t.samples.roverlink.map((v) => ({ stack: "roverlink", ms: v })),
            ...t.samples.werift.map((v) => ({ stack: "stock werift", ms: v })),
          ],
        },
        mark: { type: "boxplot", extent: "min-max" },
        encoding: {
          y: { field: "stack", type: "nominal" },
          x: { field: "ms", type: "quantitative" },
        },
      },
      f,
    );
    files.push(f);
  }
  if (r.dataPath) {
    const d = r.dataPath;
    md.push(
      "## 3. Data path",
      "",
      "| stack | RTT p50 ms | RTT p99 ms | reliable throughput MB/s | CPU µs/msg (both ends) |",
      "|---|---|---|---|---|",
    );
    md.push(
      `| roverlink (control, reliable layer) | ${fmt(d.roverlink.rttMs.median)} | ${fmt(d.roverlink.rttMs.p99)} | ${d.roverlink.throughputMBps} | ${d.roverlink.cpuUsPerMessage} |`,
    );
    md.push(
      `| stock werift | ${fmt(d.werift.rttMs.median)} | ${fmt(d.werift.rttMs.p99)} | ${d.werift.throughputMBps} | ${d.werift.cpuUsPerMessage} |`,
    );
    md.push(
      `| node-datachannel | – | – | – | ${d.nodeDatachannel} |`,
      "",
      `Ratios roverlink / werift: RTT p50 ${fmt(d.ratios.rttP50)}, RTT p99 ${fmt(d.ratios.rttP99)}, throughput ${fmt(d.ratios.throughput)}, CPU ${fmt(d.ratios.cpu)}.`,
      "",
    );
    const f = join(dir, `${stem}-data-path.png`);
    await png(
      {
        $schema: "https://vega.github.io/schema/vega-lite/v6.json",
        title: "RTT at 100 msg/s (ms)",
        width: 500,
        data: {
          values: [
            { stack: "roverlink", q: "p50", ms: d.roverlink.rttMs.median },
            { stack: "roverlink", q: "p99", ms: d.roverlink.rttMs.p99 },
            { stack: "stock werift", q: "p50", ms: d.werift.rttMs.median },
            { stack: "stock werift", q: "p99", ms: d.werift.rttMs.p99 },
          ],
        },
        mark: "bar",
        encoding: {
          y: { field: "stack", type: "nominal" },
          yOffset: { field: "q" },
          x: { field: "ms", type: "quantitative" },
          color: { field: "q" },
        },
      },
      f,
    );
    files.push(f);
  }
  if (r.edge) {
    const e = r.edge;
    md.push(
      "## 4. Edge (local workerd)",
      "",
      "| measure | roverlink edge | minimal WebSocket relay |",
      "|---|---|---|",
    );
    md.push(
      `| offer→answer median ms | ${fmt(e.offerToAnswerMs.median)} | ${fmt(e.wsRelayMs.median)} |`,
    );
    md.push(
      `| offer→answer p95 ms | ${fmt(e.offerToAnswerMs.p95)} | ${fmt(e.wsRelayMs.p95)} |`,
      "",
    );
    md.push(
      `Ratio edge / relay (median): **${fmt(e.ratioEdgeToRelay)}** — the edge authenticates, persists the session and the event in SQLite, and parks the offer in the Worker; the relay forwards a frame.`,
      "",
    );
    md.push(
      `Sessions per second, one room, 4 concurrent pairs: **${e.sessionsPerSecondOneRoom}**.`,
      "",
      "| rooms (1 pair each) | sessions/s |",
      "|---|---|",
    );
    for (const s of e.roomsScaling) md.push(`| ${s.rooms} | ${s.sessionsPerSecond} |`);
    md.push("");
    const f = join(dir, `${stem}-edge-rooms.png`);
    await png(
      {
        $schema: "https://vega.github.io/schema/vega-lite/v6.json",
        title: "Sessions per second vs rooms (local workerd)",
        width: 500,
        data: { values: e.roomsScaling },
        mark: { type: "line", point: true },
        encoding: {
          x: { field: "rooms", type: "quantitative" },
          y: { field: "sessionsPerSecond", type: "quantitative" },
        },
      },
      f,
    );
    files.push(f);
  }
  if (r.footprint) {
    const p = r.footprint;
    md.push(
      "## 5. Footprint",
      "",
      `Agent RSS: idle ${p.rssIdleMiB} MiB, linked ${p.rssLinkedMiB} MiB.`,
      "",
    );
    md.push("| idle link | packets/day | bytes/day |", "|---|---|---|");
    md.push(
      `| roverlink (${p.idleLink.seconds} s measured) | ${p.idleLink.packetsPerDay} | ${p.idleLink.bytesPerDay} |`,
    );
    md.push(
      `| WireGuard 25 s keepalive (reference) | ${p.wireguardKeepalive.packetsPerDay} | ${p.wireguardKeepalive.bytesPerDay} |`,
      "",
      `Ratio bytes roverlink / WireGuard: **${fmt(p.ratioBytes)}** (roverlink probes once a second for RTT/loss and 1.5 s silence detection; ${p.idleLink.note}).`,
      "",
    );
  }
  if (r.handover) {
    const h = r.handover;
    md.push("## 2. Handover gap (carrier-NAT lab)", "");
    if (!h.available) md.push(h.note ?? "not run", "");
    else {
      md.push(
        "| scenario | runs | gap p50 ms | gap p95 ms | lost | duplicated | reordered |",
        "|---|---|---|---|---|---|---|",
      );
      for (const row of h.rows)
        md.push(
          `| ${row.scenario} | ${row.runs} | ${fmt(row.gapMs.median)} | ${fmt(row.gapMs.p95)} | ${row.lost} | ${row.duplicated} | ${row.reordered} |`,
        );
      if (h.baseline)
        md.push(
          "",
          `Baseline, stock werift peers without handover logic (${h.baseline.scenario}): ${h.baseline.echoedAfterFault} of ${h.baseline.sentAfterFault} messages sent after the fault came back — ${h.baseline.note}.`,
        );
      md.push("");
      const f = join(dir, `${stem}-handover.png`);
      await png(
        {
          $schema: "https://vega.github.io/schema/vega-lite/v6.json",
          title: "Handover gap p50 / p95 (ms)",
          width: 500,
          data: {
            values: h.rows.flatMap((x) => [
              { scenario: x.scenario, q: "p50", ms: x.gapMs.median },
              { scenario: x.scenario, q: "p95", ms: x.gapMs.p95 },
            ]),
          },
          mark: "bar",
          encoding: {
            y: { field: "scenario", type: "nominal" },
            yOffset: { field: "q" },
            x: { field: "ms", type: "quantitative" },
            color: { field: "q" },
          },
        },
        f,
      );
      files.push(f);
    }
  }
  const mdFile = join(dir, `${stem}.md`);
  writeFileSync(mdFile, `${md.join("\n")}\n`);
  files.push(mdFile);
  return files;
}
