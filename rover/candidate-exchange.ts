/**
 * Trickle ICE through the edge (RFC 8840 sdpfrag PATCH) for one link, both ways. Outgoing: local
 * candidates werift gathers after a description went out are batched into a PATCH; while a
 * description is being made and sent they wait, since werift gathers first and the description
 * carries them. Incoming: remote candidates wait (shared/link/candidate-buffer.ts) for the session
 * and ufrag they belong to, and are applied once that description is.
 */

import type { RTCPeerConnection } from "werift";
import type { RoverlinkClient } from "../shared/client.ts";
import { errorMessage } from "../shared/errors.ts";
import { CandidateBuffer } from "../shared/link/candidate-buffer.ts";
import { sdpCandidates } from "../shared/link/sdp-edit.ts";
import { buildCandidateFrag, type FragCandidate } from "../shared/sdpfrag.ts";

interface LocalCandidate {
  candidate: string;
  sdpMid?: string;
  sdpMLineIndex?: number;
}

export interface ExchangeOptions {
  client: RoverlinkClient;
  room: string;
  peer: string;
  log: { debug(o: object, msg?: string): void };
  /** Remote candidates past `MAX_REMOTE_CANDIDATES` for one ICE session were given up. */
  excess?(dropped: number): void;
}

/**
 * Remote candidates one ICE session (session and remote ufrag) may bring, its description's
 * included: a real peer has a few per uplink. werift's cost per candidate grows with those it has
 * (it sorts the check list and serializes the remote description for each one), all in one run of
 * microtasks: 30 trickle PATCHes of 800 held a rover's event loop for two minutes.
 */
export const MAX_REMOTE_CANDIDATES = 100;

/** Where candidates go right now: the session, its ETag and the PeerConnection. */
export interface ExchangeTarget {
  pc: RTCPeerConnection | null;
  session: string | null;
  etag: string | null;
}

export class CandidateExchange {
  #o: ExchangeOptions;
  #out: LocalCandidate[] = [];
  /** While a description is made and sent, its candidates travel in it, not by PATCH. */
  #holding = false;
  /** Local candidates already sent inside a description or fragment. */
  #sent = new Set<string>();
  /** Remote candidates waiting for the description (session and ufrag) they belong to. */
  readonly #held = new CandidateBuffer();
  /** The ICE session remote candidates were last applied to, and how many it has. */
  #appliedTo = "";
  #applied = 0;

  constructor(o: ExchangeOptions) {
    this.#o = o;
  }

  /** werift gathered a local candidate. */
  gathered(c: LocalCandidate): void {
    this.#out.push(c);
  }

  /** The description about to be sent carries these candidates: none of them needs a PATCH. */
  carried(sdp: string): void {
    for (const c of sdpCandidates(sdp)) this.#sent.add(c.candidate);
  }

  /** Run a step that makes and sends a local description; what it did not carry trickles after. */
  async describing<T>(step: () => Promise<T>, after: () => void): Promise<T> {
    this.#holding = true;
    try {
      return await step();
    } finally {
      this.#holding = false;
      after();
    }
  }

  /** PATCH the local candidates gathered since the last description went out. */
  async flush(t: ExchangeTarget): Promise<void> {
    if (this.#holding || !t.session || !t.etag || !t.pc?.localDescription) return;
    const ufrag = /^a=ice-ufrag:(\S+)/m.exec(t.pc.localDescription.sdp)?.[1];
    if (!ufrag) return;
    const batch = this.#out.splice(0).filter((c) => !this.#sent.has(c.candidate));
    if (batch.length === 0) return;
    try {
      await this.#o.client.trickle(
        this.#o.room,
        t.session,
        buildCandidateFrag({ ufrag, candidates: batch }),
        { ifMatch: t.etag },
      );
    } catch (e) {
      // A restart moved the ETag on: these candidates belong to the old ICE session anyway.
      this.#o.log.debug({ peer: this.#o.peer, err: errorMessage(e) }, "trickle failed");
    }
  }

  /** Remote candidates for a session (perhaps one our pending offer is about to create). */
  hold(session: string, candidates: FragCandidate[]): void {
    this.#held.hold(session, candidates);
  }

  /** Only this session's remote candidates matter from now on. */
  keepOnly(session: string): void {
    this.#held.keepOnly(session);
  }

  /** Apply the held remote candidates that fit the current session and remote description. */
  async apply(t: ExchangeTarget): Promise<void> {
    const remote = t.pc?.remoteDescription?.sdp;
    if (!t.pc || !remote || !t.session) return;
    const current = /^a=ice-ufrag:(\S+)/m.exec(remote)?.[1];
    const session = `${t.session} ${current ?? ""}`;
    if (session !== this.#appliedTo) {
      this.#appliedTo = session;
      this.#applied = sdpCandidates(remote).length;
    }
    const taken = this.#held.take(t.session, current);
    const room = Math.max(0, MAX_REMOTE_CANDIDATES - this.#applied);
    if (taken.length > room) this.#o.excess?.(taken.length - room);
    this.#applied += Math.min(room, taken.length);
    for (const c of taken.slice(0, room)) {
      await t.pc
        .addIceCandidate({
          candidate: c.candidate,
          sdpMid: c.sdpMid ?? "0",
          sdpMLineIndex: c.sdpMLineIndex,
        })
        .catch(() => {}); // a duplicate of one in the description, or of a closed generation
    }
  }

  /** A new PeerConnection: nothing gathered or sent by the old one matters. */
  reset(): void {
    this.#out = [];
    this.#sent.clear();
  }
}
