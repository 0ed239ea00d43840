/** The agent's pure link policies: who offers, kept links to departed peers, quarantine. */
import { describe, expect, it } from "vitest";
import { Quarantine } from "../../../shared/link/conduct.ts";
import { DepartedLinks } from "../../../shared/link/departed.ts";
import { crossedOffer, offersTo } from "../../../shared/link/pairing.ts";

describe("pairing", () => {
  it("exactly one side of every pair offers, and crossed offers settle the same way", () => {
    const ids = ["a", "b", "rover-7", "rover-10", "Zed"];
    for (const x of ids)
      for (const y of ids) {
        if (x === y) continue;
        expect(offersTo(x, y)).toBe(!offersTo(y, x));
        expect(crossedOffer(x, y) === "decline").toBe(offersTo(x, y));
      }
  });
});

describe("links to departed peers", () => {
  it("keeps a live link when the presence expired, drops it otherwise", () => {
    const d = new DepartedLinks();
    expect(d.left("p", "expired", true, 0)).toBe("keep");
    expect(d.left("q", "expired", false, 0)).toBe("drop");
    expect(d.left("r", "left", true, 0)).toBe("drop");
    expect(d.left("s", "token-expired", true, 0)).toBe("drop");
    expect(d.isKept("p")).toBe(true);
  });

  it("drops a kept link after it has been down for the grace, not while it is up", () => {
    const d = new DepartedLinks({ downGraceMs: 10_000, maxKeepMs: 120_000 });
    d.left("p", "expired", true, 0);
    let up = true;
    expect(d.sweep(5_000, () => up)).toEqual([]);
    up = false;
    expect(d.sweep(6_000, () => up)).toEqual([]);
    expect(d.sweep(15_999, () => up)).toEqual([]);
    expect(d.sweep(16_000, () => up)).toEqual(["p"]);
    expect(d.isKept("p")).toBe(false);
  });

  it("keeps a link at most maxKeepMs after the peer left, even while it works", () => {
    const d = new DepartedLinks({ maxKeepMs: 120_000 });
    d.left("p", "expired", true, 0);
    expect(d.sweep(119_000, () => true)).toEqual([]);
    expect(d.sweep(120_000, () => true)).toEqual(["p"]);
  });

  it("a peer back at the edge is no longer departed", () => {
    const d = new DepartedLinks();
    d.left("p", "expired", true, 0);
    d.returned("p");
    expect(d.sweep(1_000_000, () => false)).toEqual([]);
  });
});

describe("quarantine", () => {
  it("refuses a peer for firstMs, doubling per strike up to maxMs", () => {
    const q = new Quarantine({ firstMs: 1_000, maxMs: 5_000 });
    expect(q.strike("p", 0)).toBe(1_000);
    expect(q.refused("p", 999)).toBe(true);
    expect(q.refused("p", 1_000)).toBe(false);
    expect(q.strike("p", 2_000)).toBe(2_000);
    expect(q.strike("p", 5_000)).toBe(4_000);
    expect(q.strike("p", 10_000)).toBe(5_000);
    expect(q.refused("other", 0)).toBe(false);
  });

  it("reports the first declined offer of a refusal, and a release once", () => {
    const q = new Quarantine({ firstMs: 1_000, maxMs: 5_000 });
    q.strike("p", 0);
    expect(q.declined("p")).toBe(true);
    expect(q.declined("p")).toBe(false);
    expect(q.released(500)).toEqual([]);
    expect(q.released(1_000)).toEqual(["p"]);
    expect(q.released(2_000)).toEqual([]);
    // Strikes are remembered for maxMs after the refusal ended, then forgotten.
    expect(q.strike("p", 3_000)).toBe(2_000);
    q.released(5_000);
    q.released(10_001);
    expect(q.strike("p", 20_000)).toBe(1_000);
  });
});
