/**
 * The durable outbox with real processes through a local edge: rovers killed with SIGKILL while
 * their link is down, mid-stream, and both at once, then restarted on the same state. Counted
 * from each application's own records: 0 lost, 0 duplicated, 0 reordered, both directions.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type LocalEdge, startLocalEdge } from "../../rover/local-edge.ts";
import { appView } from "../rover/outbox-view.ts";
import { AppProcess, until } from "./outbox-rover.ts";

const SECRET = "outbox-secret-outbox-secret-outbox";
const TOTAL = 1_500;
let edge: LocalEdge;
let dir: string;

beforeAll(async () => {
  edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: SECRET } });
  dir = mkdtempSync(join(tmpdir(), "outbox-int-"));
});
afterAll(async () => {
  await edge?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function rover(id: string, peer: string, room: string, connect: boolean): AppProcess {
  const args = [edge.url, room, id, peer, String(TOTAL), dir, ...(connect ? ["connect"] : [])];
  return new AppProcess(
    (argv) =>
      spawn(process.execPath, argv, {
        env: { ...process.env, ROVERLINK_SECRET: SECRET },
        stdio: ["ignore", "pipe", "inherit"],
      }),
    args,
  );
}

/** What `from` recorded as sent, and what `to` recorded as got from it. */
function view(room: string, from: string, to: string): { sent: number[]; got: string[] } {
  const file = (id: string) => join(dir, "outbox", room, `${id}.sqlite`);
  return appView(file(from), file(to));
}

it("kill -9 of the sender while its link is down, of the receiver mid-stream, and of both: 0 lost, 0 duplicated, 0 reordered", async () => {
  const room = "outbox-kills";
  const a = rover("a", "b", room, true);
  const b = rover("b", "a", room, false);
  try {
    await until("a link", () => a.last.up && b.last.got > 50 && a.last.got > 50);

    // 1. b stops answering (its link to a goes down); a keeps accepting, then dies, then returns.
    b.child.kill("SIGSTOP");
    const acceptedBefore = a.last.sent;
    await until("a to accept while down", () => a.last.sent >= acceptedBefore + 100);
    await a.kill9();
    a.start();
    await new Promise((r) => setTimeout(r, 1_000));
    b.child.kill("SIGCONT");
    await until("traffic after a's restart", () => a.last.up && b.last.got > acceptedBefore + 150);

    // 2. The receiver dies mid-stream.
    const gotBefore = b.last.got;
    await b.kill9();
    b.start();
    await until("traffic after b's restart", () => b.last.got > gotBefore + 100);

    // 3. Both die at once.
    await Promise.all([a.kill9(), b.kill9()]);
    a.start();
    b.start();
    await until("everything delivered", () => a.last.got >= TOTAL && b.last.got >= TOTAL, 120_000);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
  for (const [from, to] of [
    ["a", "b"],
    ["b", "a"],
  ] as const) {
    const v = view(room, from, to);
    const want = Array.from({ length: TOTAL }, (_, i) => i);
    expect(v.sent).toEqual(want);
    expect(v.got).toEqual(want.map((i) => `${from}:${i}`));
  }
}, 300_000);
