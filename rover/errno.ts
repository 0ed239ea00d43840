/**
 * A system error in words for one-line messages: "no such file or directory (ENOENT)" rather than
 * a bare code an operator must look up.
 */
import { getSystemErrorMessage } from "node:util";

export function errnoText(e: unknown): string {
  const x = e as NodeJS.ErrnoException;
  if (typeof x?.errno === "number" && typeof x.code === "string") {
    try {
      return `${getSystemErrorMessage(x.errno)} (${x.code})`;
    } catch {
      // An errno the platform does not know: the code alone.
    }
  }
  if (typeof x?.code === "string") return x.code;
  return e instanceof Error ? e.message : String(e);
}
