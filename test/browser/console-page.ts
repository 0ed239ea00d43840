/**
 * The console's page as the browser tests drive it: a link's panel, its chat, what came in.
 */
import type { Page } from "playwright-core";
import { expect } from "vitest";

/** The panel of the link to `peer`. */
export function link(page: Page, peer: string) {
  return page.locator(`section[data-link="${peer}"]`);
}

/** Send `text` on the link to `peer` from its chat box. */
export async function sendChat(page: Page, peer: string, text: string): Promise<void> {
  await link(page, peer).getByLabel("Chat").fill(text);
  await link(page, peer).getByRole("button", { name: "Send" }).click();
}

/** The texts received so far on the link to `peer` (its message log's incoming lines). */
export function received(page: Page, peer: string): Promise<string[]> {
  return link(page, peer)
    .getByRole("log", { name: `Messages with ${peer}` })
    .locator("li.in .text")
    .allTextContents();
}

/** Send `text` to an echoing `peer` as `self`, and wait for it to come back. */
export async function echoedBack(page: Page, peer: string, self: string, text: string) {
  await sendChat(page, peer, text);
  await expect.poll(() => received(page, peer), { timeout: 15_000 }).toContain(`${self}: ${text}`);
}
