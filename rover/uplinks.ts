/**
 * Uplink failover for multi-homed rovers (`--manage-routes`, needs CAP_NET_ADMIN and `ip`).
 * werift's sockets are bound to 0.0.0.0, so packets follow the routing table. When the preferred
 * uplink dies silently (link up, packets dropped), the table keeps preferring it and no ICE
 * restart can help. So on silent path loss the agent demotes the preferred default route (a
 * higher metric), the kernel moves traffic to the next uplink, and the link restarts there.
 * Demotions are undone after a probation period (doubling while the uplink keeps failing) and
 * when the agent stops.
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

export interface Demotion {
  route: DefaultRoute;
  demotedMetric: number;
  until: number;
}

export class UplinkManager {
  readonly #ip: IpRunner;
  readonly #log: (o: object, msg: string) => void;
  #demoted = new Map<string, Demotion>();
  #probationMs = new Map<string, number>();
  #timer: NodeJS.Timeout | null = null;
  #busy = false;

  constructor(
    opts: { ip?: IpRunner; log?: (o: object, msg: string) => void; firstProbationMs?: number } = {},
  ) {
    this.#ip = opts.ip ?? ipRunner;
    this.#log = opts.log ?? (() => {});
    this.#firstProbation = opts.firstProbationMs ?? 60_000;
  }

  readonly #firstProbation: number;

  async routes(): Promise<DefaultRoute[]> {
    return parseDefaultRoutes(await this.#ip(["-j", "route", "show", "default"]));
  }

  /** Demote the preferred default route when another exists. Returns the demoted device. */
  async demotePrimary(now = Date.now()): Promise<string | null> {
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
  }
}
