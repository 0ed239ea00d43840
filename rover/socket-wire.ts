/**
 * The local message socket's framing (docs/socket.md), sans-IO (Node's Buffer only): one JSON object per line
 * (UTF-8, `\n`-terminated), so that a program in any language reads it with `readline()` and
 * `json.loads()`. A message's payload is either `text` (a string, kept as a string) or `data`
 * (bytes, base64): both round-trip exactly as the peer's program sent them.
 *
 * Client to agent: hello (first, versioned), send. Agent to client: hello, ok, error, message,
 * link, handover, rtt. Errors are frames; a frame the agent cannot read is answered, not dropped.
 */
import type { Payload } from "../shared/link/reliable.ts";
import { ID_PATTERN, type Position } from "../shared/protocol.ts";
import { positionProblem } from "../shared/schemas.ts";

export const SOCKET_PROTOCOL_VERSION = 1;
/** Longest line either side accepts (bytes, without the newline): 1 MiB of payload in base64. */
export const MAX_LINE_BYTES = 1_500_000;
/** The channels a socket client may use: the agent's two standing ones. */
export const SOCKET_CHANNELS = ["control", "telemetry"] as const;
export type SocketChannel = (typeof SOCKET_CHANNELS)[number];

/**
 * Largest `telemetry` message (bytes): one data-channel message, as `telemetry` is not fragmented
 * (werift's max-message-size is 64 KiB).
 */
export const MAX_TELEMETRY_BYTES = 64_000;
/**
 * Largest `control` message from a client (bytes: UTF-8 text or the decoded data). The reliable
 * layer fragments it to the peer's max-message-size; a line (MAX_LINE_BYTES) holds this much
 * data in base64.
 */
export const MAX_CONTROL_BYTES = 1024 * 1024;

/** A payload's size against its channel's limit (UTF-8 bytes of text, or the bytes). */
export function sizeAgainstLimit(
  channel: SocketChannel,
  p: Payload,
): { size: number; max: number } {
  const size = typeof p === "string" ? Buffer.byteLength(p) : p.length;
  return { size, max: channel === "control" ? MAX_CONTROL_BYTES : MAX_TELEMETRY_BYTES };
}

/** A caller's own tag for a send, echoed in its `ok` or `error`. */
export type FrameId = string | number;

export type ClientFrame =
  | { t: "hello"; v: number; name?: string }
  | {
      t: "send";
      peer: string;
      channel: SocketChannel;
      payload: Payload;
      id?: FrameId;
      ttlMs?: number;
    }
  | { t: "position"; position: Position; id?: FrameId };

export type ErrorCode =
  /** not one JSON object per line, or a field wrong: the connection stays */
  | "bad-frame"
  /** anything before `hello`, or a second `hello` */
  | "hello-first"
  /** a `hello` with a version this agent does not speak: the connection is closed */
  | "version"
  /** a line over MAX_LINE_BYTES: the connection is closed (the stream cannot be resynchronised) */
  | "too-long"
  /** no link to the peer (telemetry), or a peer the agent knows nothing of (control) */
  | "no-link"
  /** the peer's `control` outbox is full (bounded): this message was NOT accepted */
  | "outbox-full"
  /** the durable outbox cannot write (disk): this message was NOT accepted */
  | "outbox-fault"
  /** this client reads too slowly: the agent closes the connection */
  | "slow-reader"
  /** control messages that came while no client was attached were dropped (hold limit) */
  | "dropped"
  /** a message over its channel's limit (MAX_CONTROL_BYTES, MAX_TELEMETRY_BYTES) */
  | "too-big"
  /** the edge refused a position, or could not be reached (the next join still carries it) */
  | "edge";

export type AgentFrame =
  | {
      t: "hello";
      v: number;
      /** this agent's peer id */
      self: string;
      room: string;
      links: { peer: string; state: string; path: string; rttMs: number | null }[];
    }
  | { t: "ok"; id: FrameId }
  | { t: "error"; code: ErrorCode; message: string; id?: FrameId }
  | { t: "message"; peer: string; channel: string; payload: Payload }
  | { t: "link"; peer: string; state: "up" | "down"; path?: string; reason?: string }
  | { t: "handover"; peer: string; kind: string; reason: string; gapMs: number }
  | {
      t: "rtt";
      peer: string;
      rttMs: number | null;
      /** how old rttMs is (an idle link's answering end measures none) */
      rttAgeMs: number | null;
      lossPct: number | null;
    };

