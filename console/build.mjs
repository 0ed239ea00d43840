#!/usr/bin/env node
// Builds the console into console/dist (the Worker's static assets, wrangler.toml [assets]).
// wrangler runs this before `dev` and `deploy` ([build] command) because wrangler refuses to
// start when the assets directory is missing. With --if-stale it returns at once when dist was
// built from the same sources (by content), so parallel `wrangler dev` runs in tests cost a
// few file reads.
// Plain .mjs (not .ts) so that it runs on whatever `node` wrangler finds on PATH.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..");
const dist = join(here, "dist");
const stamp = join(dist, ".built");
const lock = join(here, ".build-lock");
const ifStale = process.argv.includes("--if-stale");

/** Every file under `path` (a file or a directory), sorted. */
function files(path) {
  if (!existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .sort()
    .flatMap((name) => files(join(path, name)));
}

/**
 * A digest of what the build reads: the console's sources, the shared code it bundles and the
 * lock file (a dependency bump). By content, not modification time: a copy that keeps old
 * timestamps, or a checkout older than the last build, must not ship a stale console.
 */
function sourcesDigest() {
  const h = createHash("sha256");
  for (const f of [
    ...files(join(here, "src")),
    ...files(join(here, "public")),
    join(here, "index.html"),
    join(here, "vite.config.ts"),
    ...files(join(repo, "shared")),
    join(repo, "package-lock.json"),
  ]) {
    h.update(relative(repo, f));
    h.update("\0");
    if (existsSync(f)) h.update(readFileSync(f));
    h.update("\0");
  }
  return h.digest("hex");
}

function fresh(digest) {
  return existsSync(stamp) && readFileSync(stamp, "utf8").trim() === digest;
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

const digest = sourcesDigest();
if (ifStale && fresh(digest)) process.exit(0);

// One build at a time (several `wrangler dev` may start together); a lock older than a minute
// is from a crashed build.
for (;;) {
  try {
    mkdirSync(lock);
    break;
  } catch {
    if (Date.now() - statSync(lock, { throwIfNoEntry: false })?.mtimeMs > 60_000) {
      rmSync(lock, { recursive: true, force: true });
      continue;
    }
    sleep(200);
  }
}
let code = 0;
try {
  if (!(ifStale && fresh(digest))) {
    const tmp = join(here, `.dist-tmp-${process.pid}`);
    const vite = join(repo, "node_modules", "vite", "bin", "vite.js");
    const r = spawnSync(
      process.execPath,
      [vite, "build", "--config", join(here, "vite.config.ts"), "--logLevel", "warn"],
      {
        stdio: ["ignore", "inherit", "inherit"],
        env: { ...process.env, CONSOLE_OUT_DIR: tmp },
      },
    );
    if (r.status !== 0) {
      rmSync(tmp, { recursive: true, force: true });
      console.error("console build failed");
      code = 1;
    } else {
      writeFileSync(join(tmp, ".built"), `${digest}\n`);
      writeFileSync(join(tmp, ".assetsignore"), ".built\n.assetsignore\n");
      // Swap in the new build; the old one disappears only after the new one is in place.
      const old = join(here, `.dist-old-${process.pid}`);
      if (existsSync(dist)) renameSync(dist, old);
      renameSync(tmp, dist);
      rmSync(old, { recursive: true, force: true });
    }
  }
} finally {
  rmSync(lock, { recursive: true, force: true });
}
process.exit(code);
