/**
 * Uplink failover for multi-homed rovers (`--manage-routes`, needs CAP_NET_ADMIN and `ip`).
 * werift's own sockets are bound to 0.0.0.0, so their packets follow the main routing table,
 * which keeps preferring a silently dead uplink (link up, packets dropped). Two remedies:
 * - source rules (the first choice): one routing table per uplink and an `ip rule from <address>`
 *   selecting it, so the sockets the agent binds to each uplink's address (backup paths, requests
 *   to the edge) leave through that uplink whatever the main table says. The agent installs them
 *   for uplinks that have none, keeps them in step with the addresses, and removes them when it
 *   stops. With every uplink source-routed, the way out of a blackhole is a switch to a backup
 *   path, and the main table is left alone;
 * - demotion (when source rules could not be installed for every uplink): on silent path loss
 *   the preferred default route gets a higher metric for a probation period (doubling while the
 *   uplink keeps failing), so the kernel moves traffic to the next uplink. Undone when the agent
 *   stops.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface DefaultRoute {
  dev: string;
  gateway?: string;
  metric: number;
}

export type IpRunner = (args: string[]) => Promise<string>;

const ipRunner: IpRunner = async (args) => (await run("ip", args, { timeout: 5_000 })).stdout;

/** `ip -j route show default` -> routes, best (lowest metric) first. */
export function parseDefaultRoutes(json: string): DefaultRoute[] {
  const rows = JSON.parse(json || "[]") as { dev?: string; gateway?: string; metric?: number }[];
  return rows
    .filter((r) => typeof r.dev === "string")
    .map((r) => ({
      dev: r.dev as string,
      ...(r.gateway ? { gateway: r.gateway } : {}),
      metric: r.metric ?? 0,
    }))
    .sort((a, b) => a.metric - b.metric);
}

function routeArgs(r: DefaultRoute, metric: number): string[] {
  return [
    "default",
    ...(r.gateway ? ["via", r.gateway] : []),
    "dev",
    r.dev,
    "metric",
    String(metric),
  ];
}

/** The rule preference marking the source rules this agent installed (and may remove). */
export const SOURCE_RULE_PREF = 5207;
/** Our per-uplink tables: this plus the interface index. */
const SOURCE_TABLE_BASE = 52_070_000;

export interface UplinkAddresses {
  dev: string;
  ifindex: number;
  addresses: string[];
}

/** `ip -j -4 addr show` -> each interface's IPv4 addresses. */
export function parseAddresses(json: string): UplinkAddresses[] {
  const rows = JSON.parse(json || "[]") as {
    ifname?: unknown;
    ifindex?: unknown;
    addr_info?: { family?: unknown; local?: unknown }[];
  }[];
  return rows.flatMap((r) =>
    typeof r.ifname === "string" && typeof r.ifindex === "number"
      ? [
          {
            dev: r.ifname,
            ifindex: r.ifindex,
            addresses: (r.addr_info ?? []).flatMap((a) =>
              a.family === "inet" && typeof a.local === "string" ? [a.local] : [],
            ),
          },
        ]
      : [],
  );
}

export interface PolicyRule {
  src: string;
  table: string;
  pref: number;
}

/** `ip -j rule show` -> the rules that select by source address. */
export function parseRules(json: string): PolicyRule[] {
  const rows = JSON.parse(json || "[]") as { src?: unknown; table?: unknown; priority?: unknown }[];
  return rows.flatMap((r) =>
    typeof r.src === "string" && r.src !== "all"
      ? [{ src: r.src, table: String(r.table ?? ""), pref: Number(r.priority ?? -1) }]
      : [],
  );
}

export interface SourceRule {
  src: string;
  table: number;
  dev: string;
  gateway?: string;
}

export interface SourceRulePlan {
  /** Rules (and their tables' default routes) to install. */
  add: SourceRule[];
  /** Our rules whose address or uplink is gone. */
  remove: PolicyRule[];
  /** Our rules to keep: their tables' default routes are refreshed (the gateway may change). */
  keep: SourceRule[];
  /** Uplinks with a default route that will have a source rule for every address. */
  routed: string[];
}

