/**
 * File transfers on the wire (docs/protocol.md, "File transfer"), runtime-free and pure.
 *
 * Every transfer is its own reliable, ordered data channel labelled `rlfile/<id>`; the label
 * survives ICE restarts with its PeerConnection, and after a rebuild the sender opens a new
 * channel with the same id, which resumes the transfer. JSON text frames steer; file bytes are
 * binary frames, consecutive from the accepted offset:
 *   sender to receiver:  {"t":"offer","name":"map.pgm","size":<bytes>,"sha256":"<hex>"}  on every open
 *   receiver to sender:  {"t":"accept","offset":<bytes kept>} | {"t":"refuse","reason":"..."}
 *                        {"t":"ack","offset":<bytes kept>}    progress, and where a resume starts
 *                        {"t":"done","sha256":"<hex>"}        verified, on disk under its name
 *                        {"t":"fail","reason":"..."}          the transfer is over, not delivered
 * The receiver is never asked to trust the sender: names are single path components it checks,
 * the size is declared before anything is written and checked against its limits, bytes past it
 * or out of turn end the transfer, and only a sha256 match lets the file appear under its name.
 */

export const FILE_LABEL_PREFIX = "rlfile/";
const ID_RE = /^[0-9a-z]{1,16}$/;
const HEX64 = /^[0-9a-f]{64}$/;
/** Longest name accepted (bytes, as most file systems allow) and longest reason. */
export const MAX_NAME_BYTES = 255;
const MAX_REASON = 200;

export type FileMessage =
  | { t: "offer"; name: string; size: number; sha256: string }
  | { t: "accept"; offset: number }
  | { t: "refuse"; reason: string }
  | { t: "ack"; offset: number }
  | { t: "done"; sha256: string }
  | { t: "fail"; reason: string };

export class FileWireError extends Error {}

export function fileLabel(id: string): string {
  if (!ID_RE.test(id)) throw new FileWireError(`bad transfer id "${id}"`);
  return `${FILE_LABEL_PREFIX}${id}`;
}

export function isFileLabel(label: string): boolean {
  return label.startsWith(FILE_LABEL_PREFIX);
}

/** The transfer id of a file channel's label, or null when the label is malformed. */
export function parseFileLabel(label: string): string | null {
  if (!isFileLabel(label)) return null;
  const id = label.slice(FILE_LABEL_PREFIX.length);
  return ID_RE.test(id) ? id : null;
}

/**
 * Why `name` may not be written into a receive directory, or null when it may: one path
 * component, no traversal, nothing hidden (temp files start with "."), no control characters.
 */
export function badFileName(name: string): string | null {
  if (name.length === 0) return "empty file name";
  if (new TextEncoder().encode(name).byteLength > MAX_NAME_BYTES)
    return `file name longer than ${MAX_NAME_BYTES} bytes`;
  if (name === "." || name === "..") return `file name "${name}" is not a file`;
  if (/[/\\]/.test(name)) return "file name has a path separator (only a bare name is accepted)";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
  if (/[\u0000-\u001f\u007f]/.test(name)) return "file name has control characters";
  if (name.startsWith(".")) return "file name starts with a dot";
  return null;
}

const int = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
const text = (x: unknown, max: number): x is string => typeof x === "string" && x.length <= max;

/** A steering frame; throws FileWireError on anything else. */
export function decodeFileMessage(raw: string): FileMessage {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new FileWireError("file transfer frame is not valid JSON");
  }
  const m = v as Record<string, unknown>;
  switch (m?.t) {
    case "offer":
      if (
        !text(m.name, 4 * MAX_NAME_BYTES) ||
        !int(m.size) ||
        !text(m.sha256, 64) ||
        !HEX64.test(m.sha256)
      )
        throw new FileWireError("bad offer");
      return { t: "offer", name: m.name, size: m.size, sha256: m.sha256 };
    case "accept":
    case "ack":
      if (!int(m.offset)) throw new FileWireError(`bad ${m.t}`);
      return { t: m.t, offset: m.offset };
    case "done":
      if (!text(m.sha256, 64) || !HEX64.test(m.sha256)) throw new FileWireError("bad done");
      return { t: "done", sha256: m.sha256 };
    case "refuse":
    case "fail":
      if (typeof m.reason !== "string") throw new FileWireError(`bad ${m.t}`);
      return { t: m.t, reason: m.reason.slice(0, MAX_REASON) };
    default:
      throw new FileWireError("unknown file transfer frame");
  }
}

export function encodeFileMessage(m: FileMessage): string {
  if ((m.t === "refuse" || m.t === "fail") && m.reason.length > MAX_REASON)
    return JSON.stringify({ ...m, reason: m.reason.slice(0, MAX_REASON) });
  return JSON.stringify(m);
}

export interface ReceiveLimits {
  /** Largest file accepted (bytes). */
  maxFileBytes: number;
  /** Transfers in progress from one peer at a time. */
  maxTransfersPerPeer: number;
}

export const DEFAULT_RECEIVE_LIMITS: Readonly<ReceiveLimits> = Object.freeze({
  maxFileBytes: 4 * 1024 ** 3,
  maxTransfersPerPeer: 4,
});

/** Why an offer is refused before anything is written, or null to accept it. */
export function refuseOffer(
  offer: { name: string; size: number },
  ctx: { limits: ReceiveLimits; active: number; exists: boolean; freeBytes: number | null },
): string | null {
  const bad = badFileName(offer.name);
  if (bad) return bad;
  if (offer.size > ctx.limits.maxFileBytes)
    return `file of ${offer.size} bytes is larger than the limit of ${ctx.limits.maxFileBytes}`;
  if (ctx.active >= ctx.limits.maxTransfersPerPeer)
    return `${ctx.limits.maxTransfersPerPeer} transfers from this peer in progress already`;
  if (ctx.exists) return `"${offer.name}" exists already in the receive directory`;
  if (ctx.freeBytes !== null && offer.size > ctx.freeBytes)
    return `not enough free space for ${offer.size} bytes (${ctx.freeBytes} free)`;
  return null;
}

/**
 * The receiver's temporary name for a transfer: hidden (offered names never start with a dot) and
 * per peer (a peer cannot reach another's part by choosing its id). Peer ids are safe in a name.
 */
/** How a part file's name starts (a name never starts with a dot: badFileName). */
export const PART_PREFIX = ".rlpart-";

export function partName(peer: string, id: string): string {
  return `${PART_PREFIX}${peer}-${id}`;
}

/** A size as people write it: bytes, or with a K/M/G/T suffix (powers of 1024); null if not one. */
export function parseFileSize(v: string): number | null {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)(?:i?B)?$/i.exec(v.trim());
  if (!m) return null;
  const units: Record<string, number> = {
    "": 1,
    K: 1024,
    M: 1024 ** 2,
    G: 1024 ** 3,
    T: 1024 ** 4,
  };
  const n = Math.floor(Number(m[1]) * (units[(m[2] ?? "").toUpperCase()] ?? Number.NaN));
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}
