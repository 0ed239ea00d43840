/** Logs: pino JSON lines on stderr; human-readable (pino-pretty) when stderr is a terminal. */
import { Writable } from "node:stream";
import pino, { type Logger } from "pino";
import pretty from "pino-pretty";

export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** On a terminal each log line first wipes the live status line (rover/status-line.ts). */
const terminal = new Writable({
  write(chunk: Buffer | string, _enc, done) {
    process.stderr.write(`\r\x1b[2K${chunk}`);
    done();
  },
});

export function createLogger(level: LogLevel, name = "roverlink"): Logger {
  const opts = { level, name, redact: ["token", "*.token", "authorization", "*.authorization"] };
  if (process.stderr.isTTY) {
    return pino(opts, pretty({ destination: terminal, colorize: true, ignore: "pid,hostname" }));
  }
  return pino(opts, pino.destination({ dest: 2, sync: true }));
}
