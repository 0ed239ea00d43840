/**
 * Local network changes: the interface addresses (`os.networkInterfaces()`; a downed interface
 * vanishes from it at once) and, on Linux, the default routes from /proc/net/route (a metric
 * change or a new preferred uplink). Emits "change" with what changed.
 *
 * On Linux the kernel says when to look: `ip -o monitor link address route` prints a line per
 * netlink event, and each one makes us compare at once (faster than any poll, and no work at all
 * while nothing changes; polling every 100/250 ms cost ~0.75 % of a core on an idle rover). A
 * slow poll (every 30 s) stays as a safety net. Without `ip`, or when it exits, we poll every
 * 100 ms (addresses) and 250 ms (routes) as before.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { networkInterfaces } from "node:os";

export type AddressReader = () => string;
export type RouteReader = () => string;

/** A stable fingerprint of the non-internal IPv4/IPv6 addresses per interface. */
export function addressFingerprint(): string {
  const out: string[] = [];
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    for (const a of addrs ?? []) if (!a.internal) out.push(`${name}=${a.address}`);
  }
  return out.sort().join(",");
}

/**
 * Default routes (destination and mask 0) as `iface/gateway/metric`, sorted, from the text of
 * /proc/net/route (columns: Iface Destination Gateway Flags RefCnt Use Metric Mask ...).
 */
export function parseDefaultRoutes(procNetRoute: string): string {
  return procNetRoute
    .split("\n")
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1] === "00000000" && f[7] === "00000000")
    .map((f) => `${f[0]}/${f[2]}/${f[6]}`)
    .sort()
    .join(",");
}

/** The default routes now (empty where /proc/net/route does not exist). */
export function defaultRoutes(): string {
  try {
    return parseDefaultRoutes(readFileSync("/proc/net/route", "utf8"));
  } catch {
    return "";
  }
}

export interface NetWatchOptions {
  addresses?: AddressReader;
  routes?: RouteReader;
  addressEveryMs?: number;
  routeEveryMs?: number;
  /**
   * Follow netlink events (`ip monitor`) instead of polling fast. Default: on Linux, unless
   * readers are injected (tests drive those with their own timing).
   */
  monitor?: boolean;
}

/**
 * The safety poll while `ip monitor` tells us of changes (ms): netlink events are not lost in
 * practice, so this only bounds how long a missed one could go unseen. Both reads share one
 * timer: an idle rover wakes for this twice a minute, not twice every 5 s.
 */
const MONITORED_POLL_MS = 30_000;

export class NetWatch extends EventEmitter {
  readonly #addresses: AddressReader;
  readonly #routes: RouteReader;
  #lastAddresses: string;
  #lastRoutes: string;
  #timers: NodeJS.Timeout[] = [];
  #monitor: ChildProcess | null = null;
  #closed = false;
  readonly #opts: NetWatchOptions;

  constructor(opts: NetWatchOptions = {}) {
    super();
    this.#opts = opts;
    this.#addresses = opts.addresses ?? addressFingerprint;
    this.#routes = opts.routes ?? defaultRoutes;
    this.#lastAddresses = this.#addresses();
    this.#lastRoutes = this.#routes();
    const monitor =
      opts.monitor ?? (process.platform === "linux" && !opts.addresses && !opts.routes);
    if (monitor) this.#follow();
    else this.#poll(opts.addressEveryMs ?? 100, opts.routeEveryMs ?? 250);
  }

  /** Whether netlink events drive the checks (false: polling). */
  get monitored(): boolean {
    return this.#monitor !== null;
  }

  #poll(addressEveryMs: number, routeEveryMs: number): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [
      setInterval(() => this.check("addresses"), addressEveryMs).unref(),
      setInterval(() => this.check("routes"), routeEveryMs).unref(),
    ];
  }

  #follow(): void {
    const child = spawn("ip", ["-o", "monitor", "link", "address", "route"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    this.#monitor = child;
    child.unref();
    (child.stdout as unknown as { unref?: () => void } | null)?.unref?.();
    const both = () => {
      this.check("addresses");
      this.check("routes");
    };
    child.stdout?.on("data", both);
    const lost = () => {
      if (this.#monitor !== child) return;
      this.#monitor = null;
      // No events any more: poll fast again, as without `ip`.
      if (!this.#closed)
        this.#poll(this.#opts.addressEveryMs ?? 100, this.#opts.routeEveryMs ?? 250);
    };
    child.once("error", lost);
    child.once("exit", lost);
    for (const t of this.#timers) clearInterval(t);
    // A change between our first read and `ip` subscribing to netlink is seen a moment later.
    setTimeout(both, 1_000).unref();
    this.#timers = [setInterval(both, MONITORED_POLL_MS).unref()];
  }

  /** Compare now (also called by the timers). Returns true when something changed. */
  check(what: "addresses" | "routes"): boolean {
    if (what === "addresses") {
      const now = this.#addresses();
      if (now === this.#lastAddresses) return false;
      const before = this.#lastAddresses;
      this.#lastAddresses = now;
      this.emit("change", { what, before, now });
      return true;
    }
    const now = this.#routes();
    if (now === this.#lastRoutes) return false;
    const before = this.#lastRoutes;
    this.#lastRoutes = now;
    this.emit("change", { what, before, now });
    return true;
  }

  close(): void {
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    const m = this.#monitor;
    this.#monitor = null;
    if (m && m.exitCode === null) m.kill();
  }
}
