// `--manage-routes` installs source rules (rover/uplinks.ts) with the real `ip`, in a throwaway
// network namespace of its own (`unshare -n`, root): so it is in the lab project.
import { execFileSync } from "node:child_process";
import { expect, it } from "vitest";
import { labUnavailableReason, REPO_ROOT } from "./lab.ts";

const unavailable = labUnavailableReason();

it.skipIf(unavailable !== undefined)(
  `--manage-routes routes each uplink by source where the system does not, leaves the main table alone, and removes only its own rules${unavailable ? ` [NOT RUN: ${unavailable}]` : ""}`,
  () => {
    const out = execFileSync("unshare", ["-n", process.execPath, "test/lab/source-rules.ts"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      timeout: 20_000,
    });
    const r = JSON.parse(out.trim().split("\n").at(-1) ?? "{}") as {
      installed: string[];
      cellTable: string;
      boundCell: string;
      sourceRouted: boolean;
      demoted: string | null;
      mainUnchanged: boolean;
      afterClose: string[];
      logs: string[];
    };
    // The system's rule for wifi is kept as it is; cell gets one of ours (preference 5207).
    expect(r.installed).toHaveLength(2);
    expect(r.installed).toContain("192.168.77.2 10 100");
    expect(r.installed.find((x) => x.startsWith("100.64.77.2 "))).toMatch(/ 5207$/);
    expect(r.cellTable).toContain("default via 100.64.77.1 dev cell");
    expect(r.boundCell).toContain("via 100.64.77.1 dev cell");
    expect(r.logs).toContain("source rule installed");
    // Every uplink routed by source: a blackhole is escaped by a backup path, no demotion.
    expect(r.sourceRouted).toBe(true);
    expect(r.demoted).toBeNull();
    expect(r.mainUnchanged).toBe(true);
    // Stopping removes our rule only.
    expect(r.afterClose).toEqual(["192.168.77.2 10 100"]);
  },
);
