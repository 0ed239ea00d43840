/**
 * makeDirs: `mkdir -p` that ends with an error where Node's recursive mkdir spins forever (under
 * /proc, through a dangling symlink). Each case that hung runs in a child process, so a
 * regression fails the test on a timeout instead of freezing the test runner.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { makeDirs } from "../../rover/make-dirs.ts";

/** makeDirs(dir) in a fresh Node, killed after 10 s: its error code, or "ok", or "hung". */
function inChild(dir: string): string {
  const code = `import { makeDirs } from ${JSON.stringify(join(process.cwd(), "rover", "make-dirs.ts"))};
try { makeDirs(${JSON.stringify(dir)}, 0o700); console.log("ok"); }
catch (e) { console.log(e.code ?? String(e)); }`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", code], {
    timeout: 10_000,
    encoding: "utf8",
  });
  if (r.error || r.signal) return "hung";
  return r.stdout.trim();
}

describe("makeDirs", () => {
  it("makes every missing level with the mode asked, and takes what exists", () => {
    const root = mkdtempSync(join(tmpdir(), "make-dirs-"));
    const deep = join(root, "a", "b", "c");
    makeDirs(deep, 0o700);
    expect(statSync(deep).isDirectory()).toBe(true);
    expect(statSync(join(root, "a")).mode & 0o777).toBe(0o700);
    makeDirs(deep, 0o700); // again: nothing to do
    makeDirs(root);
  });

  it("a file in the way is ENOTDIR", () => {
    const root = mkdtempSync(join(tmpdir(), "make-dirs-"));
    writeFileSync(join(root, "f"), "x");
    expect(() => makeDirs(join(root, "f", "sub"))).toThrow(
      expect.objectContaining({ code: "ENOTDIR" }),
    );
  });

  it("under /proc and through a dangling symlink: an error at once, where recursive mkdir spins", () => {
    expect(existsSync("/proc/self")).toBe(true); // the premise: a procfs to try it on
    expect(inChild("/proc/roverlink-no-such/outbox")).toBe("ENOENT");
    const root = mkdtempSync(join(tmpdir(), "make-dirs-"));
    symlinkSync(join(root, "gone"), join(root, "link"));
    expect(inChild(join(root, "link", "sub"))).toMatch(/^(ENOENT|EEXIST)$/);
  });
});
