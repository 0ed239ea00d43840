/**
 * Drives one test/integration/outbox-app.ts process (a durable agent sending numbered messages
 * to its peer) and follows its JSON progress lines; restartable after a SIGKILL on the same
 * state. Used by test/integration/outbox.test.ts (plain processes) and the lab soak (namespaces).
 */
import type { ChildProcess } from "node:child_process";

export const OUTBOX_APP = new URL("./outbox-app.ts", import.meta.url).pathname;

export interface AppReport {
  /** Messages the application has sent (its own records: the next number to send). */
  sent: number;
  /** Messages it has got from its peer (its own records). */
  got: number;
  up: boolean;
}

export class AppProcess {
  child!: ChildProcess;
  last: AppReport = { sent: 0, got: 0, up: false };
  /** False until the current process printed its first report. */
  reported = false;
  exited!: Promise<void>;
  readonly #spawn: (args: string[]) => ChildProcess;
  readonly #args: string[];

  /**
   * `spawn(args)` starts `node <args>`; the app's argv: edge room id peer total stateDir
   * [connect]. `total` may be "Infinity" (send until SIGUSR2).
   */
  constructor(spawn: (args: string[]) => ChildProcess, args: string[]) {
    this.#spawn = spawn;
    this.#args = [OUTBOX_APP, ...args];
    this.start();
  }

  start(): void {
    const child = this.#spawn(this.#args);
    this.child = child;
    this.last = { sent: 0, got: 0, up: false };
    this.reported = false;
    let buf = "";
    child.stdout?.on("data", (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split("\n");
      buf = lines.pop() ?? "";
      const line = lines.at(-1);
      if (line && this.child === child) {
        this.last = JSON.parse(line) as AppReport;
        this.reported = true;
      }
    });
    this.exited = new Promise((r) => child.once("exit", () => r()));
  }

  async kill9(): Promise<void> {
    this.child.kill("SIGKILL");
    await this.exited;
  }

  /** Stop sending new messages (what was sent is still delivered). */
  finish(): void {
    this.child.kill("SIGUSR2");
  }

  async stop(): Promise<void> {
    this.child.kill("SIGCONT");
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Wait for `cond`, polling every 100 ms; throws naming `what` after `ms`. */
export async function until(what: string, cond: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
