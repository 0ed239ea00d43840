/** 1. Time to link: roverlink agents through the local edge vs stock werift exchanging SDP in memory. */
import type { LocalEdge } from "../rover/local-edge.ts";
import { NODE_DATACHANNEL_UNAVAILABLE, roverlinkPair, weriftPair } from "./peers.ts";
import { ratio, type Summary, summarize } from "./stats.ts";

export interface TimeToLink {
  roverlinkMs: Summary;
  weriftMs: Summary;
  nodeDatachannel: string;
  ratioRoverlinkToWerift: number | null;
  samples: { roverlink: number[]; werift: number[] };
}

export async function timeToLink(edge: LocalEdge, runs: number): Promise<TimeToLink> {
  const rl: number[] = [];
  const wr: number[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await roverlinkPair(edge);
    rl.push(r.linkMs);
    await r.pair.close();
    const w = await weriftPair();
    wr.push(w.linkMs);
    await w.pair.close();
  }
  const roverlinkMs = summarize(rl);
  const weriftMs = summarize(wr);
  return {
    roverlinkMs,
    weriftMs,
    nodeDatachannel: `unavailable: ${NODE_DATACHANNEL_UNAVAILABLE}`,
    ratioRoverlinkToWerift: ratio(roverlinkMs.median, weriftMs.median),
    samples: { roverlink: rl, werift: wr },
  };
}
