/**
 * A rover application for test/integration/outbox.test.ts: a durable agent that sends numbered
 * messages to its peer on `control` at a steady rate and records, in the agent's own outbox
 * database and in the same transactions as the outbox, what it sent and what it got. Prints JSON
 * lines (`{"sent":n,"got":n,"up":bool}`) for the test to follow.
 * argv: edge room id peer total stateDir [connect]; total may be "Infinity": send until SIGUSR2.
 */
import { Agent, type AgentMessage } from "../../rover/agent.ts";
import { createLogger, type LogLevel } from "../../rover/log.ts";
import { mintToken } from "../../shared/token.ts";

const [edge, room, id, peer, totalArg, stateDir, connect] = process.argv.slice(2) as string[];
let total = Number(totalArg);
const secret = process.env.ROVERLINK_SECRET ?? "";
const agent = new Agent({
  edge: edge as string,
  room: room as string,
  id: id as string,
  token: await mintToken({ secret, sub: id as string, room: room as string, ttlSeconds: 600 }),
  connect: connect ? [peer as string] : [],
  watchNetwork: false,
  stateDir: stateDir as string,
  // The lab soak keeps warnings for a failure's report; the test leaves them out.
  logger: createLogger((process.env.OUTBOX_APP_LOG as LogLevel | undefined) ?? "silent"),
});
await agent.start();
const outbox = agent.outbox;
if (!outbox) throw new Error("no outbox");
const db = outbox.db;
db.exec("CREATE TABLE IF NOT EXISTS app_sent (i INTEGER PRIMARY KEY)");
db.exec("CREATE TABLE IF NOT EXISTS app_got (k INTEGER PRIMARY KEY AUTOINCREMENT, m TEXT)");
const record = db.prepare("INSERT INTO app_sent (i) VALUES (?)");
const got = db.prepare("INSERT INTO app_got (m) VALUES (?)");
const lastSent = db.prepare("SELECT max(i) AS i FROM app_sent");
/** The next number to send: one past what the application's own records say it sent. */
const nextToSend = () => Number((lastSent.get() as { i: number | null }).i ?? -1) + 1;
let next = nextToSend();
let received = Number((db.prepare("SELECT count(*) AS n FROM app_got").get() as { n: number }).n);
let up = false;

// The hand-off: recorded in the transaction that also moves the delivered high-water mark.
agent.on("message", (m: AgentMessage) => {
  if (m.channel !== "control" || m.peer !== peer) return;
  outbox.write(() => got.run(String(m.data)));
  received++;
});
agent.on("link-up", () => (up = true));
agent.on("link-down", () => (up = false));

setInterval(() => {
  for (let k = 0; k < 2 && next < total; k++) {
    const i = next;
    try {
      // What the application counts as sent commits with the message.
      outbox.write(() => {
        agent.send(peer as string, "control", `${id}:${i}`);
        record.run(i);
      });
      next++;
    } catch {
      // The peer is not known yet, or the outbox is full: the batch was rolled back, so go on
      // from the application's own records.
      next = nextToSend();
      break;
    }
  }
}, 10);
setInterval(
  () => process.stdout.write(`${JSON.stringify({ sent: next, got: received, up })}\n`),
  100,
);
// Finish: send nothing new; what was sent is still delivered and acknowledged.
process.on("SIGUSR2", () => {
  total = Math.min(total, next);
});
process.once("SIGTERM", () => {
  void agent.stop().then(() => process.exit(0));
});
