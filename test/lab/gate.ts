/**
 * What every lab test file starts with: whether the lab can run here, and, where it must (CI, or
 * root), one failing test saying why it could not, so that a missing lab is never a silent skip.
 */
import { expect, it } from "vitest";
import { labRequired, labUnavailableReason } from "./lab.ts";

/** The lab edge's token secret (the lab's files mint their tokens with it). */
export const LAB_SECRET = "lab-edge-secret-lab-edge-secret-lab";

/** Why the lab cannot run (undefined: it can), and a note for the describe's title. */
export function labGate(): { unavailable: string | undefined; note: string } {
  const unavailable = labUnavailableReason();
  if (unavailable && labRequired()) {
    it("the lab can run here", () => {
      expect.fail(`the network lab was not run: ${unavailable}`);
    });
  }
  return { unavailable, note: unavailable ? ` [NOT RUN: ${unavailable}]` : "" };
}