/**
 * Source rules for every uplink with a default route, where the system has none (pure): rules of
 * our own preference are ours to replace or remove; any other rule from an address means the
 * system already routes it by source, and it is left alone.
 */
export function planSourceRules(
  routes: DefaultRoute[],
  uplinks: UplinkAddresses[],
  rules: PolicyRule[],
): SourceRulePlan {
  const theirs = new Set(rules.filter((r) => r.pref !== SOURCE_RULE_PREF).map((r) => r.src));
  const ours = rules.filter((r) => r.pref === SOURCE_RULE_PREF);
  const want: SourceRule[] = [];
  const routed: string[] = [];
  for (const dev of new Set(routes.map((r) => r.dev))) {
    const u = uplinks.find((x) => x.dev === dev);
    if (!u || u.addresses.length === 0) continue;
    const route = routes.find((r) => r.dev === dev) as DefaultRoute;
    for (const src of u.addresses)
      if (!theirs.has(src))
        want.push({
          src,
          table: SOURCE_TABLE_BASE + u.ifindex,
          dev,
          ...(route.gateway ? { gateway: route.gateway } : {}),
        });
    routed.push(dev);
  }
  const same = (r: PolicyRule, w: SourceRule) => r.src === w.src && r.table === String(w.table);
  return {
    add: want.filter((w) => !ours.some((r) => same(r, w))),
    remove: ours.filter((r) => !want.some((w) => same(r, w))),
    keep: want.filter((w) => ours.some((r) => same(r, w))),
    routed,
  };
}

export interface Demotion {
  route: DefaultRoute;
  demotedMetric: number;
  until: number;
}

export class UplinkManager {
  readonly #ip: IpRunner;
  readonly #log: (o: object, msg: string, level?: "info" | "warn") => void;
  #demoted = new Map<string, Demotion>();
  #probationMs = new Map<string, number>();
  #timer: NodeJS.Timeout | null = null;
  #busy = false;
  /** Uplinks with a source rule for every address, and every uplink with a default route. */
  #routed = new Set<string>();
  #uplinks: string[] = [];
  #syncing: Promise<void> = Promise.resolve();

  constructor(
    opts: {
      ip?: IpRunner;
      log?: (o: object, msg: string, level?: "info" | "warn") => void;
      firstProbationMs?: number;
    } = {},
  ) {
    this.#ip = opts.ip ?? ipRunner;
    this.#log = opts.log ?? (() => {});
    this.#firstProbation = opts.firstProbationMs ?? 60_000;
  }

  readonly #firstProbation: number;

