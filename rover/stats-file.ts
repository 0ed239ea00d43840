/** `--stats-json`: checked before the agent joins (a bad path is one line, nobody saw us), written at the end. */
import { existsSync, statSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { errnoText } from "./errno.ts";
import { checkFileWritable } from "./write-check.ts";

/** Why the figures could not be written to `file`, as the one line the CLI prints; or null. */
export function statsFileProblem(file: string): string | null {
  const path = resolve(file);
  try {
    if (existsSync(path) && statSync(path).isDirectory())
      return `--stats-json: ${file} is a directory`;
    checkFileWritable(path);
    return null;
  } catch (e) {
    return `--stats-json: cannot write ${file}: ${errnoText(e)}`;
  }
}

/** Write the figures; a failure says which option it was about. */
export function writeStatsFile(file: string, figures: object, pretty = true): void {
  try {
    writeFileSync(file, `${pretty ? JSON.stringify(figures, null, 2) : JSON.stringify(figures)}\n`);
  } catch (e) {
    throw new Error(`--stats-json: cannot write ${file}: ${errnoText(e)}`);
  }
}
