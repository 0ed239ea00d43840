/**
 * What every lab test file starts with: whether the lab can run here, and, where it must (CI, or
 * root), one failing test saying why it could not, so that a missing lab is never a silent skip.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { labDown, labRequired, labUnavailableReason, labUp, startEdge, startTurn } from "./lab.ts";
import { waitEdge } from "./scenario.ts";

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

/**
 * Inside a lab file's describe: the lab, coturn and the lab edge (with LAB_SECRET) up before its
 * tests, torn down after. `onEdge` gets the edge's URL once it answers.
 */
export function labWithEdge(onEdge: (url: string) => void): void {
  beforeAll(async () => {
    labUp();
    startTurn();
    process.env.ROVERLINK_SECRET = LAB_SECRET;
    const url = startEdge();
    await waitEdge(url);
    onEdge(url);
  }, 120_000);

  afterAll(async () => {
    await labDown();
  }, 60_000);
}
