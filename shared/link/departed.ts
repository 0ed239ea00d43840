/**
 * Links to peers the edge no longer lists, sans-IO. A peer's presence can expire while the path
 * between us works (its uplink to the edge failed, or the edge had an outage): its link is kept,
 * but only for a bounded grace, and only while it is up. A peer that left on purpose, was
 * removed, or whose token expired loses its link at once: a link lives only as long as the peer
 * is authorized. Events and a clock in, links to drop out.
 */

export interface DepartedConfig {
  /** A kept link that goes down is dropped after this long down (ms). */
  downGraceMs: number;
  /** A kept link is dropped this long after the peer left, up or not (ms). */
  maxKeepMs: number;
}

export const DEFAULT_DEPARTED: Readonly<DepartedConfig> = Object.freeze({
  downGraceMs: 10_000,
  maxKeepMs: 120_000,
});

/** Reasons (`peer-left`) after which a live link may be kept for the grace. */
const KEEPABLE = new Set(["expired"]);

export class DepartedLinks {
  readonly config: DepartedConfig;
  #kept = new Map<string, { leftAt: number; downSince: number | null }>();

  constructor(config: Partial<DepartedConfig> = {}) {
    this.config = { ...DEFAULT_DEPARTED, ...config };
  }

  /** The peer left (`reason` from `peer-left`): keep its link for now, or drop it. */
  left(peer: string, reason: string, linkUp: boolean, now: number): "keep" | "drop" {
    if (!linkUp || !KEEPABLE.has(reason)) {
      this.#kept.delete(peer);
      return "drop";
    }
    this.#kept.set(peer, { leftAt: now, downSince: null });
    return "keep";
  }

  /** The peer is back at the edge: its link is an ordinary one again. */
  returned(peer: string): void {
    this.#kept.delete(peer);
  }

  /** The link is gone anyway. */
  forget(peer: string): void {
    this.#kept.delete(peer);
  }

  /** Whether any link is kept (the agent sweeps often only then). */
  get keeping(): boolean {
    return this.#kept.size > 0;
  }

  isKept(peer: string): boolean {
    return this.#kept.has(peer);
  }

  /** Kept links to drop now; `isUp` tells each link's state. */
  sweep(now: number, isUp: (peer: string) => boolean): string[] {
    const drop: string[] = [];
    for (const [peer, k] of this.#kept) {
      const up = isUp(peer);
      if (up) k.downSince = null;
      else k.downSince ??= now;
      const downTooLong = k.downSince !== null && now - k.downSince >= this.config.downGraceMs;
      if (downTooLong || now - k.leftAt >= this.config.maxKeepMs) {
        this.#kept.delete(peer);
        drop.push(peer);
      }
    }
    return drop;
  }
}
