/**
 * Port forwarding on the wire (docs/protocol.md, "Port forwarding"), runtime-free.
 *
 * Every forwarded TCP connection, and every UDP flow (one local source address), is its own data
 * channel, and the channel's label is the open request: `rlfwd/<proto>/<port>/<id>`. The label
 * travels in the DCEP open, which is reliable even for UDP's unreliable channel. Control messages
 * are JSON text frames on that channel; forwarded bytes are binary frames:
 *   receiver to opener: {"t":"accept"} | {"t":"refuse","reason":"..."}
 *   both ways (TCP): {"t":"fin"} no more bytes from me (half-close), {"t":"fin-ack"} your fin
 *   arrived (and all bytes before it), {"t":"pause"} / {"t":"resume"} stop / go on sending.
 * A channel closes once its side has the peer's fin and the ack of its own (nothing in flight
 * can be lost to the stream reset); a close at any other time is an abnormal end.
 */
import { ID_PATTERN } from "./protocol.ts";

export type ForwardProto = "tcp" | "udp";

/** `--forward <proto>:<local port>:<peer>:<remote port>` */
export interface ForwardSpec {
  proto: ForwardProto;
  localPort: number;
  peer: string;
  remotePort: number;
}

/** One entry of `--allow-forward <proto>:<port>[,...]` */
export interface AllowedTarget {
  proto: ForwardProto;
  port: number;
}

export interface ForwardRequest {
  proto: ForwardProto;
  port: number;
  id: string;
}

export type ForwardMessage =
  | { t: "accept" }
  | { t: "refuse"; reason: string }
  | { t: "fin" }
  | { t: "fin-ack" }
  | { t: "pause" }
  | { t: "resume" };

export const FORWARD_LABEL_PREFIX = "rlfwd/";
/** Longest refusal reason sent or accepted (it ends up in logs). */
const MAX_REASON = 200;
const ID_RE = /^[0-9a-z]{1,16}$/;

export class ForwardSpecError extends Error {}
export class ForwardWireError extends Error {}

function parsePort(s: string | undefined, what: string): number {
  const n = Number(s);
  if (s === undefined || !/^\d+$/.test(s) || !Number.isInteger(n) || n < 1 || n > 65535)
    throw new ForwardSpecError(`${what} must be a port number 1..65535`);
  return n;
}

function parseProto(s: string | undefined): ForwardProto {
  if (s === "tcp" || s === "udp") return s;
  throw new ForwardSpecError(`protocol must be tcp or udp, not "${s ?? ""}"`);
}

export function parseForwardSpec(s: string): ForwardSpec {
  const parts = s.split(":");
  if (parts.length !== 4)
    throw new ForwardSpecError(`"${s}" must be <tcp|udp>:<local port>:<peer>:<remote port>`);
  const [proto, local, peer, remote] = parts;
  if (!peer || !ID_PATTERN.test(peer))
    throw new ForwardSpecError(`peer "${peer ?? ""}" must match [A-Za-z0-9._-]{1,64}`);
  return {
    proto: parseProto(proto),
    localPort: parsePort(local, "local port"),
    peer,
    remotePort: parsePort(remote, "remote port"),
  };
}

export function parseAllowList(s: string): AllowedTarget[] {
  return s.split(",").map((entry) => {
    const parts = entry.split(":");
    if (parts.length !== 2) throw new ForwardSpecError(`"${entry}" must be <tcp|udp>:<port>`);
    return { proto: parseProto(parts[0]), port: parsePort(parts[1], "port") };
  });
}

export function formatForward(f: ForwardSpec): string {
  return `${f.proto}:${f.localPort}:${f.peer}:${f.remotePort}`;
}

export function isForwardLabel(label: string): boolean {
  return label.startsWith(FORWARD_LABEL_PREFIX);
}

export function forwardLabel(r: ForwardRequest): string {
  return `${FORWARD_LABEL_PREFIX}${r.proto}/${r.port}/${r.id}`;
}

/** The request a label carries; null when the label is not a well-formed one. */
export function parseForwardLabel(label: string): ForwardRequest | null {
  if (!isForwardLabel(label) || label.length > 64) return null;
  const [proto, port, id, ...rest] = label.slice(FORWARD_LABEL_PREFIX.length).split("/");
  if (rest.length > 0 || (proto !== "tcp" && proto !== "udp") || !id || !ID_RE.test(id))
    return null;
  const n = Number(port);
  if (!port || !/^\d{1,5}$/.test(port) || n < 1 || n > 65535) return null;
  return { proto, port: n, id };
}

export function encodeForwardMessage(m: ForwardMessage): string {
  return JSON.stringify(m.t === "refuse" ? { t: m.t, reason: m.reason.slice(0, MAX_REASON) } : m);
}

/** Decode a control message from the peer; throws ForwardWireError on anything else. */
export function decodeForwardMessage(text: string): ForwardMessage {
  if (text.length > MAX_REASON + 64) throw new ForwardWireError("forward message too long");
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new ForwardWireError("forward message is not JSON");
  }
  const m = v as Record<string, unknown> | null;
  if (typeof m !== "object" || m === null) throw new ForwardWireError("bad forward message");
  switch (m.t) {
    case "accept":
    case "fin":
    case "fin-ack":
    case "pause":
    case "resume":
      return { t: m.t };
    case "refuse":
      if (typeof m.reason !== "string") throw new ForwardWireError("refuse without a reason");
      return { t: "refuse", reason: m.reason.slice(0, MAX_REASON) };
    default:
      throw new ForwardWireError("unknown forward message");
  }
}
