/**
 * 1. Time to link: two roverlink agents through the local edge (join, HTTP signaling through the
 * room object, ICE, DTLS, SCTP) vs two stock werift PCs (0.25.2 as published, unpatched) and two
 * node-datachannel PCs exchanging SDP in memory. The stacks take turns within each run so machine noise hits all of them alike.
 */
import type { LocalEdge } from "../rover/local-edge.ts";
import { nodeDatachannel, type PairOptions, pairOf, type Stack } from "./peers.ts";
import { ratio, type Summary, summarize } from "./stats.ts";

export interface StackTimes {
  stack: Stack;
  /** Set when the stack could not be measured here. */
  unavailable?: string;
  ms: Summary;
  samples: number[];
}

export interface TimeToLink {
  runs: number;
  /** Runs that took over 900 ms per stack: a lost first handshake flight waiting for a 1 s retransmit timer. */
  slowRuns: Partial<Record<Stack, number>>;
  stacks: StackTimes[];
  /** Median over median. */
  ratios: {
    roverlinkToWerift: number | null;
    roverlinkToNodeDatachannel: number | null;
    weriftToNodeDatachannel: number | null;
  };
}

/** The werift anchor: 0.25.2 as published (the `werift-unpatched` alias), not our patched copy. */
const ANCHOR = "werift-unpatched";

export async function timeToLink(
  edge: LocalEdge,
  runs: number,
  opts: PairOptions = {},
): Promise<TimeToLink> {
  const ndc = nodeDatachannel();
  const stacks: StackTimes[] = (["roverlink", ANCHOR, "node-datachannel"] as const).map(
    (stack) => ({
      stack,
      ...(stack === "node-datachannel" && typeof ndc === "string" ? { unavailable: ndc } : {}),
      ms: summarize([]),
      samples: [],
    }),
  );
  for (let i = 0; i < runs; i++) {
    for (const s of stacks) {
      if (s.unavailable) continue;
      const linked = await pairOf(s.stack, edge, opts);
      s.samples.push(Math.round(linked.linkMs * 100) / 100);
      await linked.pair.close();
    }
  }
  for (const s of stacks) s.ms = summarize(s.samples);
  const median = (stack: Stack) => stacks.find((s) => s.stack === stack)?.ms.median;
  const slow = (stack: Stack) =>
    stacks.find((s) => s.stack === stack)?.samples.filter((x) => x > 900).length ?? 0;
  return {
    runs,
    slowRuns: {
      roverlink: slow("roverlink"),
      [ANCHOR]: slow(ANCHOR),
      "node-datachannel": slow("node-datachannel"),
    },
    stacks,
    ratios: {
      roverlinkToWerift: ratio(median("roverlink"), median(ANCHOR)),
      roverlinkToNodeDatachannel: ratio(median("roverlink"), median("node-datachannel")),
      weriftToNodeDatachannel: ratio(median(ANCHOR), median("node-datachannel")),
    },
  };
}
