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
  /** The local address connections are bound to (null: the routing table picks). */
  #local: string | null = null;

  constructor() {
    this.#dispatcher = EdgeHttp.#make(null);
  }

  static #make(localAddress: string | null): Agent {
    return new Agent({
      keepAliveTimeout: 30_000,
      connectTimeout: 5_000,
      // Off: every request through here is bounded by the edge client itself (its request
      // timeout covers headers and body; an SSE stream has its idle timer). undici's own
      // header/body timeouts run on its "fast timers", which tick every 500 ms while any is
      // armed: with the event stream always open, that was 2 wake-ups a second on an idle rover.
      headersTimeout: 0,
      bodyTimeout: 0,
      // A client option (undici overrides a `connect.localAddress` with it, null included).
      ...(localAddress ? { localAddress } : {}),
    });
  }

  /** Where connections to the edge come from now (null: the routing table decides). */
  get localAddress(): string | null {
    return this.#local;
  }

  /**
   * Connect from this local address (an uplink's), or from wherever the routing table says (null).
   * A rover without CAP_NET_ADMIN cannot move its default route off a silently dead uplink; where
   * the system routes by source address, binding to another uplink's address is its way out to
   * the edge. Changing it starts a fresh pool, as reset() does. True when it changed.
   */
  bindTo(address: string | null): boolean {
    if (address === this.#local) return false;
    this.#local = address;
    this.reset();
    return true;
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
   * a dead uplink and is destroyed. `graceMs` 0: cut them now (stopping while joining).
   */
  reset(graceMs = RESET_GRACE_MS): void {
    const old = this.#dispatcher;
    this.#dispatcher = EdgeHttp.#make(this.#local);
    // Failures of a pool being retired change nothing: its replacement already serves.
    if (graceMs <= 0) {
      void old.destroy().catch(() => {});
      return;
    }
    void old.close().catch(() => {});
    setTimeout(() => void old.destroy().catch(() => {}), graceMs).unref();
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }

  /** Cut every connection now, requests in flight included (stopping: nothing more is needed). */
  async destroy(): Promise<void> {
    await this.#dispatcher.destroy();
  }
}
