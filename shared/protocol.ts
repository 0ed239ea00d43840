/**
 * roverlink edge protocol v1: the types and schemas shared by the edge, the rover agent and the
 * browser console. The normative text is docs/protocol.md (which follows the v1 design contract);
 * this module is its machine-readable half. Runtime-agnostic: no Node or Workers APIs, and no
 * runtime dependencies (the browser console bundles it); the zod schemas live in schemas.ts.
 */
export const API_BASE = "/v1";

/** Room and peer ids. Anything else is a 400. */
export const ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export const CONTENT_TYPE = {
  sdp: "application/sdp",
  sdpfrag: "application/trickle-ice-sdpfrag",
  json: "application/json",
  mergePatch: "application/merge-patch+json",
  problem: "application/problem+json",
  sse: "text/event-stream",
} as const;

export const LIMITS = {
  /** SDP and sdpfrag bodies. */
  sdpBytes: 64 * 1024,
  /** JSON bodies. */
  jsonBytes: 16 * 1024,
  /** Nesting of a JSON body (objects and arrays): meta is opaque, but copying it between the
   * Worker and the room recurses, and 16 KiB of `[` would nest 16 000 deep. */
  jsonDepth: 32,
  /** `wait` on the events long-poll, seconds. */
  pollWaitMaxS: 25,
  pollWaitDefaultS: 20,
  /** `Prefer: wait=N` on offers, seconds. */
  offerWaitMinS: 1,
  offerWaitMaxS: 25,
  /** SSE keep-alive comment interval, seconds. */
  sseKeepAliveS: 15,
  /** A position's `map` name, characters. */
  mapNameChars: 64,
} as const;

/** Headers a browser may read from our responses (CORS). */
export const EXPOSED_HEADERS = [
  "Location",
  "ETag",
  "Link",
  "Retry-After",
  "Accept-Post",
  "Accept-Patch",
] as const;
export const ALLOWED_REQUEST_HEADERS = [
  "Authorization",
  "Content-Type",
  "If-Match",
  "Prefer",
  "Last-Event-ID",
  "Accept",
] as const;

// ---------------------------------------------------------------------------------------------
// Auth

export type Role = "peer" | "admin";

/** JWT claims (HS256, signed with ROVERLINK_SECRET). */
export interface TokenClaims {
  sub: string;
  room: string;
  exp: number;
  iat?: number;
  role: Role;
  /**
   * RFC 7800 confirmation (extension, docs/protocol.md): the bearer's DTLS certificate, as the
   * base64url SHA-256 of its DER. Descriptions sent with the token must carry only it.
   */
  cnf?: { "x5t#S256": string };
}

// ---------------------------------------------------------------------------------------------
// Peers and presence

export interface Position {
  x: number;
  y: number;
  map?: string;
}

export type PeerMeta = Record<string, unknown>;

/** `POST /v1/rooms/{room}/peers` body; every field optional. */
export interface JoinBody {
  kind?: string;
  meta?: PeerMeta;
  position?: Position;
}

/**
 * `PATCH /v1/rooms/{room}/peers/{id}`, an RFC 7396 merge patch: objects merge key by key, `null`
 * removes a key (or all of meta/position). The merged peer must be valid.
 */
export interface PeerPatch {
  kind?: string;
  meta?: Record<string, unknown> | null;
  position?: { x?: number; y?: number; map?: string | null } | null;
}

export interface Peer {
  id: string;
  kind: string;
  meta: PeerMeta;
  position: Position | null;
  /** ms since epoch */
  joinedAt: number;
  /** ms since epoch: the last time the peer polled, streamed or made a request */
  lastSeen: number;
}

export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export interface IceServersResponse {
  iceServers: IceServer[];
  /** seconds the credentials stay valid */
  ttl: number;
}

export interface JoinResponse {
  peer: Peer;
  peers: Peer[];
  iceServers: IceServer[];
  /** Opaque. Pass as `after` to the first events poll. */
  cursor: string;
  /**
   * Opaque: the room's newest event at this join (an extension; absent from older edges). A new
   * process resuming a seat its previous one held starts here, past events meant for that one.
   */
  head?: string;
}

export interface PeersResponse {
  peers: Peer[];
}

// ---------------------------------------------------------------------------------------------
// Events

