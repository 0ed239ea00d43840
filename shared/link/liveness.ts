/**
 * Traffic-driven liveness, sans-IO: what the link is waiting for from the peer, and how long it
 * may wait. The health policy (health.ts) owns one and asks it two questions: since when has the
 * link been waiting in vain (`waitingSince`), and what is the probe timeout (`pto`).
 *
 * While the application sends on `control`, its messages are the probes: each one is
 * acknowledged by the peer's reliable stream (reliable.ts, cumulative acks batched 50 ms), so the
 * oldest unacknowledged message says how long the peer has been silent to us. Health probes
 * count the same way while one is unanswered. Anything received from the peer proves the path
 * works at that moment. Nothing outstanding: nothing is expected, an idle link waits for nothing
 * and sends nothing.
 *
 * The probe timeout follows RFC 9002 §6.2.1: PTO = smoothed RTT + max(4 × RTT variation,
 * granularity), with a floor (`minMs`) and a value for a path with no sample yet (`initialMs`).
 * RTT samples come from acknowledgements (Karn: a message sent more than once gives none; the
 * sample includes the peer's ack batching, as a QUIC sample would before ack_delay is taken off),
 * from probe answers and from the ICE keepalive's round trips. Estimator: RFC 6298 §2.
 */

export interface PtoConfig {
  /** PTO floor (ms): below it a busy event loop or a scheduling hiccup looks like loss. */
  minMs: number;
  /** PTO while the path has no RTT sample yet (ms). */
  initialMs: number;
  /** Timer granularity in the RFC 9002 formula (ms). */
  granularityMs: number;
}

export const DEFAULT_PTO: Readonly<PtoConfig> = Object.freeze({
  minMs: 200,
  initialMs: 500,
  granularityMs: 1,
});

/** Smoothed RTT and variation (RFC 6298 §2), and the PTO they give. */
export class RttEstimator {
  srtt: number | null = null;
  rttvar: number | null = null;
  latest: number | null = null;

  sample(r: number): void {
    if (!(r >= 0) || !Number.isFinite(r)) return;
    if (this.srtt === null || this.rttvar === null) {
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      // RFC 6298 §2.3 (alpha 1/8, beta 1/4); RTTVAR first, with the old SRTT.
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.latest = r;
  }

  reset(): void {
    this.srtt = this.rttvar = this.latest = null;
  }

  pto(c: PtoConfig): number {
    if (this.srtt === null || this.rttvar === null) return Math.max(c.initialMs, c.minMs);
    return Math.max(this.srtt + Math.max(4 * this.rttvar, c.granularityMs), c.minMs);
  }
}

/**
 * The reliable messages sent and not yet acknowledged, by sequence number, with when each was
 * last sent. The stream numbers messages in order, so this is a queue: a deque sorted by sequence
 * number (parallel arrays from `#head`). A cumulative acknowledgement pops from the front, O(1) per
 * message; a Map cost a walk over every deleted entry at each acknowledgement (V8 keeps them
 * until it rehashes), the largest cost of the health policy in a burst.
 */
export class Outstanding {
  #seqs: number[] = [];
  /** When each was last sent. */
  #at: number[] = [];
  /** How many times each was sent. */
  #times: number[] = [];
  #head = 0;
  /** Lowest sequence number possibly held (the ack floor). */
  #floor = 0;

  get size(): number {
    return this.#seqs.length - this.#head;
  }

  /** A reliable message (or a resend of one) went out at `now`. */
  sent(seq: number, now: number): void {
    if (seq < this.#floor) return;
    const seqs = this.#seqs;
    const n = seqs.length;
    if (n === this.#head || seq > (seqs[n - 1] as number)) {
      seqs.push(seq);
      this.#at.push(now);
      this.#times.push(1);
      return;
    }
    // A resend (or a message reported out of order): find its place.
    let lo = this.#head;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((seqs[mid] as number) < seq) lo = mid + 1;
      else hi = mid;
    }
    if (seqs[lo] === seq) {
      this.#at[lo] = now;
      this.#times[lo] = (this.#times[lo] as number) + 1;
      return;
    }
    seqs.splice(lo, 0, seq);
    this.#at.splice(lo, 0, now);
    this.#times.splice(lo, 0, 1);
  }

  /**
   * Cumulative acknowledgement: everything below `next` arrived. Returns the RTT sample it gives
   * (from the highest message it newly acknowledges, if that one was sent once), or null.
   */
  acked(next: number, now: number): number | null {
    if (next <= this.#floor) return null;
    this.#floor = next;
    const seqs = this.#seqs;
    let h = this.#head;
    while (h < seqs.length && (seqs[h] as number) < next) h++;
    if (h === this.#head) return null;
    const newest = h - 1;
    const sample = this.#times[newest] === 1 ? now - (this.#at[newest] as number) : null;
    this.#head = h;
    if (h === seqs.length) this.#clear();
    else if (h >= 1024 && h * 2 >= seqs.length) {
      // Drop the acknowledged prefix once it is half the arrays: amortized O(1), memory bounded.
      this.#seqs = seqs.slice(h);
      this.#at = this.#at.slice(h);
      this.#times = this.#times.slice(h);
      this.#head = 0;
    }
    return sample;
  }

  /**
   * When the oldest message still waiting for its acknowledgement was (last) sent: the first in
   * sequence order (resends go out in order, after every first sending of what they cover).
   */
  oldest(): number | null {
    return this.#head < this.#seqs.length ? (this.#at[this.#head] as number) : null;
  }

  #clear(): void {
    this.#seqs = [];
    this.#at = [];
    this.#times = [];
    this.#head = 0;
  }

  /**
   * Everything unacknowledged went again, at `now`, under these sequence numbers (the stream may
   * have been renumbered from 0): nothing else is outstanding, and no resend is an RTT sample.
   */
  resent(seqs: readonly number[], now: number): void {
    this.#clear();
    this.#floor = 0;
    for (const s of [...new Set(seqs)].sort((a, b) => a - b)) {
      this.#seqs.push(s);
      this.#at.push(now);
      this.#times.push(2);
    }
  }
}
