/** The applications' own records in the outbox tests: what the sender sent, what the receiver got. */
import { DatabaseSync } from "node:sqlite";

export function appView(senderDb: string, receiverDb: string): { sent: number[]; got: string[] } {
  const s = new DatabaseSync(senderDb);
  const r = new DatabaseSync(receiverDb);
  try {
    const sent = s
      .prepare("SELECT i FROM app_sent ORDER BY i")
      .all()
      .map((x) => Number(x.i));
    const got = r
      .prepare("SELECT m FROM app_got ORDER BY k")
      .all()
      .map((x) => String(x.m));
    return { sent, got };
  } finally {
    s.close();
    r.close();
  }
}
