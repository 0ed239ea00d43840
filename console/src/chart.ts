/** A live RTT line with loss bars underneath, as a small SVG (last 60 samples). */
import { s } from "./dom.ts";

export interface ChartPoint {
  rttMs: number | null;
  loss: number | null;
}

const W = 300;
const H = 90;
const LOSS_H = 20;
export const CHART_POINTS = 60;

export function renderChart(points: readonly ChartPoint[], label: string): SVGElement {
  const rtts = points.map((p) => p.rttMs).filter((v): v is number => v !== null);
  const maxRtt = Math.max(5, ...rtts);
  const dx = W / (CHART_POINTS - 1);
  const offset = CHART_POINTS - points.length;
  const rttTop = H - LOSS_H - 4;
  const line: string[] = [];
  points.forEach((p, i) => {
    if (p.rttMs === null) return;
    const x = (offset + i) * dx;
    const y = rttTop - (p.rttMs / maxRtt) * (rttTop - 12);
    line.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  });
  const svg = s(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label, class: "chart" },
    s("rect", { x: 0, y: 0, width: W, height: H, class: "chart-bg" }),
    s("text", { x: 4, y: 11, class: "axis" }, `RTT (max ${maxRtt.toFixed(1)} ms)`),
    s("text", { x: 4, y: H - 2, class: "axis" }, "loss"),
  );
  if (line.length > 0) svg.append(s("polyline", { points: line.join(" "), class: "rtt" }));
  points.forEach((p, i) => {
    if (!p.loss) return;
    const hgt = Math.max(1, p.loss * LOSS_H);
    svg.append(
      s("rect", { x: (offset + i) * dx - 1.5, y: H - hgt, width: 3, height: hgt, class: "loss" }),
    );
  });
  return svg;
}
