// NetWatch on netlink events (rover/netwatch.ts): a change is seen at once, not at the next poll
// (the safety poll is every 30 s). Runs in a throwaway network namespace of its own (`unshare -n`,
// root), so it is in the lab project.
import { execFileSync } from "node:child_process";
import { expect, it } from "vitest";
import { labUnavailableReason, REPO_ROOT } from "./lab.ts";

const unavailable = labUnavailableReason();

it.skipIf(unavailable !== undefined)(
  `an interface and address appearing are seen within 500 ms${unavailable ? ` [NOT RUN: ${unavailable}]` : ""}`,
  () => {
    const out = execFileSync("unshare", ["-n", process.execPath, "test/lab/netwatch-monitor.ts"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      timeout: 20_000,
    });
    const r = JSON.parse(out.trim().split("\n").at(-1) ?? "{}") as {
      monitored: boolean;
      ms: number | null;
    };
    expect(r.monitored).toBe(true);
    expect(r.ms).not.toBeNull();
    expect(r.ms as number).toBeLessThan(500);
  },
);
