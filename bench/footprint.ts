/**
 * 5. Footprint: a rover agent's memory (RSS of a real `roverlink rover` process) idle and linked,
 * and what an idle link costs on the wire per day, counted packet by packet with iptables in a
 * network namespace of our own (bench/idle-link.ts), against a WireGuard-style 25 s keepalive.
 * Needs root (namespace, iptables); otherwise says so and measures nothing.
 */
import { execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { REPO_ROOT } from "../rover/local-edge.ts";
import type { Counted, IdleLinkFigures } from "./idle-link.ts";

export interface PerDay {
  packetsPerDay: number;
  bytesPerDay: number;
}

export interface Footprint {
  available: boolean;
  note?: string;
  rssBareNodeMiB?: number;
  rssIdleMiB?: number;
  rssLinkedMiB?: number;
  idleSeconds?: number;
  /** The link profile the rovers ran with (`--link-profile`). */
  profile?: string;
  /** The link (UDP, both directions). */
  link?: PerDay;
  /** Its STUN part: ICE consent checks and answers, the keepalive. The rest is DTLS (SCTP). */
  stun?: PerDay;
  /** Each linked rover's CPU over the idle window, % of one core. */
  cpuPct?: { a: number; b: number };
  /** The same once past the start-up GCs (bench/idle-link.ts), null when the window was short. */
  cpuSteadyPct?: { a: number; b: number } | null;
  steadyAfterS?: number;
  /** Both rovers' signaling to the edge while idle (TCP, both directions); half is per rover. */
  signaling?: PerDay;
  /** Persistent keepalive every 25 s, one way: 32-byte WireGuard message + 28 bytes UDP/IPv4. */
  wireguard: PerDay;
  /** roverlink link bytes/day over WireGuard's. */
  ratioLinkBytes?: number;
  ratioLinkPackets?: number;
}

const WIREGUARD: PerDay = { packetsPerDay: 86400 / 25, bytesPerDay: (86400 / 25) * (32 + 28) };

const perDay = (c: Counted, seconds: number): PerDay => ({
  packetsPerDay: Math.round((c.packets / seconds) * 86400),
  bytesPerDay: Math.round((c.bytes / seconds) * 86400),
});

function whyNot(): string | undefined {
  if (process.platform !== "linux") return "needs Linux network namespaces";
  if (process.getuid?.() !== 0) return "needs root (a network namespace and iptables counters)";
  for (const tool of ["ip", "iptables"]) {
    try {
      execFileSync(tool, ["-V"], { stdio: "ignore" });
    } catch {
      return `needs ${tool}`;
    }
  }
  return undefined;
}

export async function footprint(
  idleSeconds: number,
  settleS: number,
  profile = "cellular",
): Promise<Footprint> {
  const why = whyNot();
  if (why) return { available: false, note: `not measured: ${why}`, wireguard: WIREGUARD };
  // Not "rl-*": the lab's teardown deletes every rl-* namespace, and a lab run may overlap.
  const ns = `roverlink-bench-${process.pid}`;
  execFileSync("ip", ["netns", "add", ns]);
  try {
    execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
    const child = spawn(
      "ip",
      [
        "netns",
        "exec",
        ns,
        process.execPath,
        join(REPO_ROOT, "bench/idle-link.ts"),
        JSON.stringify({ seconds: idleSeconds, settleS, profile }),
      ],
      {
        cwd: REPO_ROOT,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      err = (err + d.toString()).slice(-2000);
    });
    const limit = setTimeout(() => child.kill("SIGTERM"), (idleSeconds + 150) * 1000);
    const code = await new Promise<number | null>((r) => child.once("exit", (c) => r(c)));
    clearTimeout(limit);
    const line = out.trim().split("\n").at(-1) ?? "";
    if (code !== 0 || !line.startsWith("{")) {
      const last = err.trim().split("\n").at(-1) || `exit ${code}${out ? "" : ", no output"}`;
      return { available: false, note: `idle-link run failed: ${last}`, wireguard: WIREGUARD };
    }
    const f = JSON.parse(line) as IdleLinkFigures;
    const link = perDay(f.udp, f.seconds);
    return {
      available: true,
      rssBareNodeMiB: f.rssBareNodeMiB,
      rssIdleMiB: f.rssIdleMiB,
      rssLinkedMiB: f.rssLinkedMiB,
      idleSeconds: f.seconds,
      profile: f.profile,
      link,
      stun: perDay(f.stun, f.seconds),
      cpuPct: f.cpuPct,
      cpuSteadyPct: f.cpuSteadyPct,
      steadyAfterS: f.steadyAfterS,
      signaling: perDay(f.tcp, f.seconds),
      wireguard: WIREGUARD,
      ratioLinkBytes: Math.round((link.bytesPerDay / WIREGUARD.bytesPerDay) * 10) / 10,
      ratioLinkPackets: Math.round((link.packetsPerDay / WIREGUARD.packetsPerDay) * 10) / 10,
    };
  } finally {
    execFileSync("ip", ["netns", "del", ns]);
  }
}
