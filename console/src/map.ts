/**
 * The room map: every peer with a position as a labelled dot, this browser's nearby radius as a
 * circle, peers the edge reports as nearby highlighted. Scales to fit all positions; a scale bar
 * (bottom left, one grid step long) and the title say how far a grid step is, in map units (the
 * units positions are published in, as NEARBY_RADIUS is).
 */
import type { Peer } from "../../shared/protocol.ts";
import { s } from "./dom.ts";

export interface MapInput {
  self: Peer | null;
  peers: Peer[];
  nearby: ReadonlySet<string>;
  radius: number | null;
}

const SIZE = 320;
const PAD = 28;
/** A peer this many times farther from the room's middle than most peers is off the map. */
const OUTLIER_FACTOR = 50;

/**
 * The square the map shows: every position (and `extra` points, the nearby circle's box), less
 * the peers far from the rest, which are drawn at its edge as off the map. Pure. One peer at
 * (1e308, -1e308) drew every other peer on one pixel, and the span overflowed to Infinity.
 */
export function fitView(
  points: readonly { id: string; x: number; y: number }[],
  extra: readonly { x: number; y: number }[] = [],
): { minX: number; minY: number; span: number; off: Set<string> } {
  const off = new Set<string>();
  if (points.length >= 3) {
    const median = (v: number[]) => {
      const a = [...v].sort((p, q) => p - q);
      return a[Math.floor(a.length / 2)] as number;
    };
    const mx = median(points.map((p) => p.x));
    const my = median(points.map((p) => p.y));
    const dist = points.map((p) => Math.hypot(p.x - mx, p.y - my));
    const far = OUTLIER_FACTOR * Math.max(median(dist), 10);
    points.forEach((p, i) => {
      if (!((dist[i] as number) <= far)) off.add(p.id);
    });
  }
  const kept = [...points.filter((p) => !off.has(p.id)), ...extra];
  const xs = kept.map((p) => p.x);
  const ys = kept.map((p) => p.y);
  const minX = Math.min(0, ...xs);
  const minY = Math.min(0, ...ys);
  const span = Math.max(Math.max(10, ...xs) - minX, Math.max(10, ...ys) - minY);
  // Two peers alone far apart still overflow a double: an honest, finite square instead.
  if (!Number.isFinite(span))
    return { minX: 0, minY: 0, span: 10, off: new Set(points.map((p) => p.id)) };
  return { minX, minY, span, off };
}

export function renderMap(input: MapInput): SVGElement {
  const all = [...(input.self ? [input.self] : []), ...input.peers].filter((p) => p.position);
  const me = input.self?.position ?? null;
  const r = input.radius ?? 0;
  const view = fitView(
    all.map((p) => ({ id: p.id, x: p.position?.x ?? 0, y: p.position?.y ?? 0 })),
    me && r > 0
      ? [
          { x: me.x - r, y: me.y - r },
          { x: me.x + r, y: me.y + r },
        ]
      : [],
  );
  const { minX, minY, span } = view;
  const scale = (SIZE - 2 * PAD) / span;
  // y grows upwards on the map, downwards in SVG.
  const px = (x: number) => PAD + (x - minX) * scale;
  const py = (y: number) => SIZE - PAD - (y - minY) * scale;

  const placed = all.length;
  // A light grid every "round" unit so distances can be read; the scale bar is one step long.
  const step = niceStep(span / 5);
  const units = `${formatUnits(step)} map unit${step === 1 ? "" : "s"}`;
  const desc = `${placed} peer${placed === 1 ? "" : "s"} with a position${
    r > 0 ? `, nearby radius ${r}` : ""
  }; grid lines every ${units}`;
  const svg = s(
    "svg",
    {
      viewBox: `0 0 ${SIZE} ${SIZE}`,
      role: "img",
      "aria-labelledby": "map-title",
      class: "map",
    },
    s("title", { id: "map-title" }, `Room map: ${desc}`),
    s("rect", { x: 0, y: 0, width: SIZE, height: SIZE, class: "map-bg" }),
  );
  for (let gx = Math.ceil(minX / step) * step; gx <= minX + span; gx += step) {
    svg.append(s("line", { x1: px(gx), x2: px(gx), y1: 0, y2: SIZE, class: "grid" }));
  }
  for (let gy = Math.ceil(minY / step) * step; gy <= minY + span; gy += step) {
    svg.append(s("line", { y1: py(gy), y2: py(gy), x1: 0, x2: SIZE, class: "grid" }));
  }
  // The scale: a bar one grid step long in the bottom margin, with end ticks and its length.
  const barY = SIZE - PAD / 2;
  const barEnd = PAD + step * scale;
  svg.append(
    s(
      "g",
      { class: "scale", "data-units": step },
      s("line", { x1: PAD, x2: barEnd, y1: barY, y2: barY }),
      s("line", { x1: PAD, x2: PAD, y1: barY - 4, y2: barY + 4 }),
      s("line", { x1: barEnd, x2: barEnd, y1: barY - 4, y2: barY + 4 }),
      s("text", { x: barEnd + 6, y: barY + 4 }, units),
    ),
  );
  if (me && r > 0) {
    svg.append(s("circle", { cx: px(me.x), cy: py(me.y), r: r * scale, class: "radius" }));
  }
  for (const p of all) {
    if (!p.position) continue;
    const isMe = p.id === input.self?.id;
    const near = input.nearby.has(p.id);
    const cls = ["dot", `kind-${p.kind}`, isMe ? "me" : "", near ? "near" : ""].join(" ").trim();
    // Off the map: at its edge, in the peer's direction, and said so.
    const out = view.off.has(p.id);
    const edge = (v: number) => Math.min(SIZE - PAD / 2, Math.max(PAD / 2, v));
    const x = out ? edge(px(p.position.x)) : px(p.position.x);
    const y = out ? edge(py(p.position.y)) : py(p.position.y);
    svg.append(
      s(
        "g",
        { class: out ? `${cls} off-map` : cls, "data-peer": p.id },
        // Where exactly, on hover (and for screen readers).
        s(
          "title",
          {},
          `${p.id} at (${p.position.x}, ${p.position.y})${out ? ", off the map" : ""}`,
        ),
        s("circle", { cx: x, cy: y, r: isMe ? 7 : 6 }),
        s(
          "text",
          { x: x + 9, y: y + 4 },
          `${p.id}${isMe ? " (you)" : ""}${out ? " (off map)" : ""}`,
        ),
      ),
    );
  }
  return svg;
}

/** A step as people write it (niceStep's products can carry float noise: 0.30000000000000004). */
function formatUnits(n: number): string {
  return String(Number(n.toPrecision(6)));
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-9)));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}
