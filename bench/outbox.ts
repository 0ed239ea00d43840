/**
 * Durable outbox throughput (no network): `node bench/outbox.ts [messages] [per turn]`. 1 KiB messages go
 * through a ReliableSender on rover/outbox.ts into SQLite, one transaction per event-loop turn,
 * and on to a ReliableReceiver on its own outbox whose high-water mark commits with the hand-off;
 * the receiver's acknowledgements free the sender's outbox. Reported: messages/s made durable at
 * the sender alone, and end to end (durable at both ends), with synchronous=NORMAL (survives a
 * killed process) and FULL (also a power cut: an fsync per commit). Prints one JSON line.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Outbox } from "../rover/outbox.ts";
import { type DataFrame, ReliableReceiver, ReliableSender } from "../shared/link/reliable.ts";

const N = Number(process.argv[2] ?? 50_000);
const PER_TURN = Number(process.argv[3] ?? 200);
const payload = "x".repeat(1024);
const turn = () => new Promise((r) => setImmediate(r));

async function run(synchronous: "normal" | "full", endToEnd: boolean): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "outbox-bench-"));
  const sOut = new Outbox(join(dir, "s.sqlite"), { synchronous });
  const rOut = endToEnd ? new Outbox(join(dir, "r.sqlite"), { synchronous }) : null;
  const s = new ReliableSender({ store: sOut.senderStore("r") });
  const r = rOut ? new ReliableReceiver({}, rOut.receiverStore("s")) : null;
  let delivered = 0;
  const wire: DataFrame[] = [];
  s.onDurable((f) => wire.push(...f));
  const t0 = performance.now();
  let sent = 0;
  while (delivered < N) {
    for (let k = 0; k < PER_TURN && sent < N; k++, sent++) s.send(payload);
    await turn(); // the sender's batch commits
    if (r) {
      for (const f of wire.splice(0)) delivered += r.onData(f).length;
      await turn(); // the receiver's batch commits
      s.onAck(r.ack().n);
    } else {
      delivered += wire.splice(0).length;
      s.onAck(s.nextSeq);
    }
  }
  await sOut.committed();
  const rate = N / ((performance.now() - t0) / 1000);
  sOut.close();
  rOut?.close();
  rmSync(dir, { recursive: true, force: true });
  return Math.round(rate);
}

const figures = {
  messages: N,
  bytesEach: 1024,
  perTurn: PER_TURN,
  senderNormal: await run("normal", false),
  endToEndNormal: await run("normal", true),
  senderFull: await run("full", false),
  endToEndFull: await run("full", true),
};
console.log(JSON.stringify(figures));
