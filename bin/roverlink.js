#!/usr/bin/env node
// `roverlink`: the installed package runs the compiled CLI (dist/, built by `npm pack`); a clone
// of the repository, which has no build step, runs its TypeScript sources (Node >= 22.18 strips
// the types), so `npx roverlink` there is never a stale build.
import { existsSync } from "node:fs";
import { nodeTooOld } from "./node-version.js";

const sources = new URL("../rover/cli.ts", import.meta.url);
const fromSources = existsSync(sources);
const tooOld = nodeTooOld(process.versions.node, fromSources);
if (tooOld) {
  process.stderr.write(`roverlink: ${tooOld} (${process.execPath})\n`);
  process.exit(1);
}
await import(fromSources ? sources.href : "../dist/rover/cli.js");
