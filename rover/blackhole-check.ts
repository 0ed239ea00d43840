/**
 * Can this rover escape a silently dead uplink (a blackhole: link up, every packet dropped)?
 * After a blackhole the main routing table still prefers the dead uplink. Two ways out:
 * - source routing (`ip rule from <uplink address> lookup <table>` per uplink): each link keeps
 *   backup paths on sockets bound to every uplink's address (rover/backup-paths.ts), which leave
 *   through their own uplink whatever the default route says; no privileges needed;
 * - `--manage-routes` (CAP_NET_ADMIN): the agent demotes the dead default route.
 * With several uplinks and neither, the agent says so once at start-up, with what to do. Pure
 * decision; `ip` is run by the caller.
 */

export interface UplinkFacts {
  /** Interfaces that carry a default route. */
  defaultRouteDevs: string[];
  manageRoutes: boolean;
  /** IPv4 addresses per interface. */
  devAddresses?: Record<string, string[]>;
  /** Source addresses that have a policy-routing rule (`ip rule ... from <addr>`). */
  sourceRuleFroms?: string[];
}

/** The warning to log once, or null when a blackhole can be escaped (or there is one uplink). */
export function blackholeWarning(f: UplinkFacts): string | null {
  const devs = [...new Set(f.defaultRouteDevs)];
  if (devs.length < 2 || f.manageRoutes) return null;
  const froms = new Set(f.sourceRuleFroms ?? []);
  const routed = (dev: string) => (f.devAddresses?.[dev] ?? []).some((a) => froms.has(a));
  const missing = devs.filter((d) => !routed(d));
  if (missing.length === 0) return null;
  return (
    `${devs.length} uplinks (${devs.join(", ")}) without --manage-routes and without source ` +
    `routing for ${missing.join(", ")}: a silently dead uplink cannot be escaped until its route ` +
    "goes away. Add a routing table and an 'ip rule from <address>' per uplink, or run with " +
    "--manage-routes and CAP_NET_ADMIN (docs/rover.md, Multi-homed rovers)"
  );
}

/** `ip -j route show default` -> the devices with a default route. */
export function parseDefaultRouteDevs(json: string): string[] {
  const rows = JSON.parse(json || "[]") as { dev?: unknown }[];
  return rows.flatMap((r) => (typeof r.dev === "string" ? [r.dev] : []));
}

/** `ip -j rule show` -> the source addresses of rules that select by source (`from <addr>`). */
export function parseSourceRules(json: string): string[] {
  const rows = JSON.parse(json || "[]") as { src?: unknown }[];
  return rows.flatMap((r) => (typeof r.src === "string" && r.src !== "all" ? [r.src] : []));
}