  async routes(): Promise<DefaultRoute[]> {
    return parseDefaultRoutes(await this.#ip(["-j", "route", "show", "default"]));
  }

  /**
   * Install source rules where an uplink has none, and drop ours for addresses that are gone. At
   * start and after every network change; serialized. Failures are logged (no CAP_NET_ADMIN):
   * demotion is then the way out.
   */
  sourceRoute(): Promise<void> {
    this.#syncing = this.#syncing.then(() => this.#sourceRoute());
    return this.#syncing;
  }

  async #sourceRoute(): Promise<void> {
    try {
      const routes = await this.routes();
      const plan = planSourceRules(
        routes,
        parseAddresses(await this.#ip(["-j", "-4", "addr", "show"])),
        parseRules(await this.#ip(["-j", "rule", "show"])),
      );
      for (const r of plan.remove) await this.#removeRule(r);
      for (const r of [...plan.keep, ...plan.add]) {
        const via = r.gateway ? ["via", r.gateway] : [];
        await this.#ip([
          "route",
          "replace",
          "default",
          ...via,
          "dev",
          r.dev,
          "table",
          String(r.table),
        ]);
      }
      for (const r of plan.add) {
        await this.#ip([
          "rule",
          "add",
          "from",
          r.src,
          "lookup",
          String(r.table),
          "pref",
          String(SOURCE_RULE_PREF),
        ]);
        this.#log({ dev: r.dev, from: r.src, table: r.table }, "source rule installed", "info");
      }
      this.#routed = new Set(plan.routed);
      this.#uplinks = [...new Set(routes.map((r) => r.dev))];
    } catch (e) {
      this.#routed.clear();
      this.#log(
        { err: (e as Error).message },
        "source rules not installed (needs CAP_NET_ADMIN and ip); demoting routes instead",
      );
    }
  }

  /** One of our rules and its table. A table already gone is no failure. */
  async #removeRule(r: PolicyRule): Promise<void> {
    const pref = String(SOURCE_RULE_PREF);
    await this.#ip(["rule", "del", "from", r.src, "lookup", r.table, "pref", pref]);
    await this.#ip(["route", "flush", "table", r.table]).catch(() => "");
  }

  /** Whether every uplink is routed by source: a blackhole is escaped by a backup path then. */
  get sourceRouted(): boolean {
    return this.#uplinks.length > 1 && this.#uplinks.every((d) => this.#routed.has(d));
  }

  /**
   * Demote the preferred default route when another exists and the uplinks are not all routed by
   * source (then the link's switch to a backup path escapes, and moving the main table's traffic
   * under it only disturbed that switch). Returns the demoted device.
   */
  async demotePrimary(now = Date.now()): Promise<string | null> {
    await this.#syncing;
    if (this.sourceRouted) return null;
    if (this.#busy) return null;
    this.#busy = true;
    try {
      const routes = await this.routes();
      const [best, next] = routes;
      if (!best || !next) return null;
      const worst = routes.at(-1) as DefaultRoute;
      const demotedMetric = worst.metric + 1;
      await this.#ip(["route", "del", ...routeArgs(best, best.metric)]);
      await this.#ip(["route", "add", ...routeArgs(best, demotedMetric)]);
      const probation = this.#probationMs.get(best.dev) ?? this.#firstProbation;
      this.#probationMs.set(best.dev, Math.min(probation * 2, 15 * 60_000));
      this.#demoted.set(best.dev, { route: best, demotedMetric, until: now + probation });
      this.#log(
        {
          dev: best.dev,
          metric: best.metric,
          demotedTo: demotedMetric,
          nowVia: next.dev,
          probationMs: probation,
        },
        "uplink demoted",
      );
      this.#schedule();
      return best.dev;
    } catch (e) {
      this.#log(
        { err: (e as Error).message },
        "uplink demotion failed (needs CAP_NET_ADMIN and ip)",
      );
      return null;
    } finally {
      this.#busy = false;
    }
  }

  demotions(): Demotion[] {
    return [...this.#demoted.values()];
  }

  #schedule(): void {
    if (this.#timer) clearTimeout(this.#timer);
    const next = Math.min(...[...this.#demoted.values()].map((d) => d.until));
    if (!Number.isFinite(next)) return;
    this.#timer = setTimeout(
      () => void this.restoreDue(Date.now()),
      Math.max(0, next - Date.now()),
    );
    this.#timer.unref();
  }

  /** Put back demoted routes whose probation is over (or all of them). */
  async restoreDue(now: number, all = false): Promise<void> {
    for (const [dev, d] of this.#demoted) {
      if (!all && d.until > now) continue;
      try {
        await this.#ip(["route", "del", ...routeArgs(d.route, d.demotedMetric)]);
        await this.#ip(["route", "add", ...routeArgs(d.route, d.route.metric)]);
        this.#log({ dev, metric: d.route.metric }, "uplink restored");
      } catch (e) {
        // The interface went away meanwhile; nothing to restore.
        this.#log({ dev, err: (e as Error).message }, "uplink restore skipped");
      }
      this.#demoted.delete(dev);
    }
    this.#schedule();
  }

  async close(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    await this.restoreDue(Date.now(), true);
    await this.#syncing;
    // Our source rules go with us; the system's own stay.
    try {
      const rules = parseRules(await this.#ip(["-j", "rule", "show"]));
      for (const r of rules.filter((x) => x.pref === SOURCE_RULE_PREF)) await this.#removeRule(r);
    } catch (e) {
      this.#log({ err: (e as Error).message }, "source rules not removed");
    }
  }
}
