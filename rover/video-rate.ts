/**
 * The target bitrate for the encoder, from what the browser tells us over RTCP: its REMB
 * (receiver-estimated maximum bitrate, Chrome's delay-based estimate) and the loss fraction in its
 * receiver reports (a loss-based controller after GCC, draft-ietf-rmcat-gcc §6: loss < 2 %
 * grows 8 %/s, 2–10 % holds, > 10 % cuts by half the loss). Target = min of both, clamped.
 * Pure: the caller feeds reports with its clock; one instance per link.
 */
export interface RateBounds {
  minBps: number;
  maxBps: number;
  /** Where the loss-based estimate starts (default: the midpoint of the bounds). */
  startBps?: number;
}

const GROW_EVERY_MS = 1000;
/** A REMB this old no longer caps the target (the browser stopped sending them). */
const REMB_STALE_MS = 5000;

export class TargetBitrate {
  #b: RateBounds;
  #lossBased: number;
  #remb: { bps: number; at: number } | null = null;
  #grownAt = Number.NEGATIVE_INFINITY;
  lastLoss: number | null = null;

  constructor(b: RateBounds) {
    this.#b = b;
    this.#lossBased = b.startBps ?? Math.round((b.minBps + b.maxBps) / 2);
  }

  /** A receiver report's fraction lost (0..1) since the previous one. */
  onLoss(fraction: number, now: number): void {
    this.lastLoss = fraction;
    if (fraction > 0.1) this.#lossBased *= 1 - 0.5 * fraction;
    else if (fraction < 0.02 && now - this.#grownAt >= GROW_EVERY_MS) {
      this.#lossBased *= 1.08;
      this.#grownAt = now;
    }
    this.#lossBased = clamp(this.#lossBased, this.#b.minBps, this.#b.maxBps);
  }

  onRemb(bps: number, now: number): void {
    if (Number.isFinite(bps) && bps > 0) this.#remb = { bps, at: now };
  }

  /** The REMB in force (null: none, or stale). */
  remb(now: number): number | null {
    return this.#remb && now - this.#remb.at < REMB_STALE_MS ? this.#remb.bps : null;
  }

  target(now: number): number {
    const remb = this.remb(now);
    const t = remb === null ? this.#lossBased : Math.min(this.#lossBased, remb);
    return Math.round(clamp(t, this.#b.minBps, this.#b.maxBps));
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

/**
 * When a new target is worth telling the encoder: a change of 10 % or more, at most every 2 s
 * (encoders restart rate control on each change; a hook is a process start).
 */
export function shouldAnnounce(
  prev: { bps: number; at: number } | null,
  next: number,
  now: number,
): boolean {
  if (!prev) return true;
  if (now - prev.at < 2000) return false;
  return Math.abs(next - prev.bps) / prev.bps >= 0.1;
}
