import { describe, expect, it } from "vitest";
import { DEFAULT_CONDUCT, PeerConduct } from "../../../shared/link/conduct.ts";
import { decodeProbe, encodeProbe, isProbe, ProbeError } from "../../../shared/link/probe-wire.ts";

describe("peer conduct", () => {
  it("tolerates occasional garbage: forgiven over time", () => {
    const c = new PeerConduct({}, 0);
    // One malformed frame every 2 s for ten minutes: the bucket drains faster than it fills.
    for (let t = 0; t < 600_000; t += 2_000)
      expect(c.onViolation("malformed-frame", t)).toBe("tolerate");
    expect(c.counts()["malformed-frame"]).toBe(300);
    expect(c.dropped).toBe(false);
  });

  it("drops a peer that keeps breaking the protocol, and stays dropped", () => {
    const c = new PeerConduct({}, 0);
    const verdicts = Array.from({ length: 25 }, (_, i) => c.onViolation("malformed-frame", i));
    expect(verdicts.indexOf("drop")).toBe(DEFAULT_CONDUCT.budget);
    expect(c.onViolation("malformed-probe", 60_000)).toBe("drop");
    expect(c.total()).toBe(26);
  });

  it("a reorder overflow alone is enough to drop; five out-of-window frames are", () => {
    expect(new PeerConduct().onViolation("reorder-overflow", 0)).toBe("drop");
    const c = new PeerConduct();
    const v = [1, 2, 3, 4, 5].map((t) => c.onViolation("out-of-window", t));
    expect(v).toEqual(["tolerate", "tolerate", "tolerate", "tolerate", "drop"]);
  });

  it("answers at most pongsPerS pings a second", () => {
    const c = new PeerConduct({ pongsPerS: 20 }, 0);
    let answered = 0;
    for (let i = 0; i < 1_000; i++) if (c.allowPong(i)) answered++; // 1000 pings in 1 s
    expect(answered).toBeGreaterThanOrEqual(20);
    expect(answered).toBeLessThanOrEqual(41);
    // Our own policy's rate (4/s) is always answered.
    const slow = new PeerConduct({}, 0);
    for (let t = 0; t < 60_000; t += 250) expect(slow.allowPong(t)).toBe(true);
  });

  it("carries out a burst of the peer's ICE restarts, then one per 2 s", () => {
    const c = new PeerConduct({}, 0);
    let allowed = 0;
    for (let t = 0; t < 60_000; t += 100) if (c.allowRestart(t)) allowed++; // 10/s for a minute
    expect(allowed).toBeGreaterThanOrEqual(DEFAULT_CONDUCT.restartBurst);
    expect(allowed).toBeLessThanOrEqual(
      DEFAULT_CONDUCT.restartBurst + DEFAULT_CONDUCT.restartsPerMin,
    );
    // Our own policy's series (4 attempts, 0-2 s apart, then a rebuild) is always carried out,
    // even on an uplink that flaps every 3 s.
    const own = new PeerConduct({}, 0);
    for (let t = 0; t < 600_000; t += 3_000) expect(own.allowRestart(t)).toBe(true);
  });

  it("refuses the peer's ICE restarts past maxUnfinishedRestarts none of which completed", () => {
    const c = new PeerConduct({}, 0);
    const max = DEFAULT_CONDUCT.maxUnfinishedRestarts;
    // Far apart: the rate never refuses them; only that none completes.
    for (let i = 0; i < max; i++) expect(c.restartRefusal(i * 60_000)).toBeNull();
    expect(c.restartRefusal(max * 60_000)).toBe(`after ${max} that did not complete`);
    // One completed (or a new PeerConnection): the count starts again.
    c.restartsSettled();
    expect(c.restartRefusal((max + 1) * 60_000)).toBeNull();
    // Our own policy's series, each restart completing, is always carried out.
    const own = new PeerConduct({}, 0);
    for (let t = 0; t < 600_000; t += 3_000) {
      expect(own.restartRefusal(t)).toBeNull();
      own.restartsSettled();
    }
    // The rate still applies: 100 at once, each completing, are not all carried out.
    const fast = new PeerConduct({}, 0);
    const refusals = new Set<string | null>();
    for (let i = 0; i < 100; i++) {
      refusals.add(fast.restartRefusal(i));
      fast.restartsSettled();
    }
    expect(refusals).toEqual(new Set([null, "past the restart rate"]));
  });
});

describe("probe wire", () => {
  it("round-trips pings and pongs", () => {
    for (const p of [
      { rlp: "ping", i: 0 },
      { rlp: "pong", i: 123456 },
    ] as const) {
      const text = encodeProbe(p);
      expect(isProbe(text)).toBe(true);
      expect(decodeProbe(text)).toEqual(p);
    }
  });

  it("rejects anything else that claims to be a probe, without throwing anything but ProbeError", () => {
    const bad = [
      '{"rlp":',
      '{"rlp":"ping"}',
      '{"rlp":"ping","i":-1}',
      '{"rlp":"ping","i":1.5}',
      '{"rlp":"ping","i":"1"}',
      '{"rlp":"boom","i":1}',
      '{"rlp":null}',
      `{"rlp":"ping","i":1,"pad":"${"x".repeat(100)}"}`,
      '{"rlp":"ping","i":1e400}',
    ];
    for (const t of bad) expect(() => decodeProbe(t), t).toThrow(ProbeError);
  });
});
