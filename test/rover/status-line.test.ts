import { describe, expect, it } from "vitest";
import type { LinkStats } from "../../rover/agent.ts";
import { formatStatus } from "../../rover/status-line.ts";

const link = (o: Partial<LinkStats>): LinkStats => ({
  peer: "bravo",
  state: "up",
  path: "direct",
  rttMs: 2.46,
  lossPct: 0,
  restarts: 0,
  rebuilds: 0,
  backlog: 0,
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

  it("says when there is no link yet, with the extra figures", () => {
    expect(formatStatus("alpha", [], "probes 0/0")).toBe("alpha: no links yet · probes 0/0");
  });
});
