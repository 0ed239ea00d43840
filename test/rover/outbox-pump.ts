/**
 * Two durable control-stream ends (each its own SQLite outbox) joined by an in-memory wire, with
 * the application's view kept in the same databases: what the sending application counts as sent
 * (written with the send) and what the receiving one got (written with the hand-off). Run in a
 * child process that kills itself at a crash point, then again to completion.
 */
import { join } from "node:path";
import { Outbox } from "../../rover/outbox.ts";
import { type DataFrame, ReliableReceiver, ReliableSender } from "../../shared/link/reliable.ts";

export type CrashPoint = { side: "sender" | "receiver"; when: "before" | "after"; batch: number };

function crashAt(point: CrashPoint | undefined, side: string, when: string): () => void {
  let n = 0;
  return () => {
    if (point?.side === side && point.when === when && ++n === point.batch)
      process.kill(process.pid, "SIGKILL");
  };
}

/** Sends messages m0..m<total-1> (resuming where the sending application stopped) until all arrived. */
export async function pump(dir: string, total: number, crash?: CrashPoint): Promise<void> {
  const sOut = new Outbox(join(dir, "sender.sqlite"), {
    faults: {
      beforeCommit: crashAt(crash, "sender", "before"),
      afterCommit: crashAt(crash, "sender", "after"),
    },
  });
  const rOut = new Outbox(join(dir, "receiver.sqlite"), {
    faults: {
      beforeCommit: crashAt(crash, "receiver", "before"),
      afterCommit: crashAt(crash, "receiver", "after"),
    },
  });
  // The payload carries this process's tag: a message sent by a process that then died before
  // its commit differs from the one its successor sends under the same number, so the receiver
  // holding the dead process's version shows (it was never accepted).
  sOut.db.exec("CREATE TABLE IF NOT EXISTS app_sent (i INTEGER PRIMARY KEY, p TEXT)");
  rOut.db.exec("CREATE TABLE IF NOT EXISTS app_got (k INTEGER PRIMARY KEY AUTOINCREMENT, m TEXT)");
  const sender = new ReliableSender({ store: sOut.senderStore("r") });
  const receiver = new ReliableReceiver({}, rOut.receiverStore("s"));
  const wire: DataFrame[] = [];
  sender.onDurable((frames) => wire.push(...frames));
  // (Re)connect: the receiver says where it is, the sender resends from there.
  wire.push(...sender.resendFrom(receiver.hello().n));
  const sent = sOut.db.prepare("INSERT INTO app_sent (i, p) VALUES (?, ?)");
  const tag = `${process.pid}.${Date.now() % 100_000}`;
  const got = rOut.db.prepare("INSERT INTO app_got (m) VALUES (?)");
  const last = sOut.db.prepare("SELECT max(i) AS i FROM app_sent").get() as { i: number | null };
  let i = (last.i ?? -1) + 1;
  while (i < total || sender.backlog().messages > 0) {
    for (let k = 0; k < 7 && i < total; k++, i++) {
      const n = i;
      // The application's record of what it sent commits with the message itself.
      const payload = `m${n}@${tag}`;
      sOut.write(() => {
        sender.send(payload);
        sent.run(n, payload);
      });
    }
    await new Promise((r) => setImmediate(r));
    for (const f of wire.splice(0, 5))
      for (const p of receiver.onData(f)) rOut.write(() => got.run(String(p)));
    await new Promise((r) => setImmediate(r));
    sender.onAck(receiver.ack().n);
    if (wire.length === 0 && sender.backlog().messages > 0 && i >= total)
      wire.push(...sender.resendFrom(receiver.hello().n));
  }
  sOut.close();
  rOut.close();
}

if (process.argv[1]?.endsWith("outbox-pump.ts")) {
  const [dir, total, crash] = process.argv.slice(2);
  const point = crash ? (JSON.parse(crash) as CrashPoint) : undefined;
  await pump(dir as string, Number(total), point);
}
