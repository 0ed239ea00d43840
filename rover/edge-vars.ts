/**
 * Worker variables for the local edge, handed to wrangler in an env file (`--env-file`) instead of
 * `--var NAME:VALUE`: a command line is readable by every local user (`ps`), the file is not
 * (0600 in a private 0700 directory, removed when the edge stops).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MIN_SECRET_BYTES } from "../shared/token.ts";

/** The edge refuses shorter HS256 secrets; so do we, before starting anything. */
export { MIN_SECRET_BYTES };

/** Worker secrets the local edge takes from its environment (never needed on a command line). */
export const SECRET_VARS = [
  "ROVERLINK_SECRET",
  "ROVERLINK_SECRET_PREVIOUS",
  "TURN_SECRET",
  "CF_TURN_API_TOKEN",
] as const;

/** A variable name that probably holds a credential. */
export function looksSecret(name: string): boolean {
  return /SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|(^|_)KEY$/i.test(name);
}

export class EdgeVarsError extends Error {}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * One `NAME=value` line that wrangler's dotenv parser reads back as exactly `value`. dotenv strips
 * one pair of quotes ('…' and `…` literally, "…" turning \n into a newline) and dotenv-expand then
 * expands $NAME and ${NAME} unless escaped as \$, and turns every \$ into $. So: escape each $,
 * and pick a quote the value does not contain.
 */
export function envFileLine(name: string, value: string): string {
  if (!NAME.test(name))
    throw new EdgeVarsError(`worker variable name "${name}" must match [A-Za-z_][A-Za-z0-9_]*`);
  if (/[\r\n\0]/.test(value))
    throw new EdgeVarsError(`worker variable ${name} must not contain a line break`);
  const escaped = value.replaceAll("$", "\\$");
  if (!value.includes("'")) return `${name}='${escaped}'`;
  if (!value.includes("`")) return `${name}=\`${escaped}\``;
  if (!value.includes('"') && !/\\[nr]/.test(value)) return `${name}="${escaped}"`;
  throw new EdgeVarsError(
    `worker variable ${name} holds ' and \` and also " or \\n: wrangler's env file cannot hold it`,
  );
}

export interface VarsFile {
  path: string;
  /** Remove the file and its directory (idempotent, synchronous: also runs on process exit). */
  remove(): void;
}

export function writeVarsFile(vars: Record<string, string>): VarsFile {
  const text = Object.entries(vars)
    .map(([k, v]) => `${envFileLine(k, v)}\n`)
    .join("");
  const dir = mkdtempSync(join(tmpdir(), "roverlink-vars-")); // 0700
  const path = join(dir, "worker.env");
  const remove = () => rmSync(dir, { recursive: true, force: true });
  try {
    writeFileSync(path, text, { mode: 0o600, flag: "wx" });
  } catch (e) {
    remove();
    throw e;
  }
  return { path, remove };
}
