/**
 * The start-up warning for an edge reached over plain http beyond the machine and its LAN: the
 * token (a bearer credential) and every description cross the network readable by anyone on the
 * path. Not refused: a lab or a VPN may have reasons the address does not show.
 */
import { isPrivateHost } from "./loopback.ts";

export function plainHttpWarning(edgeUrl: string): string | null {
  const u = new URL(edgeUrl);
  if (u.protocol !== "http:" || isPrivateHost(u.hostname)) return null;
  return `the edge ${u.host} is plain http: the token and the session descriptions cross the network unencrypted; use https://`;
}
