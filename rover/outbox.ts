/**
 * The durable outbox: `control` stream state of one agent in SQLite (node:sqlite, WAL), behind
 * the stores of shared/link/reliable.ts. Writes of one event-loop turn share one transaction
 * (batched commits): what the sender accepted in the turn becomes durable, then is transmitted;
 * what the receiver handed to the application commits with its high-water mark, and with
 * whatever the application wrote through `db` meanwhile. docs/reliability.md.
 */
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type {
  ReceiverState,
  ReceiverStore,
  SenderState,
  SenderStore,
  StoredFrame,
  StoreHooks,
} from "../shared/link/reliable.ts";
import { makeDirs } from "./make-dirs.ts";

/** The outbox could not keep a message (disk full, read-only, ...): it was not accepted. */
export class OutboxError extends Error {
  override name = "OutboxError";
}

export interface OutboxOptions {
  /**
   * "normal" (default): a commit survives the process being killed; "full": it also survives
   * the machine losing power (an fsync per commit; slower).
   */
  synchronous?: "normal" | "full";
  /** Called once when writes start failing (with the reason) and once when they work again. */
  onFault?: (err: OutboxError | null) => void;
  /** Crash points for tests: run just before and just after each COMMIT. */
  faults?: { beforeCommit?: () => void; afterCommit?: () => void };
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS sender (peer TEXT PRIMARY KEY, stream TEXT NOT NULL, acked INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
  peer TEXT NOT NULL, s INTEGER NOT NULL, p TEXT NOT NULL, b INTEGER NOT NULL,
  e INTEGER NOT NULL, at INTEGER NOT NULL, x INTEGER, PRIMARY KEY (peer, s)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS receiver (peer TEXT PRIMARY KEY, stream TEXT NOT NULL, next INTEGER NOT NULL);
`;

/** Columns added since the first schema (fragments of large messages): added to older files. */
const ADDED_COLUMNS: [string, string][] = [
  ["m", "INTEGER NOT NULL DEFAULT 0"],
  ["z", "INTEGER"],
  ["u", "INTEGER NOT NULL DEFAULT 0"],
];

function migrate(db: DatabaseSync): void {
  const have = new Set(
    (db.prepare("PRAGMA table_info(outbox)").all() as { name: string }[]).map((c) => c.name),
  );
  for (const [name, type] of ADDED_COLUMNS)
    if (!have.has(name)) db.exec(`ALTER TABLE outbox ADD COLUMN ${name} ${type}`);
}

interface Batch {
  hooks: Set<StoreHooks>;
  done: Promise<void>;
  resolve: () => void;
  reject: (e: Error) => void;
}

export class Outbox {
  readonly db: DatabaseSync;
  readonly file: string;
  #o: OutboxOptions;
  #batch: Batch | null = null;
  #fault: OutboxError | null = null;
  #closed = false;
  #q: ReturnType<typeof prepare>;

  /** Opens (creating) the outbox file; throws OutboxError with a one-line reason. */
  constructor(file: string, o: OutboxOptions = {}) {
    this.file = file;
    this.#o = o;
    try {
      if (file !== ":memory:") makeDirs(dirname(file), 0o700);
      this.db = new DatabaseSync(file);
      // One process per outbox: a second agent with the same state would corrupt the streams.
      this.db.exec("PRAGMA locking_mode = EXCLUSIVE");
      this.db.exec("PRAGMA journal_mode = WAL");
      this.db.exec(`PRAGMA synchronous = ${o.synchronous === "full" ? "FULL" : "NORMAL"}`);
      this.db.exec(SCHEMA);
      migrate(this.db);
    } catch (e) {
      // The exclusive lock held by another process: say who, not SQLite's "database is locked".
      const locked = /database is locked/i.test(reason(e));
      throw new OutboxError(
        locked
          ? `outbox ${file} is in use by another agent (same room and id, same state directory): stop it, or give this one another --id or --state-dir`
          : `outbox ${file}: ${reason(e)}`,
      );
    }
    this.#q = prepare(this.db);
  }

  /** The reason writes fail now, or null. */
  get fault(): OutboxError | null {
    return this.#fault;
  }

  /** True when there is kept state for `peer` (a stream to resume). */
  knows(peer: string): boolean {
    return this.#q.known.get(peer, peer) !== undefined;
  }

  /**
   * Run `fn` inside the current batch's transaction (opened if none): the application's own
   * writes to `db` then commit together with the outbox's. Throws OutboxError if the write
   * fails (the whole batch is then rolled back and its owners told).
   */
  write<T>(fn: () => T, hooks?: StoreHooks): T {
    if (this.#closed) throw new OutboxError("outbox closed");
    let b: Batch | null = null;
    try {
      b = this.#open();
      if (hooks) b.hooks.add(hooks);
      return fn();
    } catch (e) {
      if (e instanceof OutboxError) throw e; // a nested write: already handled
      const err = new OutboxError(`outbox write failed: ${reason(e)}`);
      if (b) this.#abort(b, err);
      else {
        this.#report(err);
        hooks?.failed(err);
      }
      throw err;
    }
  }

  /** Resolves when everything written so far is durable; rejects with the batch's OutboxError. */
  committed(): Promise<void> {
    return this.#batch?.done ?? Promise.resolve();
  }

  /** Commit the open batch now (normally done at the end of the event-loop turn). */
  flush(): void {
    const b = this.#batch;
    if (!b) return;
    this.#batch = null;
    try {
      this.#o.faults?.beforeCommit?.();
      this.db.exec("COMMIT");
    } catch (e) {
      this.#abort(b, new OutboxError(`outbox commit failed: ${reason(e)}`));
      return;
    }
    this.#o.faults?.afterCommit?.();
    if (this.#fault) {
      this.#fault = null;
      this.#o.onFault?.(null);
    }
    for (const h of b.hooks) h.durable();
    b.resolve();
  }

  #open(): Batch {
    if (this.#batch) return this.#batch;
    this.db.exec("BEGIN");
    let resolve = () => {};
    let reject = (_: Error) => {};
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    done.catch(() => {}); // a batch nobody waits on must not become an unhandled rejection
    const b: Batch = { hooks: new Set(), done, resolve, reject };
    this.#batch = b;
    setImmediate(() => {
      if (this.#batch === b) this.flush();
    });
    return b;
  }

  #abort(b: Batch, err: OutboxError): void {
    if (this.#batch === b) this.#batch = null;
    try {
      if (this.db.isTransaction) this.db.exec("ROLLBACK");
    } catch {
      // SQLite may have rolled back already
    }
    this.#report(err);
    for (const h of b.hooks) h.failed(err);
    b.reject(err);
  }

  #report(err: OutboxError): void {
    if (!this.#fault) this.#o.onFault?.(err);
    this.#fault = err;
  }

  /** Run a store write that must not throw: a failure goes to the batch's hooks. */
  #quiet(fn: () => void, hooks: StoreHooks | undefined): void {
    try {
      this.write(fn, hooks);
    } catch {
      // reported through onFault and the hooks
    }
  }

  senderStore(peer: string): SenderStore {
    let hooks: StoreHooks | undefined;
    const q = this.#q;
    const load = (): SenderState | null => {
      const row = q.sender.get(peer) as { stream: string; acked: number } | undefined;
      if (!row) return null;
      const frames = q.frames.all(peer).map((r) => {
        // Bytes are kept as a BLOB; files written before binary frames hold base64 text.
        const p = r.p instanceof Uint8Array ? r.p : String(r.p);
        const f: StoredFrame = { s: Number(r.s), p, at: Number(r.at) };
        if (r.b) f.b = 1;
        if (r.e) f.e = 1;
        if (r.x !== null) f.x = Number(r.x);
        if (r.m) f.m = 1;
        if (r.z !== null) f.z = Number(r.z);
        if (r.u) f.u = 1;
        return f;
      });
      return { stream: row.stream, acked: Number(row.acked), frames };
    };
    return {
      load,
      attach: (h) => {
        hooks = h;
      },
      reset: (st) => {
        this.#quiet(() => {
          q.clear.run(peer);
          q.setSender.run(peer, st.stream, st.acked);
          for (const f of st.frames) append(f);
        }, hooks);
        return false;
      },
      append: (f) => {
        this.write(() => append(f), hooks);
        return false;
      },
      ack: (n) =>
        this.#quiet(() => {
          q.ack.run(peer, n);
          q.setAcked.run(n, peer);
        }, hooks),
    };
    function append(f: StoredFrame): void {
      q.append.run(
        peer,
        f.s,
        f.p,
        f.b ?? 0,
        f.e ?? 0,
        f.at,
        f.x ?? null,
        f.m ?? 0,
        f.z ?? null,
        f.u ?? 0,
      );
    }
  }

  receiverStore(peer: string): ReceiverStore {
    let hooks: StoreHooks | undefined;
    const q = this.#q;
    return {
      load: () => {
        const row = q.receiver.get(peer) as ReceiverState | undefined;
        return row ? { stream: row.stream, next: Number(row.next) } : null;
      },
      attach: (h) => {
        hooks = h;
      },
      delivered: (st) => {
        this.#quiet(() => q.setReceiver.run(peer, st.stream, st.next), hooks);
        return false;
      },
    };
  }

  /** Commit what is pending and close (the agent stops). */
  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
    this.db.close();
  }
}

function prepare(db: DatabaseSync) {
  const q = (sql: string) => db.prepare(sql);
  return {
    sender: q("SELECT stream, acked FROM sender WHERE peer = ?"),
    frames: q("SELECT s, p, b, e, at, x, m, z, u FROM outbox WHERE peer = ? ORDER BY s"),
    setSender: q("INSERT OR REPLACE INTO sender (peer, stream, acked) VALUES (?, ?, ?)"),
    clear: q("DELETE FROM outbox WHERE peer = ?"),
    append: q(
      "INSERT INTO outbox (peer, s, p, b, e, at, x, m, z, u) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    ),
    ack: q("DELETE FROM outbox WHERE peer = ? AND s < ?"),
    setAcked: q("UPDATE sender SET acked = ? WHERE peer = ?"),
    receiver: q("SELECT stream, next FROM receiver WHERE peer = ?"),
    setReceiver: q("INSERT OR REPLACE INTO receiver (peer, stream, next) VALUES (?, ?, ?)"),
    known: q("SELECT 1 FROM sender WHERE peer = ? UNION SELECT 1 FROM receiver WHERE peer = ?"),
  };
}

/** SQLite's message with its code, in one line. */
function reason(e: unknown): string {
  const err = e as { message?: string; errstr?: string; code?: string };
  return (err.message ?? String(e)).split("\n")[0] ?? String(e);
}
