/**
 * docs/curl.md, run as written: every ```sh block in order, in one bash, against a local edge.
 * What the commands print must match the `# → ` lines of the page.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalEdge, REPO_ROOT, startLocalEdge } from "../../rover/local-edge.ts";

const SECRET = "curl-walkthrough-secret-curl-walkthrough";
let edge: LocalEdge;

beforeAll(async () => {
  edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET } });
});
afterAll(async () => {
  await edge?.stop();
});

describe("docs/curl.md", () => {
  it("runs as written and prints what it says", () => {
    const page = readFileSync(join(REPO_ROOT, "docs", "curl.md"), "utf8");
    const blocks = [...page.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] as string);
    expect(blocks.length).toBeGreaterThan(5);
    const script = blocks.join("\n");
    const expected = [...script.matchAll(/^# → (.*)$/gm)].map((m) => m[1]);
    const bin = join(REPO_ROOT, "node_modules", ".bin");
    const r = spawnSync("bash", ["-euo", "pipefail", "-c", script], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      timeout: 90_000,
      env: {
        ...process.env,
        PATH: `${bin}:${process.env.PATH}`,
        EDGE: edge.url,
        ROVERLINK_SECRET: SECRET,
      },
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual(expected);
  });
});
