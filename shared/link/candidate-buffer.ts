/**
 * Remote ICE candidates held until the description they belong to is applied. Trickled
 * candidates can overtake the description: the answerer's candidates reach the offerer while
 * its POST still waits for the answer, and after an ICE restart the new generation's candidates
 * may come before the new description. They are held per session and ufrag, and handed out once
 * a description with that ufrag is applied to that session. Pure: no werift, no timers.
 */
import type { FragCandidate } from "../sdpfrag.ts";

interface Held {
  session: string;
  candidate: FragCandidate;
}

export class CandidateBuffer {
  readonly #max: number;
  #held: Held[] = [];
  /** Candidates given up because the buffer was full (the oldest go first). */
  dropped = 0;

  constructor(max = 256) {
    this.#max = max;
  }

  get size(): number {
    return this.#held.length;
  }

  /** Hold candidates of `session` (each carries its ufrag in `usernameFragment`, if known). */
  hold(session: string, candidates: readonly FragCandidate[]): void {
    for (const candidate of candidates) this.#held.push({ session, candidate });
    const over = this.#held.length - this.#max;
    if (over > 0) {
      this.#held.splice(0, over);
      this.dropped += over;
    }
  }

  /**
   * Take (and forget) the candidates that fit a remote description with `ufrag` on `session`:
   * same session, and the same ufrag or none named. Others stay held, in arrival order.
   */
  take(session: string, ufrag: string | undefined): FragCandidate[] {
    const out: FragCandidate[] = [];
    const keep: Held[] = [];
    for (const h of this.#held) {
      const u = h.candidate.usernameFragment;
      if (h.session === session && (u === undefined || u === ufrag)) out.push(h.candidate);
      else keep.push(h);
    }
    this.#held = keep;
    return out;
  }

  /** Forget everything not of `session` (a new session replaced the old ones). */
  keepOnly(session: string): void {
    this.#held = this.#held.filter((h) => h.session === session);
  }

  clear(): void {
    this.#held = [];
  }
}
