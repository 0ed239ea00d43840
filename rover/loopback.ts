/**
 * Is an address or host name this machine's loopback? Used to keep the development secret off
 * anything reachable from the network, and to warn a rover that carries the master secret.
 * Conservative: only what certainly stays on the machine counts (127.0.0.0/8, ::1, their
 * IPv4-mapped forms, `localhost`); the wildcards 0.0.0.0 and :: listen on every interface.
 */
import { BlockList, isIPv4, isIPv6 } from "node:net";

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/** A host as compared here: URL.hostname keeps IPv6 brackets; a trailing dot names the same host. */
function normalize(host: string): string {
  return host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1")
    .replace(/\.$/, "");
}

/** Whether an address literal is in `list` (a name is not). */
function listed(list: BlockList, h: string): boolean {
  if (isIPv4(h)) return list.check(h, "ipv4");
  if (isIPv6(h)) return list.check(h, "ipv6");
  return false;
}

export function isLoopbackHost(host: string): boolean {
  const h = normalize(host);
  return h === "localhost" || listed(LOOPBACK, h);
}

const PRIVATE = new BlockList();
PRIVATE.addSubnet("0.0.0.0", 8, "ipv4"); // "this host": a connection to it stays on the machine
PRIVATE.addAddress("::", "ipv6");
PRIVATE.addSubnet("10.0.0.0", 8, "ipv4");
PRIVATE.addSubnet("172.16.0.0", 12, "ipv4");
PRIVATE.addSubnet("192.168.0.0", 16, "ipv4");
PRIVATE.addSubnet("169.254.0.0", 16, "ipv4");
PRIVATE.addSubnet("fc00::", 7, "ipv6");
PRIVATE.addSubnet("fe80::", 10, "ipv6");

/**
 * Loopback, or an address literal of a private or link-local network (RFC 1918, RFC 4193): a LAN
 * the operator runs. Names other than `localhost` are not: where they lead is not ours to know.
 * Carrier-grade NAT space (100.64/10) is shared with other subscribers, so it is not private here.
 */
export function isPrivateHost(host: string): boolean {
  return isLoopbackHost(host) || listed(PRIVATE, normalize(host));
}
