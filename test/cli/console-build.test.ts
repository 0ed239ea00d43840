/**
 * console/build.mjs --if-stale (what wrangler runs before dev and deploy): it rebuilds when what
 * the build reads changed in content, and only then. By modification time before, a copy that
 * kept old timestamps (or a checkout older than the last build) could deploy a stale console.
 * Runs on a copy of console/ and shared/ in a temporary directory: the repository's dist is the
 * browser tests'.
 */
import { spawnSync } from "node:child_process";
import {
  appendFileSync,
  cpSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { REPO_ROOT } from "../../rover/version.ts";

const root = mkdtempSync(join(tmpdir(), "roverlink-console-build-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function build(): { code: number | null; builtAt: number } {
  const r = spawnSync(process.execPath, [join(root, "console", "build.mjs"), "--if-stale"], {
    encoding: "utf8",
  });
  expect(r.stderr).toBe("");
  return { code: r.status, builtAt: statSync(join(root, "console", "dist", ".built")).mtimeMs };
}

it("rebuilds the console when a source's content changes, not when only its time does", () => {
  cpSync(join(REPO_ROOT, "console"), join(root, "console"), {
    recursive: true,
    filter: (src) => !/[/\\](dist|\.dist-[^/\\]*|\.build-lock)$/.test(src),
  });
  cpSync(join(REPO_ROOT, "shared"), join(root, "shared"), { recursive: true });
  for (const f of ["package-lock.json", "package.json", "tsconfig.json"])
    cpSync(join(REPO_ROOT, f), join(root, f));
  symlinkSync(join(REPO_ROOT, "node_modules"), join(root, "node_modules"));

  const first = build();
  expect(first.code).toBe(0);
  // Nothing changed: no build.
  expect(build().builtAt).toBe(first.builtAt);
  // A source touched into the future (a copy, a checkout) with the same content: no build.
  const src = join(root, "console", "src", "dom.ts");
  const later = new Date(Date.now() + 3_600_000);
  utimesSync(src, later, later);
  expect(build().builtAt).toBe(first.builtAt);
  // Shared code the console bundles, changed with an old timestamp: built again.
  const shared = join(root, "shared", "protocol.ts");
  const { mtime } = statSync(shared);
  appendFileSync(shared, "\n// changed\n");
  utimesSync(shared, mtime, mtime);
  const again = build();
  expect(again.code).toBe(0);
  expect(again.builtAt).toBeGreaterThan(first.builtAt);
  expect(readFileSync(join(root, "console", "dist", "index.html"), "utf8")).toContain(
    "roverlink console",
  );
}, 120_000);
