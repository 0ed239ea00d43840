import { describe, expect, it } from "vitest";
import { ProbeStats, parseEcho, percentile, probeMessage } from "../../rover/probe.ts";

/** Our probe `seq` to `to`, sent at `ts`, as it comes back from an echoing peer. */
function echo(seq: number, ts: number, to = "b") {
  const m = parseEcho(probeMessage("a", to, seq, ts), "a");
  if (!m) throw new Error("probe did not parse as our echo");
  return m;
}

describe("probe figures", () => {
  it("counts sent, received, lost, duplicated, reordered, gaps and RTT percentiles", () => {
    const s = new ProbeStats(1_000);
    s.linkUp(1_400);
    for (let i = 0; i < 5; i++) s.sent();
    s.echoed(echo(0, 1_500), 1_510);
    s.echoed(echo(2, 1_520), 1_530);
    s.echoed(echo(1, 1_510), 1_900); // late: reordered, a 370 ms gap
    s.echoed(echo(1, 1_510), 1_910); // duplicate
    s.handover("switch");
    s.handover("restart");
    const f = s.figures(2_000);
    expect(f).toMatchObject({
      sent: 5,
      received: 3,
      lost: 2,
      duplicated: 1,
      reordered: 1,
      handovers: 2,
      restarts: 1,
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

  it("before any link, figures are empty and no gap is counted", () => {
    const s = new ProbeStats(0);
    const f = s.figures(10_000);
    expect(f).toMatchObject({ sent: 0, received: 0, lost: 0, maxGapMs: 0, linkUpMs: null });
    expect(f.rttMs).toEqual({ p50: null, p99: null });
  });

  it("an open gap counts at exit only while probes are outstanding", () => {
    const s = new ProbeStats(0);
    s.linkUp(100);
    s.sent();
    s.echoed(echo(0, 100), 150);
    // Everything came back: the quiet time after the last echo is no gap.
    expect(s.figures(5_000).maxGapMs).toBe(50);
    s.sent();
    // One probe outstanding since: the link has been silent for 4850 ms.
    expect(s.figures(5_000)).toMatchObject({ maxGapMs: 4_850, lost: 1 });
  });

  it("the time with no link left (peers gone) until the next link-up is not a gap", () => {
    const s = new ProbeStats(0);
    s.linkUp(0);
    s.sent();
    s.echoed(echo(0, 0), 10);
    s.sent(); // never echoed: the peer left
    s.linksGone(300);
    s.linkUp(60_000);
    s.sent();
    s.echoed(echo(2, 60_000), 60_020);
    const f = s.figures(60_020);
    expect(f.maxGapMs).toBe(290);
    expect(f).toMatchObject({ sent: 3, received: 2, lost: 1, linkUpMs: 0 });
  });

  it("sequence order is per peer", () => {
    const s = new ProbeStats(0);
    s.linkUp(0);
    for (let i = 0; i < 4; i++) s.sent();
    s.echoed(echo(1, 0, "b"), 5);
    s.echoed(echo(0, 0, "c"), 6); // another peer's seq 0 after b's 1: in order
    s.echoed(echo(1, 0, "c"), 7);
    s.echoed(echo(0, 0, "b"), 8); // b's 0 after b's 1: reordered
    expect(s.figures(10)).toMatchObject({ received: 4, reordered: 1, duplicated: 0, lost: 0 });
  });
});
