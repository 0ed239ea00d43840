/**
 * `control` messages the message socket holds while no client is attached (rover/socket.ts).
 * With a durable outbox (`--state-dir`) they are rows of its database, written in the same
 * transaction as the receiver's delivered mark (the agent's `message` handler runs inside it):
 * the sender forgets a message only once it is kept here, so an agent stopped or killed before a
 * client came loses none. In memory otherwise, as before.
 */
import type { StatementSync } from "node:sqlite";
import type { Payload } from "../shared/link/reliable.ts";
import type { AgentMessage } from "./agent.ts";
import type { Outbox } from "./outbox.ts";

const SCHEMA = `CREATE TABLE IF NOT EXISTS socket_held (
  n INTEGER PRIMARY KEY AUTOINCREMENT,
  peer TEXT NOT NULL,
  channel TEXT NOT NULL,
  text TEXT,
  bytes BLOB
)`;

interface Held {
  m: AgentMessage;
  size: number;
  /** Its row when durable. */
  row?: number;
}

export interface HoldLimits {
  messages: number;
  bytes: number;
}

function sizeOf(data: Payload): number {
  return typeof data === "string" ? Buffer.byteLength(data) : data.byteLength;
}

export class SocketHold {
  #held: Held[] = [];
  #bytes = 0;
  #limits: HoldLimits;
  #outbox: Outbox | null = null;
  #q: { insert: StatementSync; removeUpTo: StatementSync } | null = null;

  constructor(limits: HoldLimits) {
    this.#limits = limits;
  }

  get size(): number {
    return this.#held.length;
  }

  /**
   * Use `outbox` from now on (once; the agent opens it when it starts). Rows an earlier process
   * kept come first, before anything held in memory meanwhile.
   */
  attach(outbox: Outbox): void {
    if (this.#outbox) return;
    this.#outbox = outbox;
    const db = outbox.db;
    outbox.write(() => db.exec(SCHEMA));
    this.#q = {
      insert: db.prepare(
        "INSERT INTO socket_held (peer, channel, text, bytes) VALUES (?, ?, ?, ?)",
      ),
      removeUpTo: db.prepare("DELETE FROM socket_held WHERE n <= ?"),
    };
    const kept: Held[] = [];
    const rows = db
      .prepare("SELECT n, peer, channel, text, bytes FROM socket_held ORDER BY n")
      .all() as {
      n: number;
      peer: string;
      channel: string;
      text: string | null;
      bytes: Uint8Array | null;
    }[];
    for (const r of rows) {
      const data: Payload = r.text ?? new Uint8Array(r.bytes ?? new Uint8Array(0));
      kept.push({ m: { peer: r.peer, channel: r.channel, data }, size: sizeOf(data), row: r.n });
    }
    // What arrived in memory before the outbox was open is kept as rows too, after the old ones.
    const mem = this.#held;
    this.#held = kept;
    this.#bytes = kept.reduce((n, h) => n + h.size, 0);
    for (const h of mem) this.#keep(h.m);
  }

  /** Hold `m`; returns how many of the oldest went to stay within the limits. */
  hold(m: AgentMessage): number {
    this.#keep(m);
    let dropped = 0;
    let lastRow: number | undefined;
    while (
      this.#held.length > this.#limits.messages ||
      (this.#bytes > this.#limits.bytes && this.#held.length > 1)
    ) {
      const old = this.#held.shift();
      if (!old) break;
      this.#bytes -= old.size;
      if (old.row !== undefined) lastRow = old.row;
      dropped++;
    }
    if (lastRow !== undefined) this.#removeUpTo(lastRow);
    return dropped;
  }

  /** Everything held, oldest first; gone from here (and from disk) once taken. */
  take(): AgentMessage[] {
    const all = this.#held.splice(0);
    this.#bytes = 0;
    const last = all.at(-1)?.row;
    if (last !== undefined) this.#removeUpTo(last);
    return all.map((h) => h.m);
  }

  #keep(m: AgentMessage): void {
    const h: Held = { m, size: sizeOf(m.data) };
    const q = this.#q;
    const ob = this.#outbox;
    if (q && ob) {
      const text = typeof m.data === "string" ? m.data : null;
      const bytes = typeof m.data === "string" ? null : m.data;
      // Inside the agent's message handler this joins the batch of its delivered mark; a write
      // that fails throws OutboxError there, and the message is not acknowledged.
      h.row = Number(ob.write(() => q.insert.run(m.peer, m.channel, text, bytes)).lastInsertRowid);
    }
    this.#held.push(h);
    this.#bytes += h.size;
  }

  #removeUpTo(row: number): void {
    const q = this.#q;
    const ob = this.#outbox;
    if (!q || !ob) return;
    try {
      ob.write(() => q.removeUpTo.run(row));
    } catch {
      // Reported by the outbox (onFault); the rows go again to the next client after a restart.
    }
  }
}
