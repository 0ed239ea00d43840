/**
 * Durable outbox throughput (no network): the `outbox` section of `npm run bench`, or alone
 * `node bench/outbox.ts [messages] [per turn]`. 1 KiB messages go
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

const payload = "x".repeat(1024);
const turn = () => new Promise((r) => setImmediate(r));

async function run(
  N: number,
  PER_TURN: number,
  synchronous: "normal" | "full",
  endToEnd: boolean,
): Promise<number> {
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

export interface OutboxBench {
  messages: number;
  bytesEach: number;
  perTurn: number;
  /** Messages/s durable at the sender (synchronous=NORMAL: survives a killed process). */
  senderNormal: number;
  /** Messages/s end to end, durable at both ends (NORMAL). */
  endToEndNormal: number;
  /** The same with synchronous=FULL (an fsync per commit: also survives a power cut). */
  senderFull: number;
  endToEndFull: number;
  /** One message per turn (no batching), end to end, NORMAL: what batching saves. */
  unbatchedEndToEndNormal: number;
}

export async function outboxBench(messages: number, perTurn: number): Promise<OutboxBench> {
  return {
    messages,
    bytesEach: 1024,
    perTurn,
    senderNormal: await run(messages, perTurn, "normal", false),
    endToEndNormal: await run(messages, perTurn, "normal", true),
    senderFull: await run(messages, perTurn, "full", false),
    endToEndFull: await run(messages, perTurn, "full", true),
    unbatchedEndToEndNormal: await run(Math.min(messages, 5_000), 1, "normal", true),
  };
}

if (process.argv[1]?.endsWith("outbox.ts")) {
  const n = Number(process.argv[2] ?? 50_000);
  const perTurn = Number(process.argv[3] ?? 200);
  console.log(JSON.stringify(await outboxBench(n, perTurn)));
}
