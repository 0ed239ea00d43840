/**
 * Local network changes, cheaply: `os.networkInterfaces()` every 100 ms (a downed interface
 * vanishes from it at once) and, on Linux, the default routes from /proc/net/route every 250 ms
 * (a metric change or a new preferred uplink). Emits "change" with what changed.
 */
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
}

export class NetWatch extends EventEmitter {
  readonly #addresses: AddressReader;
  readonly #routes: RouteReader;
  #lastAddresses: string;
  #lastRoutes: string;
  #timers: NodeJS.Timeout[] = [];

  constructor(opts: NetWatchOptions = {}) {
    super();
    this.#addresses = opts.addresses ?? addressFingerprint;
    this.#routes = opts.routes ?? defaultRoutes;
    this.#lastAddresses = this.#addresses();
    this.#lastRoutes = this.#routes();
    this.#timers.push(
      setInterval(() => this.check("addresses"), opts.addressEveryMs ?? 100).unref(),
    );
    this.#timers.push(setInterval(() => this.check("routes"), opts.routeEveryMs ?? 250).unref());
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
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
  }
}
