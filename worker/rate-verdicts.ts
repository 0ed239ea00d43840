/**
 * The rate limiter's verdicts as this isolate saw them, so that a request need not wait for its
 * own check. It is counted on arrival and asked about once answered; a refusal applies to the
 * key's next requests for `refuseMs` (the 429's Retry-After) without asking the limiter again.
 * The limiter is a round trip per key (locally a Durable Object call, ~4 ms each on the offer and
 * the answer of a session); a client that sends one request at a time has its verdict long before
 * its next one. A key with `maxUnverified` checks unanswered waits for its own: a burst of parallel
 * requests gets at most that many past a limit it already crossed. No Workers types: a clock in.
 */
export interface VerdictOptions {
  /** How long a refused key stays refused here without asking the limiter again. */
  refuseMs: number;
  /** Unanswered checks of one key after which a request waits for its own verdict. */
  maxUnverified: number;
  /** Refused keys kept at most (expired ones are dropped first). */
  maxKeys?: number;
  /** Milliseconds now (default Date.now). */
  clock?: () => number;
}

export interface Check {
  /** Too many of this key's checks are unanswered: the request waits for its verdict. */
  mustWait: boolean;
  /**
   * Ask the limiter (`ask`: true when within); the verdict, once. A limiter that fails counts as
   * within (it is a guard). Called once per check, whatever became of the request.
   */
  settle(ask: () => Promise<boolean>): Promise<boolean>;
}

export class RateVerdicts {
  readonly #o: Required<VerdictOptions>;
  /** Refused keys, and until when (ms). */
  readonly #refused = new Map<string, number>();
  /** Checks of a key still unanswered. */
  readonly #pending = new Map<string, number>();

  constructor(o: VerdictOptions) {
    this.#o = { maxKeys: 10_000, clock: Date.now, ...o };
  }

  /** Until when `key` is refused (ms), or null when it may go on. */
  refusedUntil(key: string): number | null {
    const until = this.#refused.get(key);
    if (until === undefined) return null;
    if (until > this.#o.clock()) return until;
    this.#refused.delete(key);
    return null;
  }

  /** Count one request of `key` now; its round trip to the limiter is `settle`'s. */
  begin(key: string): Check {
    const pending = this.#pending.get(key) ?? 0;
    this.#pending.set(key, pending + 1);
    let verdict: Promise<boolean> | null = null;
    const settle = (ask: () => Promise<boolean>): Promise<boolean> => {
      verdict ??= ask()
        .then(
          (ok) => {
            if (!ok) this.#refuse(key);
            return ok;
          },
          () => true,
        )
        .finally(() => {
          const n = (this.#pending.get(key) ?? 1) - 1;
          if (n > 0) this.#pending.set(key, n);
          else this.#pending.delete(key);
        });
      return verdict;
    };
    return { mustWait: pending >= this.#o.maxUnverified, settle };
  }

  /** Checks unanswered, all keys (for tests and stats). */
  get unanswered(): number {
    let n = 0;
    for (const v of this.#pending.values()) n += v;
    return n;
  }

  #refuse(key: string): void {
    const now = this.#o.clock();
    this.#refused.delete(key); // re-inserted last: the oldest refusal goes first when full
    this.#refused.set(key, now + this.#o.refuseMs);
    if (this.#refused.size <= this.#o.maxKeys) return;
    for (const [k, until] of this.#refused) if (until <= now) this.#refused.delete(k);
    for (const k of this.#refused.keys()) {
      if (this.#refused.size <= this.#o.maxKeys) break;
      this.#refused.delete(k);
    }
  }
}
