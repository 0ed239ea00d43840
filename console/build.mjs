#!/usr/bin/env node
// Builds the console into console/dist (the Worker's static assets, wrangler.toml [assets]).
// wrangler runs this before `dev` and `deploy` ([build] command) because wrangler refuses to
// start when the assets directory is missing. With --if-stale it returns at once when dist is
// newer than every source, so parallel `wrangler dev` runs in tests cost a few stat calls.
// Plain .mjs (not .ts) so that it runs on whatever `node` wrangler finds on PATH.
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..");
const dist = join(here, "dist");
const stamp = join(dist, ".built");
const lock = join(here, ".build-lock");
const ifStale = process.argv.includes("--if-stale");

function newest(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let max = st.mtimeMs;
  for (const name of readdirSync(path)) max = Math.max(max, newest(join(path, name)));
  return max;
}

function sourcesMtime() {
  return Math.max(
    newest(join(here, "src")),
    newest(join(here, "index.html")),
    newest(join(here, "public")),
    newest(join(here, "vite.config.ts")),
    newest(join(repo, "shared")),
  );
}

function fresh() {
  return existsSync(stamp) && statSync(stamp).mtimeMs >= sourcesMtime();
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

if (ifStale && fresh()) process.exit(0);

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
  if (!(ifStale && fresh())) {
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
      writeFileSync(join(tmp, ".built"), new Date().toISOString());
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
