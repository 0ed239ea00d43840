/**
 * Who offers on a pair of peers, so that each pair has one link. One rule everywhere: the smaller
 * peer id offers (string order). It settles `--connect-nearby` (only the smaller id connects) and
 * crossed offers (both offered at once: the smaller id's offer wins and the other side declines
 * its own and answers).
 */

/** True when `self` is the side that offers to `peer`. */
export function offersTo(self: string, peer: string): boolean {
  return self < peer;
}

/**
 * An offer from `peer` crossed ours (we are offering and have a session of our own, or one
 * pending): keep ours (`decline` theirs) or yield to theirs (`answer`, dropping our attempt).
 */
export function crossedOffer(self: string, peer: string): "decline" | "answer" {
  return offersTo(self, peer) ? "decline" : "answer";
}
