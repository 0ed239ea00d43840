/** Proximity: which peers are within a radius of each other (same map). Pure. */
import type { Position } from "../../shared/protocol.ts";

export interface Placed {
  id: string;
  position: Position | null;
}

function sameMap(a: Position, b: Position): boolean {
  return (a.map ?? "") === (b.map ?? "");
}

/** For each peer, the sorted ids of the other peers within `radius` (inclusive). */
export function nearbySets(peers: readonly Placed[], radius: number): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const p of peers) {
    const near: string[] = [];
    if (p.position) {
      for (const q of peers) {
        if (q.id === p.id || !q.position || !sameMap(p.position, q.position)) continue;
        const d = Math.hypot(p.position.x - q.position.x, p.position.y - q.position.y);
        if (d <= radius) near.push(q.id);
      }
    }
    near.sort();
    out.set(p.id, near);
  }
  return out;
}
