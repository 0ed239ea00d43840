// Idle links in the lab (docs/lab.md, docs/link-health.md), with the default (cellular) profile:
// no probes while idle, one ICE keepalive every 16-24 s.
//   - NATs whose UDP mappings expire after 30 s of silence: an idle link stays up, and its first
//     message afterwards arrives at once, without a handover. CI idles 45 s (half as long again
//     as a mapping lives, so at least one keepalive had to hold each mapping); RL_LAB_IDLE_S=600
//     runs the 10 minutes (docs/performance.md has that run).
//   - Idle 35 s (past a keepalive), then a silent blackhole, then one send: delivered and echoed
//     back within seconds, because the send itself makes the link notice (not the next keepalive).
//     How fast (the 1.5 s) is measured in bench/, not asserted here.
import { describe, expect, it } from "vitest";
import { labGate, labWithEdge } from "./gate.ts";
import { jsonLines } from "./json-lines.ts";
import { execIn, fault, labAddresses, nodeIn, stopChild } from "./lab.ts";
import { runScenario, sleep } from "./scenario.ts";

const { unavailable, note } = labGate();

const NATS = ["natw", "natc", "natb"] as const;
const IDLE_S = Number(process.env.RL_LAB_IDLE_S ?? "45");
let edgeUrl = "";

/** UDP conntrack timeouts in a NAT's namespace (s): [unreplied, assured stream]. */
function udpTimeouts(nat: (typeof NATS)[number]): number[] {
  return execIn(nat, "sysctl", [
    "-n",
    "net.netfilter.nf_conntrack_udp_timeout",
    "net.netfilter.nf_conntrack_udp_timeout_stream",
  ])
    .trim()
    .split(/\s+/)
    .map(Number);
}

describe.skipIf(unavailable !== undefined)(`idle links in the lab${note}`, () => {
  labWithEdge((url) => {
    edgeUrl = url;
  });

  it(
    `behind NATs that forget a UDP mapping after 30 s of silence, a link idle ${IDLE_S} s stays up and its next message arrives at once`,
    async () => {
      // Conntrack is per network namespace: these NATs drop an idle mapping after 30 s, even one
      // that saw traffic both ways (the kernel's default for those is 120 s).
      for (const nat of NATS) {
        execIn(nat, "sysctl", [
          "-qw",
          "net.netfilter.nf_conntrack_udp_timeout=30",
          "net.netfilter.nf_conntrack_udp_timeout_stream=30",
        ]);
        expect(udpTimeouts(nat)).toEqual([30, 30]);
      }
      // The premise, on the wire: a UDP flow through rl-natw silent for 35 s gets a new mapping
      // (a new source port seen from the internet). Runs alongside the idle link.
      const a = labAddresses();
      const listener = nodeIn("inet", "test/lab/udp-probe.ts", ["listen", a.edgeIp, "4011"]);
      const heard = jsonLines(listener, "udp listener");
      await heard.next((l) => Array.isArray(l.listening), 10_000, "listening");
      const sender = nodeIn("a", "test/lab/udp-probe.ts", ["send", a.edgeIp, "4011", "2", "35000"]);
      try {
        // One probe at IDLE_S + a few s after start: the link is idle from link-up until then.
        const hz = 1 / (IDLE_S + 4);
        const r = await runScenario(edgeUrl, `nat30-idle-${IDLE_S}`, IDLE_S + 12, async () => {}, [
          "--probe",
          String(hz),
        ]);
        const f = r.figures;
        console.info(
          `lab nat30 idle ${IDLE_S} s: sent ${f.sent}, received ${f.received}, rtt ${f.rttMs.p50} ms, handovers ${f.handovers}`,
        );
        expect(r.exitCode, r.logs()).toBe(0);
        expect(f.sent).toBe(1);
        expect(f.received, r.logs()).toBe(1);
        // The keepalive held the mappings: no handover was needed, the message went at once.
        expect(f.handovers, r.logs()).toBe(0);
        // At once: a dead mapping would have cost an ICE restart (seconds), not a lab round trip.
        expect(f.rttMs.p50 ?? Number.POSITIVE_INFINITY).toBeLessThan(1_000);
        const froms = heard.seen.filter((l) => l.port === 4011).map((l) => l.from);
        expect(froms.length).toBe(2);
        expect(froms[0]).not.toBe(froms[1]); // the NAT forgot the silent flow's mapping
      } finally {
        await stopChild(sender);
        await stopChild(listener);
        for (const nat of NATS)
          execIn(nat, "sysctl", [
            "-qw",
            "net.netfilter.nf_conntrack_udp_timeout=30",
            "net.netfilter.nf_conntrack_udp_timeout_stream=120",
          ]);
      }
    },
    240_000 + IDLE_S * 1000,
  );

  it("idle 35 s, then a silent blackhole, then one send: it is delivered and echoed within seconds", async () => {
    // A starts 1.5 s after B; its one probe goes 35 s after it joined (~0.5 s). The blackhole
    // comes ~1 s before that, so that the send (not a keepalive) is what finds the path dead.
    const t0 = Date.now();
    const r = await runScenario(
      edgeUrl,
      "idle-blackhole-send",
      45,
      async () => {
        await sleep(Math.max(0, t0 + 35_500 - Date.now()));
        fault.wifiBlackhole(true);
      },
      ["--probe", String(1 / 35), "--manage-routes"],
    );
    const f = r.figures;
    console.info(
      `lab idle-blackhole-send: sent ${f.sent}, received ${f.received}, send to echo ${f.rttMs.p50} ms, handovers ${f.handovers}`,
    );
    expect(r.exitCode, r.logs()).toBe(0);
    expect(f.sent).toBe(1);
    expect(f.received, r.logs()).toBe(1);
    // The premise: the blackhole moved the link.
    expect(f.handovers, r.logs()).toBeGreaterThanOrEqual(1);
    // The send found the dead path: detection by the next keepalive (up to 20 s away) and its
    // timeout would take far longer than this. Round trip, so the one-way delivery took less.
    expect(f.rttMs.p50 ?? Number.POSITIVE_INFINITY, r.logs()).toBeLessThan(5_000);
  }, 180_000);
});