/** A frame the agent cannot take; `id` when the frame carried one (so the caller can match it). */
export class SocketFrameError extends Error {
  readonly code: ErrorCode;
  readonly id: FrameId | undefined;
  constructor(code: ErrorCode, message: string, id?: FrameId) {
    super(message);
    this.code = code;
    this.id = id;
  }
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const MAX_ID_LEN = 128;

function isFrameId(v: unknown): v is FrameId {
  return (
    (typeof v === "string" && v.length <= MAX_ID_LEN) ||
    (typeof v === "number" && Number.isSafeInteger(v))
  );
}

/** The payload's fields on the wire: a string stays text, bytes go as base64. */
export function payloadFields(p: Payload): { text: string } | { data: string } {
  return typeof p === "string" ? { text: p } : { data: Buffer.from(p).toString("base64") };
}

function readPayload(m: Record<string, unknown>, id: FrameId | undefined): Payload {
  const hasText = "text" in m;
  const hasData = "data" in m;
  if (hasText === hasData)
    throw new SocketFrameError("bad-frame", "send needs exactly one of text and data", id);
  if (hasText) {
    if (typeof m.text !== "string") throw new SocketFrameError("bad-frame", "text: a string", id);
    return m.text;
  }
  if (typeof m.data !== "string" || !BASE64_RE.test(m.data))
    throw new SocketFrameError("bad-frame", "data: standard base64 (with padding)", id);
  return new Uint8Array(Buffer.from(m.data, "base64"));
}

/** Decode one line from a client; throws SocketFrameError. */
export function decodeClientFrame(line: string): ClientFrame {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new SocketFrameError("bad-frame", "not JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new SocketFrameError("bad-frame", "a frame is a JSON object");
  const m = v as Record<string, unknown>;
  const id = isFrameId(m.id) ? m.id : undefined;
  if ("id" in m && id === undefined)
    throw new SocketFrameError("bad-frame", `id: a string (<= ${MAX_ID_LEN}) or an integer`);
  switch (m.t) {
    case "hello": {
      if (typeof m.v !== "number" || !Number.isInteger(m.v))
        throw new SocketFrameError("bad-frame", "hello needs v, the protocol version");
      if ("name" in m && (typeof m.name !== "string" || m.name.length > 64))
        throw new SocketFrameError("bad-frame", "name: a string of at most 64 characters");
      return typeof m.name === "string"
        ? { t: "hello", v: m.v, name: m.name }
        : { t: "hello", v: m.v };
    }
    case "send": {
      if (typeof m.peer !== "string" || !ID_PATTERN.test(m.peer))
        throw new SocketFrameError("bad-frame", "peer: a peer id ([A-Za-z0-9._-]{1,64})", id);
      if (!SOCKET_CHANNELS.includes(m.channel as SocketChannel))
        throw new SocketFrameError("bad-frame", 'channel: "control" or "telemetry"', id);
      if (
        "ttlMs" in m &&
        (typeof m.ttlMs !== "number" || !Number.isInteger(m.ttlMs) || m.ttlMs <= 0)
      )
        throw new SocketFrameError("bad-frame", "ttlMs: a positive integer", id);
      const f: ClientFrame = {
        t: "send",
        peer: m.peer,
        channel: m.channel as SocketChannel,
        payload: readPayload(m, id),
      };
      if (id !== undefined) f.id = id;
      if (typeof m.ttlMs === "number") f.ttlMs = m.ttlMs;
      return f;
    }
    case "position": {
      // Checked as the edge checks it (its schema), so a refusal is a frame error here.
      const { x, y, map } = m;
      const problem = positionProblem("map" in m ? { x, y, map } : { x, y });
      if (problem) throw new SocketFrameError("bad-frame", problem, id);
      const position = { x, y, ...("map" in m ? { map } : {}) } as Position;
      return id === undefined ? { t: "position", position } : { t: "position", position, id };
    }
    default:
      throw new SocketFrameError(
        "bad-frame",
        'unknown frame type (t: "hello", "send" or "position")',
        id,
      );
  }
}

/** One line for the client, newline included. */
export function encodeAgentFrame(f: AgentFrame): string {
  if (f.t === "message") {
    const { payload, ...rest } = f;
    return `${JSON.stringify({ ...rest, ...payloadFields(payload) })}\n`;
  }
  return `${JSON.stringify(f)}\n`;
}

/**
 * Splits a byte stream into lines (bytes, then UTF-8), bounded: past a line longer than `max`,
 * `overflowed` is set and nothing more is split (the stream cannot be resynchronised). A
 * multi-byte character split across chunks is kept whole.
 */
export class LineSplitter {
  #parts: Uint8Array[] = [];
  #len = 0;
  #max: number;
  overflowed = false;

  constructor(max = MAX_LINE_BYTES) {
    this.#max = max;
  }

  /** The complete lines in `chunk` (empty lines skipped, a trailing CR dropped). */
  push(chunk: Uint8Array): string[] {
    const lines: string[] = [];
    let start = 0;
    while (!this.overflowed) {
      const nl = chunk.indexOf(0x0a, start);
      if (!this.#add(chunk.subarray(start, nl === -1 ? chunk.length : nl)) || nl === -1) break;
      let line = Buffer.concat(this.#parts, this.#len).toString("utf8");
      if (line.endsWith("\r")) line = line.slice(0, -1); // CRLF senders too
      this.#parts = [];
      this.#len = 0;
      if (line.length > 0) lines.push(line);
      start = nl + 1;
    }
    return lines;
  }

  #add(part: Uint8Array): boolean {
    this.#len += part.length;
    if (this.#len > this.#max) {
      this.overflowed = true;
      this.#parts = [];
      return false;
    }
    if (part.length > 0) this.#parts.push(part);
    return true;
  }
}
