/**
 * A peer's entity tag: changes when its kind, meta or position does (what `PATCH .../peers/{id}`
 * changes), not with lastSeen. Lets a client patch conditionally (If-Match, RFC 9110 §13.1.1):
 * two operators editing one rover's meta do not overwrite each other unseen. Pure and synchronous
 * (the room object compares it inside the update, with no await between the read and the write;
 * Web Crypto's digest is asynchronous, and the Worker's types have no node:crypto); a 53-bit hash
 * (cyrb53) of the fields' JSON, not a security boundary: only the peer itself may patch its record.
 */
import type { Peer } from "../shared/protocol.ts";

export function peerEtag(peer: Pick<Peer, "kind" | "meta" | "position">): string {
  const s = JSON.stringify([peer.kind, peer.meta, peer.position ?? null]);
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  const n = 4294967296 * (2097151 & h2) + (h1 >>> 0);
  return `p-${n.toString(36)}`;
}
