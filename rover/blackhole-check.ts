/**
 * Can this rover escape a silently dead uplink (a blackhole: link up, every packet dropped)?
 * werift's sockets are bound to 0.0.0.0, so packets follow the main routing table, and after a
 * blackhole that table still prefers the dead uplink. Today only `--manage-routes` (the agent
 * demotes the dead default route; needs CAP_NET_ADMIN) escapes it: source-routing rules do not
 * help while sockets are not bound per uplink. With several uplinks and no `--manage-routes`, the
 * agent says so once at start-up, with what to do. Pure decision; `ip` is run by the caller.
 */

export interface UplinkFacts {
  /** Interfaces that carry a default route. */
  defaultRouteDevs: string[];
  manageRoutes: boolean;
}

/** The warning to log once, or null when a blackhole can be escaped (or there is one uplink). */
export function blackholeWarning(f: UplinkFacts): string | null {
  const devs = [...new Set(f.defaultRouteDevs)];
  if (devs.length < 2 || f.manageRoutes) return null;
  return (
    `${devs.length} uplinks (${devs.join(", ")}) without --manage-routes: a silently dead uplink ` +
    "cannot be escaped until its route goes away. Run with --manage-routes and CAP_NET_ADMIN " +
    "(docs/rover.md, Multi-homed rovers)"
  );
}

/** `ip -j route show default` -> the devices with a default route. */
export function parseDefaultRouteDevs(json: string): string[] {
  const rows = JSON.parse(json || "[]") as { dev?: unknown }[];
  return rows.flatMap((r) => (typeof r.dev === "string" ? [r.dev] : []));
}
