/**
 * The library (`import { Agent } from "roverlink"`): the rover agent and what its API takes and
 * gives. Deliberately small; everything else in rover/ and shared/ is internal and may change.
 * Contract: docs/rover.md#library-use.
 */

export type { TokenSource } from "../shared/client.ts";
export {
  ClientInputError,
  EdgeProtocolError,
  EdgeUnreachableError,
  ProblemError,
} from "../shared/errors.ts";
export type { HealthConfig } from "../shared/link/health.ts";
export {
  BacklogFullError,
  MessageTooLargeError,
  type Payload,
  type SendOptions,
} from "../shared/link/reliable.ts";
export type { IceServer, Peer, PeerGoneReason, Position } from "../shared/protocol.ts";
export { mintToken, TokenError } from "../shared/token.ts";
export {
  Agent,
  type AgentEvents,
  type AgentMessage,
  type AgentOptions,
  AgentTokenMismatchError,
  type HandoverInfo,
  type LinkStats,
  NoLinkError,
  type OutboxStats,
} from "./agent.ts";
export {
  type FileProgress,
  FileReceiveError,
  FileReceiver,
  type FileReceiverOptions,
  type FileSent,
  FileTransferError,
  type OutgoingFile,
  type ReceivedFile,
  type SendFileOptions,
  sendFile,
} from "./file-transfer.ts";
export { IdentityError, openPeerIdentity, type PeerIdentity } from "./identity.ts";
export { createLogger, type LogLevel } from "./log.ts";
export { type Outbox, OutboxError, type OutboxOptions } from "./outbox.ts";
