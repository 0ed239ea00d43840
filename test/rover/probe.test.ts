import { describe, expect, it } from "vitest";
import { ProbeStats, parseEcho, percentile, probeMessage } from "../../rover/probe.ts";

describe("probe figures", () => {
  it("counts sent, received, lost, duplicated, reordered, gaps and RTT percentiles", () => {
    const s = new ProbeStats(1_000);
    s.linkUp(1_400);
    for (let i = 0; i < 5; i++) s.sent();
    const echo = (seq: number, ts: number) => parseEcho(probeMessage("a", "b", seq, ts), "a");
    s.echoed(echo(0, 1_500)!, 1_510);
    s.echoed(echo(2, 1_520)!, 1_530);
    s.echoed(echo(1, 1_510)!, 1_900); // late: reordered, a 370 ms gap
    s.echoed(echo(1, 1_510)!, 1_910); // duplicate
    s.handover();
    const f = s.figures(2_000);
    expect(f).toMatchObject({
      sent: 5,
      received: 3,
      lost: 2,
      duplicated: 1,
      reordered: 1,
      handovers: 1,
      linkUpMs: 400,
    });
    expect(f.maxGapMs).toBe(370);
    expect(f.rttMs.p50).toBe(10);
    expect(f.rttMs.p99).toBe(390);
  });

  it("only our own probes count as echoes", () => {
    expect(parseEcho(probeMessage("b", "a", 1, 0), "a")).toBeNull();
    expect(parseEcho("hello", "a")).toBeNull();
    expect(parseEcho('{"t":"probe",', "a")).toBeNull();
    expect(percentile([], 50)).toBeNull();
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
  });
});
