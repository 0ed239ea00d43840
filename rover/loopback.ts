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

export function isLoopbackHost(host: string): boolean {
  // URL.hostname keeps IPv6 brackets; a trailing dot names the same host.
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1")
    .replace(/\.$/, "");
  if (h === "localhost") return true;
  if (isIPv4(h)) return LOOPBACK.check(h, "ipv4");
  if (isIPv6(h)) return LOOPBACK.check(h, "ipv6");
  return false;
}
