/**
 * `control` stream state per peer id, sans-IO: one reliable sender and receiver (reliable.ts)
 * per peer, outliving links and the peer's processes (incarnations). A link made afresh carries
 * on where the last one stopped, and when the peer is a new process the hello exchange settles
 * the rest: a peer that resumed our stream (durable) gets what it lacks, one that starts from
 * nothing gets what its old process had not acknowledged on a new stream (`rebase`), and a new
 * stream from the peer resets our receiver by itself. Dropping the sender on a new incarnation
 * would lose every message taken while the peer was down, without a word.
 *
 * The rover agent (rover/agent.ts) and the browser console (console/src/room.ts) both keep their
 * streams here, so a restarted peer gets what either had not delivered, exactly once.
 */
import type { ReliableReceiver, ReliableSender } from "./reliable.ts";

/** A second new `control` stream from a peer within this long is a violation (ms). */
export const STREAM_CHURN_MS = 60_000;

/** How the peer's end of a stream started over. */
export type StateLost =
  /** The peer sends a new stream (it lost its sender's state, or keeps none). */
  | { side: "sender"; deliveredBefore: number }
  /**
   * The peer expects our stream from the start: `resent` unacknowledged messages go again on a
   * new stream; the first had sequence number `from` (each one's new number is its old minus it).
   */
  | { side: "receiver"; resent: number; from: number };

export interface PeerStreamsHooks {
  /** A new sender towards `peer` (its limits and store). */
  sender(peer: string): ReliableSender;
  /** A new receiver from `peer` (its store). */
  receiver(peer: string): ReliableReceiver;
  /** The peer's end of a stream started over (a new process, or one that keeps no state). */
  stateLost?(peer: string, lost: StateLost): void;
  /** The peer started another new stream within `churnMs` of the last: a violation to count. */
  churn?(peer: string, detail: string): void;
  /** Default STREAM_CHURN_MS. */
  churnMs?: number;
  /** Clock for churn (ms); default Date.now. */
  now?(): number;
}

export interface PeerStreamState {
  sender: ReliableSender;
  receiver: ReliableReceiver;
  /** Since when no link carried the streams (the owner updates it; set when made). */
  idleSince: number;
}

export class PeerStreams {
  #hooks: PeerStreamsHooks;
  #streams = new Map<string, PeerStreamState>();
  /** When each peer last started a new stream towards us (churn). */
  #replacedAt = new Map<string, number>();

  constructor(hooks: PeerStreamsHooks) {
    this.#hooks = hooks;
  }

  #now(): number {
    return this.#hooks.now?.() ?? Date.now();
  }

  /**
   * The streams for `peer`, made on first use and kept whatever process is behind the id: a new
   * incarnation of the peer does not replace them (its hello settles them).
   */
  for(peer: string): PeerStreamState {
    let s = this.#streams.get(peer);
    if (s) return s;
    const h = this.#hooks;
    const receiver = h.receiver(peer);
    receiver.onStreamReplaced = (old) => {
      const now = this.#now();
      const last = this.#replacedAt.get(peer);
      this.#replacedAt.set(peer, now);
      if (last !== undefined && now - last < (h.churnMs ?? STREAM_CHURN_MS))
        h.churn?.(peer, `new control stream after ${old.next} messages`);
      h.stateLost?.(peer, { side: "sender", deliveredBefore: old.next });
    };
    const sender = h.sender(peer);
    sender.onRebased = (resent, from) => h.stateLost?.(peer, { side: "receiver", resent, from });
    s = { sender, receiver, idleSince: this.#now() };
    this.#streams.set(peer, s);
    return s;
  }

  get(peer: string): PeerStreamState | undefined {
    return this.#streams.get(peer);
  }

  has(peer: string): boolean {
    return this.#streams.has(peer);
  }

  /** Forget `peer`'s streams (a misbehaving peer, or one idle too long). */
  delete(peer: string): boolean {
    return this.#streams.delete(peer);
  }

  get size(): number {
    return this.#streams.size;
  }

  values(): IterableIterator<PeerStreamState> {
    return this.#streams.values();
  }

  [Symbol.iterator](): IterableIterator<[string, PeerStreamState]> {
    return this.#streams.entries();
  }
}
