/**
 * HTTP to the edge through undici: keep-alive for the event polls, bounded connect/header
 * timeouts, and a fresh connection pool after a network change (a kept-alive socket that went
 * out through a dead uplink hangs silently).
 */
import { Agent, fetch as undiciFetch } from "undici";
import type { FetchFn } from "../shared/client.ts";

/** How long requests under way on a replaced pool may still finish (ms). */
const RESET_GRACE_MS = 1_000;

export class EdgeHttp {
  #dispatcher: Agent;

  constructor() {
    this.#dispatcher = EdgeHttp.#make();
  }

  static #make(): Agent {
    return new Agent({
      keepAliveTimeout: 30_000,
      connectTimeout: 5_000,
      // Long-polls hold up to 25 s; the client's own timeout covers the rest.
      headersTimeout: 40_000,
      bodyTimeout: 40_000,
    });
  }

  readonly fetch: FetchFn = (url, init) =>
    undiciFetch(url, {
      ...(init as Parameters<typeof undiciFetch>[1]),
      dispatcher: this.#dispatcher,
    }) as unknown as Promise<Response>;

  /**
   * The network changed: later requests connect afresh. Requests under way on the old pool get a
   * short grace to finish (one sent a moment ago, such as a restart offer, most likely went out
   * on the new path: killing it would mean a second ICE restart); whatever still hangs then rode
   * a dead uplink and is destroyed.
   */
  reset(): void {
    const old = this.#dispatcher;
    this.#dispatcher = EdgeHttp.#make();
    // Failures of a pool being retired change nothing: its replacement already serves.
    void old.close().catch(() => {});
    setTimeout(() => void old.destroy().catch(() => {}), RESET_GRACE_MS).unref();
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }

  /** Cut every connection now, requests in flight included (stopping: nothing more is needed). */
  async destroy(): Promise<void> {
    await this.#dispatcher.destroy();
  }
}
