/** Logs: pino JSON lines on stderr; human-readable (pino-pretty) when stderr is a terminal. */
import pino, { type Logger } from "pino";
import pretty from "pino-pretty";

export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(level: LogLevel, name = "roverlink"): Logger {
  const opts = { level, name, redact: ["token", "*.token", "authorization", "*.authorization"] };
  if (process.stderr.isTTY) {
    return pino(
      opts,
      pretty({ destination: 2, colorize: true, ignore: "pid,hostname", sync: true }),
    );
  }
  return pino(opts, pino.destination({ dest: 2, sync: true }));
}
