/** Where this package is and which version it is: package.json, found from this file up. */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function packageRoot(from: string): string {
  for (let d = dirname(from); ; d = dirname(d)) {
    if (existsSync(join(d, "package.json"))) return d;
    if (dirname(d) === d) return dirname(from);
  }
}

/**
 * Where package.json is: the repository's root (sources in rover/) or, for the installed package,
 * its directory (compiled code in dist/rover/).
 */
export const REPO_ROOT = packageRoot(dirname(fileURLToPath(import.meta.url)));

export const VERSION = (
  JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string }
).version;
