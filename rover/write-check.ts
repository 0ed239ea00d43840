/**
 * Whether a path can be written, found by writing: `access(W_OK)` answers yes to root for
 * anything on a writable-looking mount (/proc, a read-only bind's parent), and the failure then
 * came at the end, after the rover had joined and run. Throws the errno error.
 */
import { closeSync, existsSync, openSync, unlinkSync } from "node:fs";
import { join } from "node:path";

/** A file: an existing one opened for writing (not truncated), a new one made and removed. */
export function checkFileWritable(path: string): void {
  if (existsSync(path)) {
    closeSync(openSync(path, "r+"));
    return;
  }
  closeSync(openSync(path, "wx"));
  unlinkSync(path);
}

/** A directory: a hidden file made in it and removed. */
export function checkDirWritable(dir: string): void {
  checkFileWritable(join(dir, `.roverlink-write-check-${process.pid}-${Date.now()}`));
}
