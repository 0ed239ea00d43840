/**
 * The CLI's first check: a Node too old for it (a systemd unit's `node` is often the distribution's
 * 18 or 20) gets one line and exit 1, not a stack trace from a missing export or a `.ts` file.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { MIN_NODE, MIN_NODE_SOURCES, nodeTooOld } from "../../bin/node-version.js";
import { REPO_ROOT } from "../../rover/local-edge.ts";

describe("node version check", () => {
  it("names the Node needed, for the package and for a checkout", () => {
    expect(nodeTooOld("20.20.2", false)).toBe("needs Node.js 22.13 or later; this is 20.20.2");
    expect(nodeTooOld("22.12.0", false)).toMatch(/^needs Node.js 22.13/);
    expect(nodeTooOld("22.13.0", false)).toBeNull();
    expect(nodeTooOld("22.17.1", true)).toBe(
      "needs Node.js 22.18 or later to run from a checkout (npm install brings it: npx roverlink); this is 22.17.1",
    );
    expect(nodeTooOld("22.18.0", true)).toBeNull();
    expect(nodeTooOld("24.0.0", true)).toBeNull();
    expect(nodeTooOld("23.0.0", false)).toBeNull();
    // The package's own claim says the same.
    const { engines } = JSON.parse(
      spawnSync(process.execPath, ["-p", "JSON.stringify(require('./package.json'))"], {
        cwd: REPO_ROOT,
        encoding: "utf8",
      }).stdout,
    ) as { engines: { node: string } };
    expect(engines.node).toBe(`>=${MIN_NODE.join(".")}`);
    expect(MIN_NODE_SOURCES[0]).toBe(22);
  });

  it("an old Node on this machine gets the line, not a stack trace", () => {
    // The machine's own Node outside node_modules (Debian's is 20 here), else ours (a machine
    // with only nvm's): where it is new enough, the check must let the CLI run instead.
    const system =
      ["/usr/bin/node", "/usr/local/bin/node"].find((p) => existsSync(p)) ?? process.execPath;
    const version = spawnSync(system, ["-p", "process.versions.node"], {
      encoding: "utf8",
    }).stdout.trim();
    const r = spawnSync(system, [join(REPO_ROOT, "bin/roverlink.js"), "--version"], {
      encoding: "utf8",
    });
    const why = nodeTooOld(version, true);
    if (why) {
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(`roverlink: ${why} (${system})\n`);
    } else {
      expect(r.status).toBe(0);
      expect(r.stderr).toBe("");
    }
  });
});
