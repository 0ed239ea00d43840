/**
 * HTTP to the edge through undici: keep-alive for the event polls, bounded connect/header
 * timeouts, and a fresh connection pool after a network change (a kept-alive socket that went
 * out through a dead uplink hangs silently).
 */
import { Agent, fetch as undiciFetch } from "undici";
import type { FetchFn } from "../shared/client.ts";

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

  /** Drop every pooled connection (network changed); later requests connect afresh. */
  reset(): void {
    const old = this.#dispatcher;
    this.#dispatcher = EdgeHttp.#make();
    // Requests still on the old pool fail (their callers retry on the new one); destroy itself
    // only rejects for a pool already destroyed, which nothing else does.
    void old.destroy().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }

  /** Cut every connection now, requests in flight included (stopping: nothing more is needed). */
  async destroy(): Promise<void> {
    await this.#dispatcher.destroy();
  }
}
