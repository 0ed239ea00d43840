import { describe, expect, it } from "vitest";
import type { LinkStats } from "../../rover/agent.ts";
import { formatOutbox, formatStatus } from "../../rover/status-line.ts";

const link = (o: Partial<LinkStats>): LinkStats => ({
  peer: "bravo",
  state: "up",
  path: "direct",
  rttMs: 2.46,
  rttAgeMs: 400,
  lossPct: 0,
  restarts: 0,
  rebuilds: 0,
  backlog: 0,
  videoTargetBps: null,
  videoPacketsSent: null,
  ...o,
});

describe("status line", () => {
  it("shows each link's peer, state, path, RTT and loss on one line", () => {
    const line = formatStatus("alpha", [
      link({}),
      link({
        peer: "charlie",
        path: "relay",
        rttMs: null,
        lossPct: 12.4,
        restarts: 1,
        rebuilds: 1,
      }),
    ]);
    expect(line).toBe(
      "alpha: bravo up direct rtt 2.5 ms loss 0% | charlie up relay rtt – loss 12% handovers 2",
    );
    expect(line).not.toContain("\n");
  });

  it("says how old an RTT is once it is no longer fresh (an idle answering end measures none)", () => {
    expect(formatStatus("bravo", [link({ peer: "alpha", rttAgeMs: 9_000 })])).toBe(
      "bravo: alpha up direct rtt 2.5 ms loss 0%",
    );
    expect(formatStatus("bravo", [link({ peer: "alpha", rttAgeMs: 45_200 })])).toBe(
      "bravo: alpha up direct rtt 2.5 ms (45 s ago) loss 0%",
    );
    expect(formatStatus("bravo", [link({ peer: "alpha", rttAgeMs: 600_000 })])).toContain(
      "rtt 2.5 ms (10 min ago)",
    );
  });

  it("says when there is no link yet, with the extra figures", () => {
    expect(formatStatus("alpha", [], "probes 0/0")).toBe("alpha: no links yet · probes 0/0");
  });
});

describe("outbox on the status line", () => {
  const box = (messages: number, oldestAgeMs: number | null) => ({
    peer: "bravo",
    messages,
    bytes: messages * 10,
    oldestAgeMs,
    expired: 0,
    rejected: 0,
  });
  it("shows what waits for an acknowledgement in all and the oldest age; nothing when empty", () => {
    expect(formatOutbox([box(0, null)])).toBe("");
    expect(formatOutbox([box(3, 1_250), { ...box(40, 61_000), peer: "charlie" }])).toBe(
      "outbox 43 (oldest 61 s)",
    );
    expect(formatOutbox([box(1, 2_340)])).toBe("outbox 1 (oldest 2.3 s)");
  });
});
