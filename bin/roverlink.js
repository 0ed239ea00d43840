#!/usr/bin/env node
// `roverlink`: the installed package runs the compiled CLI (dist/, built by `npm pack`); a clone
// of the repository, which has no build step, runs its TypeScript sources (Node >= 22.18 strips
// the types), so `npx roverlink` there is never a stale build.
import { existsSync } from "node:fs";

const sources = new URL("../rover/cli.ts", import.meta.url);
await import(existsSync(sources) ? sources.href : "../dist/rover/cli.js");