/** `peer-left`'s reason, the values protocol v1 fixes. */
export type PeerLeftReason = "left" | "expired";
/**
 * Why a peer is gone, as the agent reports it: `token-expired` (an extension) when the edge ended
 * its presence at its token's expiry (`peer-left` `expired` with `cause: "token-expired"`).
 */
export type PeerGoneReason = PeerLeftReason | "token-expired";

/** A `peer-left` event's reason with its extension `cause` folded in. */
export function peerGoneReason(ev: { reason: string; cause?: string }): PeerGoneReason {
  // An edge before 2026-12-08 put `token-expired` in `reason` itself.
  if (ev.cause === "token-expired" || ev.reason === "token-expired") return "token-expired";
  return ev.reason === "left" ? "left" : "expired";
}

export type RoomEvent =
  | { id: string; type: "peer-joined"; peer: Peer }
  | { id: string; type: "peer-updated"; peer: Peer }
  | {
      id: string;
      type: "peer-left";
      peer: string;
      reason: PeerLeftReason;
      /** Extension: `token-expired` when the presence ended at the token's expiry. */
      cause?: "token-expired";
    }
  | { id: string; type: "nearby"; peers: string[] }
  | { id: string; type: "offer"; session: string; from: string; sdp: string; etag: string }
  | { id: string; type: "restart"; session: string; from: string; frag: string; etag: string }
  | { id: string; type: "answer"; session: string; from: string; sdp: string; etag: string }
  /** Extension: the answer to a PATCH (sdpfrag) ICE restart whose request had returned 202. */
  | { id: string; type: "answer"; session: string; from: string; frag: string; etag: string }
  | { id: string; type: "candidates"; session: string; from: string; frag: string }
  | { id: string; type: "session-closed"; session: string; by: string; reason: string }
  /**
   * Extension, to a peer's own log: another process joined with this peer's id (its
   * `meta.incarnation`), so the seat is no longer this process's.
   */
  | { id: string; type: "seat-taken"; peer: string; incarnation: string };

export type RoomEventType = RoomEvent["type"];
export const EVENT_TYPES: readonly RoomEventType[] = [
  "peer-joined",
  "peer-updated",
  "peer-left",
  "nearby",
  "offer",
  "restart",
  "answer",
  "candidates",
  "session-closed",
  "seat-taken",
];

export interface EventsResponse {
  events: RoomEvent[];
  /** The cursor to pass as `after` next time (unchanged when no events came). */
  cursor: string;
}

// ---------------------------------------------------------------------------------------------
// Sessions

export type SessionState = "offered" | "answered" | "closed";

export interface SessionInfo {
  session: string;
  from: string;
  to: string;
  state: SessionState;
  etag: string;
  /** The latest answer (SDP, or sdpfrag after a PATCH restart). */
  answer?: string;
}

// ---------------------------------------------------------------------------------------------
// Errors (RFC 9457)

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  [extension: string]: unknown;
}

/** Problem `type` URIs. Relative to the docs so that they are readable as links. */
export const PROBLEM_BASE = "https://roverlink.dev/problems/";

export function isProblem(value: unknown): value is Problem {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.title === "string" && typeof v.status === "number";
}

// ---------------------------------------------------------------------------------------------
// Paths

export const paths = {
  healthz: () => "/healthz",
  iceServers: () => `${API_BASE}/ice-servers`,
  peers: (room: string) => `${API_BASE}/rooms/${room}/peers`,
  peer: (room: string, id: string) => `${API_BASE}/rooms/${room}/peers/${id}`,
  events: (room: string, id: string) => `${API_BASE}/rooms/${room}/peers/${id}/events`,
  offer: (room: string, target: string) => `${API_BASE}/rooms/${room}/peers/${target}/sessions`,
  session: (room: string, sid: string) => `${API_BASE}/rooms/${room}/sessions/${sid}`,
  answer: (room: string, sid: string) => `${API_BASE}/rooms/${room}/sessions/${sid}/answer`,
} as const;

/** Quote a strong ETag value: `abc` -> `"abc"`. */
export function quoteEtag(tag: string): string {
  return tag.startsWith('"') ? tag : `"${tag}"`;
}

/** Strip quotes (and a weak `W/` prefix) from an ETag or If-Match value. */
export function unquoteEtag(tag: string): string {
  const t = tag.trim().replace(/^W\//, "");
  return t.startsWith('"') && t.endsWith('"') && t.length >= 2 ? t.slice(1, -1) : t;
}
