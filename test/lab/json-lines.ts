// Reads a child process's stdout as JSON lines and lets a test wait for the line it needs.
import type { ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export type Line = Record<string, unknown>;

export interface JsonLines {
  /** Every line seen so far, in order. */
  readonly seen: Line[];
  /** The first line (seen or still to come) that matches; rejects after timeoutMs or when the child exits. */
  next(match: (line: Line) => boolean, timeoutMs: number, what?: string): Promise<Line>;
  /** Send one JSON line to the child's stdin. */
  send(line: Line): void;
}

export function jsonLines(child: ChildProcess, name: string): JsonLines {
  if (!child.stdout || !child.stdin) throw new Error(`${name}: stdio must be pipes`);
  const seen: Line[] = [];
  const waiters = new Set<() => void>();
  let ended = false;
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  createInterface({ input: child.stdout }).on("line", (text) => {
    try {
      seen.push(JSON.parse(text) as Line);
    } catch {
      seen.push({ type: "text", text });
    }
    for (const wake of waiters) wake();
  });
  child.on("exit", () => {
    ended = true;
    for (const wake of waiters) wake();
  });
  const stdin = child.stdin;
  return {
    seen,
    send(line) {
      stdin.write(`${JSON.stringify(line)}\n`);
    },
    next(match, timeoutMs, what = "a matching line") {
      let from = 0;
      return new Promise((resolve, reject) => {
        const done = (error?: Error, line?: Line) => {
          waiters.delete(check);
          clearTimeout(timer);
          if (error) reject(error);
          else resolve(line as Line);
        };
        const check = () => {
          for (; from < seen.length; from++) {
            const line = seen[from];
            if (line && match(line)) return done(undefined, line);
          }
          if (ended) done(new Error(`${name} exited before ${what}; stderr: ${stderr.trim()}`));
        };
        const timer = setTimeout(
          () =>
            done(
              new Error(
                `${name}: no ${what} within ${timeoutMs} ms; saw ${JSON.stringify(seen.slice(-5))}`,
              ),
            ),
          timeoutMs,
        );
        waiters.add(check);
        check();
      });
    },
  };
}

/** A rover's JSON log line (pino): its message and fields. */
export type LogLine = { msg: string; [k: string]: unknown };

/**
 * A rover's JSON log lines (stderr), parsed as they come; a line that is not JSON is its `msg`.
 * Its stdout is drained too (a full pipe would block the rover), without taking lines from
 * another reader of it.
 */
export function logLines(child: {
  stderr: NodeJS.ReadableStream | null;
  stdout?: NodeJS.ReadableStream | null;
}): LogLine[] {
  const lines: LogLine[] = [];
  let buf = "";
  child.stderr?.on("data", (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split("\n");
    buf = parts.pop() ?? "";
    for (const p of parts) {
      try {
        lines.push(JSON.parse(p) as LogLine);
      } catch {
        lines.push({ msg: p });
      }
    }
  });
  child.stdout?.on("data", () => {});
  return lines;
}
