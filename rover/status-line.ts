/** A one-line live status (peers, path, RTT, loss), rewritten in place on a terminal. */
import type { LinkStats, OutboxStats } from "./agent.ts";

export function formatStatus(id: string, links: readonly LinkStats[], extra = ""): string {
  if (links.length === 0) return `${id}: no links yet${extra ? ` · ${extra}` : ""}`;
  const parts = links.map((l) => {
    const rtt = l.rttMs === null ? "–" : `${l.rttMs.toFixed(1)} ms${rttAge(l.rttAgeMs)}`;
    const loss = l.lossPct === null ? "–" : `${l.lossPct.toFixed(0)}%`;
    return `${l.peer} ${l.state} ${l.path} rtt ${rtt} loss ${loss}${l.restarts + l.rebuilds > 0 ? ` handovers ${l.restarts + l.rebuilds}` : ""}`;
  });
  return `${id}: ${parts.join(" | ")}${extra ? ` · ${extra}` : ""}`;
}

/** An RTT measured a while ago says so (an idle link's answering end measures none). */
const RTT_FRESH_MS = 10_000;

function rttAge(ms: number | null): string {
  if (ms === null || ms < RTT_FRESH_MS) return "";
  const s = Math.round(ms / 1000);
  return s < 120 ? ` (${s} s ago)` : ` (${Math.round(s / 60)} min ago)`;
}

/** Unacknowledged `control` messages in all, and the age of the oldest; "" when none wait. */
export function formatOutbox(outboxes: readonly OutboxStats[]): string {
  const n = outboxes.reduce((a, o) => a + o.messages, 0);
  if (n === 0) return "";
  const age = Math.max(...outboxes.map((o) => o.oldestAgeMs ?? 0));
  return `outbox ${n} (oldest ${(age / 1000).toFixed(age < 10_000 ? 1 : 0)} s)`;
}

export class StatusLine {
  #stream: NodeJS.WriteStream;
  #tty: boolean;
  #last = 0;
  constructor(stream: NodeJS.WriteStream = process.stderr) {
    this.#stream = stream;
    this.#tty = Boolean(stream.isTTY);
  }
  get enabled(): boolean {
    return this.#tty;
  }
  show(line: string): void {
    if (!this.#tty) return;
    // Never wider than the terminal (a wrapped line cannot be rewritten); 0 = size unknown.
    const cols = this.#stream.columns || 0;
    this.#stream.write(`\r\x1b[2K${cols > 1 ? line.slice(0, cols - 1) : line}`);
    this.#last = Date.now();
  }
  clear(): void {
    if (this.#tty && this.#last) this.#stream.write("\r\x1b[2K");
  }
}
