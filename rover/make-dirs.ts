/**
 * `mkdir -p` that always ends. Node's `mkdirSync(dir, { recursive: true })` loops forever in C++
 * (100 % CPU, signals never handled) when a directory reports ENOENT for a child while the parent
 * exists: any path under /proc or /sys, a dangling symlink, a stale mount. A rover given such a
 * --state-dir froze instead of exiting with one line. Here each level is one mkdir, so a failure
 * is an error with its code.
 */
import { mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";

export function makeDirs(dir: string, mode = 0o777): void {
  const target = resolve(dir);
  // The levels to make, deepest last: up to the first one that exists.
  const missing: string[] = [];
  for (let d = target; ; d = dirname(d)) {
    let isDir: boolean | null = null;
    try {
      isDir = statSync(d).isDirectory();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    if (isDir === true) break;
    if (isDir === false) throw errno("ENOTDIR", d);
    missing.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of missing) {
    try {
      mkdirSync(d, { mode });
    } catch (e) {
      // Another process made it meanwhile: fine, if it is a directory.
      if ((e as NodeJS.ErrnoException).code !== "EEXIST" || !statSync(d).isDirectory()) throw e;
    }
  }
}

function errno(code: string, path: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(`${code}: not a directory, mkdir '${path}'`);
  e.code = code;
  e.path = path;
  return e;
}
