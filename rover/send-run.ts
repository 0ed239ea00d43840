/**
 * `roverlink send FILE --to PEER`: join the room, link to the peer, send the file, wait for the
 * receiver's sha256 verdict, leave. Exit 0 only on verified delivery; every failure is one line.
 */
import { closeSync, openSync, statSync } from "node:fs";
import { basename } from "node:path";
import type { TokenSource } from "../shared/client.ts";
import { badFileName } from "../shared/file-wire.ts";
import { Agent } from "./agent.ts";
import { errnoText } from "./errno.ts";
import { FileTransferError, sendFile } from "./file-transfer.ts";
import { openPeerIdentity } from "./identity.ts";
import { createLogger, type LogLevel } from "./log.ts";
import { formatBytes, formatRate, ProgressView } from "./progress.ts";
import { statsFileProblem, writeStatsFile } from "./stats-file.ts";
import { onStopSignal } from "./stop-signals.ts";

export interface SendRunOptions {
  edge: string;
  room: string;
  id: string;
  /** `id` was made up for this run: its certificate is kept in memory, not in a file. */
  ephemeralId?: boolean;
  token: TokenSource;
  to: string;
  file: string;
  name?: string;
  /** Give up when no link comes up within this many seconds. */
  linkTimeoutS: number;
  /** Give up when the receiver acknowledges nothing for this many seconds. */
  idleTimeoutS: number;
  identityFile?: string;
  trustFile?: string;
  /** Write the transfer's figures here as JSON once delivered. */
  statsJson?: string;
  logLevel: LogLevel;
}

export class SendError extends Error {}

export async function runSend(o: SendRunOptions): Promise<number> {
  try {
    const st = statSync(o.file);
    if (!st.isFile()) throw new SendError(`${o.file} is not a regular file`);
    // Opened too: a file it cannot read (EACCES) is one line before joining, as a missing one is
    // (it joined, then said the peer did not come, or said it only once linked).
    closeSync(openSync(o.file, "r"));
  } catch (e) {
    if (e instanceof SendError) throw e;
    throw new SendError(`cannot read ${o.file}: ${errnoText(e)}`);
  }
  // What needs nothing from the room is refused before joining it: a join as the receiver's
  // own id would take its seat (it was pushed out, then the send blamed it for not joining).
  if (o.id === o.to) throw new SendError(`--to ${o.to} is this sender's own id: pass another --id`);
  if (o.name === "") throw new SendError("--name is empty: give the name the receiver should use");
  const name = o.name ?? basename(o.file);
  const badName = badFileName(name);
  // JSON-quoted: a name with a newline in it is still one line.
  if (badName) throw new SendError(`cannot send ${JSON.stringify(name)}: ${badName}`);
  const statsProblem = o.statsJson ? statsFileProblem(o.statsJson) : null;
  if (statsProblem) throw new SendError(statsProblem);
  const log = createLogger(o.logLevel);
  const id = await openPeerIdentity({
    id: o.id,
    ephemeral: o.ephemeralId === true && !o.identityFile,
    ...(o.identityFile ? { identityFile: o.identityFile } : {}),
    ...(o.trustFile ? { trustFile: o.trustFile } : {}),
  });
  const agent = new Agent({
    identity: id.identity,
    edge: o.edge,
    room: o.room,
    id: o.id,
    token: o.token,
    kind: "sender",
    connect: [o.to],
    logger: log,
    watchNetwork: true,
  });
  const stop = new AbortController();
  const off = onStopSignal(() => stop.abort(new SendError("interrupted")));
  try {
    await agent.start(stop.signal);
    // At a terminal, say why nothing happens yet (a script gets the one error line at the end).
    if (process.stderr.isTTY && !agent.peers().some((p) => p.id === o.to))
      process.stderr.write(
        `roverlink: "${o.to}" is not in room "${o.room}"; waiting up to ${o.linkTimeoutS} s for it\n`,
      );
    await linkUp(agent, o.to, o.linkTimeoutS, stop.signal, o.room);
    const view = new ProgressView(name);
    const t = sendFile(agent, o.to, o.file, { name, idleTimeoutMs: o.idleTimeoutS * 1000 });
    t.on("progress", (p: { acked: number; size: number }) => view.update(p.acked, p.size));
    t.on("interrupted", () => view.note(`${name}: link interrupted; resuming when it is back`));
    t.on("resumed", (offset: number) => view.note(`${name}: resumed at ${formatBytes(offset)}`));
    // A receiver that died says nothing on the channel: its link going down is the first sign.
    const onDown = (peer: string, reason: string) => {
      if (peer === o.to)
        view.note(
          `${name}: the link to ${peer} is down (${reason}); waiting up to ${o.idleTimeoutS} s for it to come back`,
        );
    };
    agent.on("link-down", onDown);
    void t.done.finally(() => agent.off("link-down", onDown)).catch(() => {});
    stop.signal.addEventListener("abort", () => t.cancel("interrupted"), { once: true });
    const cpu0 = process.cpuUsage();
    const r = await t.done;
    view.end();
    if (o.statsJson) {
      const cpu = process.cpuUsage(cpu0);
      const figures = { ...r, cpuMs: Math.round((cpu.user + cpu.system) / 1000) };
      writeStatsFile(o.statsJson, figures, false);
    }
    const resumed = r.resumedFrom.length
      ? `, resumed at ${r.resumedFrom.map(formatBytes).join(", ")}`
      : "";
    process.stdout.write(
      `sent ${r.name} (${formatBytes(r.bytes)}) to ${o.to} in ${(r.ms / 1000).toFixed(1)} s, ${formatRate(r.bytes, r.ms)}, sha256 ${r.sha256} verified${resumed}\n`,
    );
    return 0;
  } catch (e) {
    if (e instanceof FileTransferError) throw new SendError(e.message);
    throw e;
  } finally {
    off();
    await agent.stop();
  }
}

function linkUp(
  agent: Agent,
  peer: string,
  timeoutS: number,
  signal: AbortSignal,
  room: string,
): Promise<void> {
  if (agent.link(peer)?.up) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (e?: Error) => {
      clearTimeout(t);
      agent.off("link-up", on);
      signal.removeEventListener("abort", aborted);
      if (e) reject(e);
      else resolve();
    };
    const on = (p: string) => p === peer && done();
    const aborted = () => done(new SendError("interrupted"));
    const t = setTimeout(() => {
      const present = agent.peers().some((p) => p.id === peer);
      done(
        new SendError(
          present
            ? `no link to "${peer}" within ${timeoutS} s, though it is in room "${room}" (no path between you: does the edge give TURN servers?)`
            : `"${peer}" did not join room "${room}" within ${timeoutS} s`,
        ),
      );
    }, timeoutS * 1000);
    agent.on("link-up", on);
    signal.addEventListener("abort", aborted, { once: true });
  });
}
