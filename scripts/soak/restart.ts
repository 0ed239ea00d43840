/**
 * An agent killed (SIGKILL) mid-stream and started again with the same id, while its peer keeps
 * running, on the same state (the durable outbox, the CLI's default): what the killed process had
 * sent but its peer never received, even after the restarted process resent its outbox, is what a
 * restart loses. Counted from both agents' metrics: A's sent counter (read just before the kill;
 * at 20 Hz at most one more probe can leave between that read and the kill) and B's received
 * counter at the end, less what the restarted process itself got through.
 * (Changed for the durable outbox; not re-run yet.)
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fault, nodeIn, stopChild } from "../../test/lab/lab.ts";
import type { Figures } from "../../test/lab/scenario.ts";
import { sleep } from "../../test/lab/scenario.ts";
import { sample, scrape } from "./agent-metrics.ts";

export interface RestartFigures {
  /** Whether A's uplinks were dropping every packet when it was killed. */
  linkDownAtKill: boolean;
  /** A's probes sent before the kill (counter read at most ~one probe interval before it). */
  sentByKilled: number;
  /** Of those, received by B by the end (durable: partly after the restart, from the outbox). */
  receivedFromKilled: number;
  /** Of those, received by B before the restarted process started. */
  receivedBeforeRestart: number;
  /** sentByKilled - receivedFromKilled (may be off by one, see above). */
  lostAcrossRestart: number;
  /** Reliable messages A had not had acknowledged when its counters were read. */
  unackedAtKill: number;
  /** From the kill to the restarted process's first echoed probe. */
  relinkMs: number | null;
  /** The restarted process's own probe figures (it ran `seconds`). */
  restarted: Figures;
  /** B's count of messages from A after the restart (the killed process's outbox included). */
  receivedFromRestarted: number;
}

const A_METRICS = 9101;
const B_METRICS = 9102;

/**
 * `linkDown`: kill A while both its uplinks drop every packet (what it queued meanwhile is in
 * its memory only); otherwise while the link is healthy.
 */
export async function killAndRestart(
  edgeUrl: string,
  dir: string,
  seconds: number,
  linkDown: boolean,
): Promise<RestartFigures> {
  const room = `soak-kill-${process.pid}-${linkDown ? "down" : "up"}`;
  const rover = (id: string, extra: string[]) => [
    "rover/cli.ts",
    "rover",
    "--edge",
    edgeUrl,
    "--room",
    room,
    "--id",
    id,
    "--log-level",
    "warn",
    ...extra,
  ];
  const [bScript, ...bArgs] = rover("b", ["--echo", "--metrics-port", String(B_METRICS)]);
  const b = nodeIn("b", bScript as string, bArgs);
  const aArgs = ["--connect", "b", "--probe", "20", "--metrics-port", String(A_METRICS)];
  const [aScript, ...a1Args] = rover("a", aArgs);
  const a1 = nodeIn("a", aScript as string, a1Args);
  try {
    // Stream for a few seconds once echoes come back.
    const end = Date.now() + 30_000;
    let text = scrape("a", A_METRICS);
    while (sample(text ?? "", "roverlink_messages_received_total", { peer: "b" }) === 0) {
      if (Date.now() > end) throw new Error("the first agent never linked");
      await sleep(250);
      text = scrape("a", A_METRICS);
    }
    await sleep(linkDown ? 2_000 : 4_000);
    if (linkDown) {
      fault.loss("wifi", 1);
      fault.loss("cell", 1);
      await sleep(3_000);
    }
    const last = scrape("a", A_METRICS) ?? "";
    a1.kill("SIGKILL");
    const killedAt = Date.now();
    if (linkDown) fault.heal();
    const sentByKilled = sample(last, "roverlink_messages_sent_total", { peer: "b" });
    const unackedAtKill = sample(last, "roverlink_link_backlog_messages", { peer: "b" });
    await stopChild(a1);
    await sleep(500); // anything still in flight from A lands (nothing is retransmitted now)
    const receivedBeforeRestart = sample(
      scrape("b", B_METRICS) ?? "",
      "roverlink_messages_received_total",
      { peer: "a", channel: "control" },
    );

    const stats = join(dir, "restarted.json");
    const [, ...a2Args] = rover("a", [
      ...aArgs,
      "--duration",
      String(seconds),
      "--stats-json",
      stats,
    ]);
    const a2 = nodeIn("a", aScript as string, a2Args);
    let relinkMs: number | null = null;
    const exited = new Promise<void>((resolve) => a2.once("exit", () => resolve()));
    let done = false;
    void exited.then(() => {
      done = true;
    });
    while (!done && relinkMs === null) {
      const t = scrape("a", A_METRICS);
      if (t && sample(t, "roverlink_messages_received_total", { peer: "b" }) > 0)
        relinkMs = Date.now() - killedAt;
      else await sleep(100);
    }
    await exited;
    const restarted = JSON.parse(readFileSync(stats, "utf8")) as Figures;
    const receivedByEnd = sample(
      scrape("b", B_METRICS) ?? "",
      "roverlink_messages_received_total",
      { peer: "a", channel: "control" },
    );
    const receivedFromRestarted = receivedByEnd - receivedBeforeRestart;
    // The restarted process's own probes that got through (their echoes came back).
    const receivedFromKilled = receivedByEnd - restarted.received;
    return {
      linkDownAtKill: linkDown,
      sentByKilled,
      receivedFromKilled,
      receivedBeforeRestart,
      lostAcrossRestart: sentByKilled - receivedFromKilled,
      unackedAtKill,
      relinkMs,
      restarted,
      receivedFromRestarted,
    };
  } finally {
    fault.heal();
    await stopChild(a1);
    await stopChild(b);
  }
}
