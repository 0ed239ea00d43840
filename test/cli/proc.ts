/**
 * What every local user can see of this machine's processes (/proc), for the tests that check no
 * secret is visible in a process list and that nothing is left running.
 */
import { readdirSync, readFileSync } from "node:fs";

function pids(): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

/** Every readable process's command line (arguments joined by spaces). */
export function commandLines(): Map<number, string> {
  const out = new Map<number, string>();
  for (const pid of pids()) {
    try {
      out.set(pid, readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " "));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/** Live processes whose command line mentions `text` (a unique persist directory). */
export function processesMentioning(text: string): number[] {
  return [...commandLines()].filter(([, cmd]) => cmd.includes(text)).map(([pid]) => pid);
}

/** The process group of `pid`, or null when it is gone. */
export function processGroup(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
  } catch {
    return null;
  }
}

/** Live members (not zombies) of process group `pgid`: pid and command name. */
export function groupMembers(pgid: number): { pid: number; comm: string }[] {
  const out: { pid: number; comm: string }[] = [];
  for (const pid of pids()) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pgrp) === pgid && state !== "Z") out.push({ pid, comm });
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/** The value after `flag` on the command line of the first process mentioning `text`. */
export function flagValue(text: string, flag: string): string | undefined {
  for (const pid of processesMentioning(text)) {
    const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    const i = args.indexOf(flag);
    if (i >= 0) return args[i + 1];
  }
  return undefined;
}
