/**
 * Agents killed with SIGKILL and restarted on their state, repeated, in the lab: two durable
 * applications (test/integration/outbox-app.ts, A in rl-a connecting to B in rl-b through the
 * lab edge and TURN) send numbered messages to each other on `control` at ~200/s each way and
 * record what they sent and got in their outbox databases. One run per kill kind:
 *   sender-link-down     A's uplinks drop everything for 3 s, A keeps accepting, A is killed;
 *   receiver-mid-stream  B is killed while A's messages flow to it; A keeps accepting;
 *   both                 A and B are killed at once mid-stream.
 * Each kill's premise is checked (a kill whose premise did not happen is a failure, not a pass);
 * at the end both applications stop sending, everything drains, and their records are counted:
 * lost, duplicated, reordered, unexpected, both directions.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppProcess, until } from "../../test/integration/outbox-rover.ts";
import { fault, nodeIn } from "../../test/lab/lab.ts";
import { sleep } from "../../test/lab/scenario.ts";
import { appView, type Tally, tally } from "../../test/rover/outbox-view.ts";

export const KILL_KINDS = ["sender-link-down", "receiver-mid-stream", "both"] as const;
export type KillKind = (typeof KILL_KINDS)[number];

export interface Kill {
  /** Whether what this kind of kill needs was there at the kill (see `premise`). */
  premiseMet: boolean;
  premise: string;
  /**
   * A's messages accepted (durable in its outbox) but not yet received by B at the kill, from
   * their last progress lines (each at most 100 ms old, so ± ~20 messages).
   */
  aheadOfReceiverAtKill: number;
  /** From the kill until everything sent before it (both directions) was received. */
  caughtUpMs: number;
}

export interface KillRun {
  kind: KillKind;
  kills: Kill[];
  aToB: Tally;
  bToA: Tally;
}

/** The smallest backlog that makes a kill telling (~0.25 s of traffic at 200/s). */
const MIN_AHEAD = 50;

export async function killRun(edgeUrl: string, kind: KillKind, repeat: number): Promise<KillRun> {
  process.env.OUTBOX_APP_LOG = "info";
  const dir = mkdtempSync(join(tmpdir(), `roverlink-soak-${kind}-`));
  const room = `soak-${kind}-${process.pid}`;
  const tails = new Map<ChildProcess, string>();
  const app = (ns: "a" | "b", id: string, peer: string, connect: boolean) =>
    new AppProcess(
      (argv) => {
        const child = nodeIn(ns, argv[0] as string, argv.slice(1));
        // Drained (an unread pipe would stall the agent), the tail kept for a failure.
        child.stderr?.on("data", (d: Buffer) =>
          tails.set(child, ((tails.get(child) ?? "") + d.toString()).slice(-20_000)),
        );
        return child;
      },
      [edgeUrl, room, id, peer, "Infinity", dir, ...(connect ? ["connect"] : [])],
    );
  const b = app("b", "b", "a", false);
  const a = app("a", "a", "b", true);
  const kills: Kill[] = [];
  /** Both directions flowing: each side got `n` more messages within `ms`. */
  const flowing = async (what: string, n = 100, ms = 60_000) => {
    const [ag, bg] = [a.last.got, b.last.got];
    await until(
      what,
      () => a.reported && b.reported && a.last.got >= ag + n && b.last.got >= bg + n,
      ms,
    );
  };
  try {
    await flowing("the first link");
    for (let k = 0; k < repeat; k++) {
      await flowing(`traffic before kill ${k + 1}`);
      await sleep(1_000);
      let premise: string;
      let premiseMet: boolean;
      let aheadOfReceiverAtKill: number;
      let sentAtKill: { a: number; b: number };
      let killedAt: number;
      if (kind === "sender-link-down") {
        const gotBefore = b.last.got;
        fault.loss("wifi", 1);
        fault.loss("cell", 1);
        await sleep(3_000);
        sentAtKill = { a: a.last.sent, b: b.last.sent };
        aheadOfReceiverAtKill = Math.max(0, a.last.sent - b.last.got);
        const gotWhileDown = b.last.got - gotBefore;
        await a.kill9();
        killedAt = Date.now();
        fault.heal();
        premiseMet = aheadOfReceiverAtKill >= MIN_AHEAD;
        premise = `A killed holding ${aheadOfReceiverAtKill} messages B had not got (B got ${gotWhileDown} while A's uplinks were down)`;
        await sleep(1_000);
        a.start();
      } else if (kind === "receiver-mid-stream") {
        const gotBefore = b.last.got;
        await sleep(500);
        const gotJustBefore = b.last.got - gotBefore;
        sentAtKill = { a: a.last.sent, b: b.last.sent };
        aheadOfReceiverAtKill = Math.max(0, a.last.sent - b.last.got);
        await b.kill9();
        killedAt = Date.now();
        const sentBefore = a.last.sent;
        await sleep(1_500);
        const acceptedWhileDead = a.last.sent - sentBefore;
        premiseMet = gotJustBefore > 0 && acceptedWhileDead >= MIN_AHEAD;
        premise = `B killed having got ${gotJustBefore} in the 0.5 s before; A accepted ${acceptedWhileDead} while B was dead`;
        b.start();
      } else {
        const [ag, bg] = [a.last.got, b.last.got];
        await sleep(500);
        const [agJust, bgJust] = [a.last.got - ag, b.last.got - bg];
        sentAtKill = { a: a.last.sent, b: b.last.sent };
        aheadOfReceiverAtKill = Math.max(0, a.last.sent - b.last.got);
        await Promise.all([a.kill9(), b.kill9()]);
        killedAt = Date.now();
        premiseMet = agJust > 0 && bgJust > 0;
        premise = `A and B killed at once, having got ${agJust} / ${bgJust} in the 0.5 s before`;
        await sleep(1_000);
        a.start();
        b.start();
      }
      // Everything sent before the kill arrives (from the outboxes), both ways.
      await until(
        `catching up after kill ${k + 1}`,
        () => a.reported && b.reported && b.last.got >= sentAtKill.a && a.last.got >= sentAtKill.b,
        90_000,
      );
      kills.push({ premiseMet, premise, aheadOfReceiverAtKill, caughtUpMs: Date.now() - killedAt });
    }
    // Stop sending; wait until each side got all the other sent.
    a.finish();
    b.finish();
    await sleep(500);
    await until(
      "the last messages",
      () => b.last.got >= a.last.sent && a.last.got >= b.last.sent,
      90_000,
    );
    await sleep(500); // the last acknowledgements
  } catch (e) {
    const logs = [...tails.values()].map((t) => t.split("\n").slice(-30).join("\n")).join("\n--\n");
    throw new Error(
      `${(e as Error).message} (A ${JSON.stringify(a.last)}, B ${JSON.stringify(b.last)})\n${logs}`,
    );
  } finally {
    fault.heal();
    await Promise.all([a.stop(), b.stop()]);
  }
  const file = (id: string) => join(dir, "outbox", room, `${id}.sqlite`);
  const ab = appView(file("a"), file("b"));
  const ba = appView(file("b"), file("a"));
  return { kind, kills, aToB: tally(ab.sent, ab.got, "a:"), bToA: tally(ba.sent, ba.got, "b:") };
}
