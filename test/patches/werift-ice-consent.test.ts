/**
 * patches/werift+0.25.2.patch, patch 18 (docs/werift-patches.md): ICE consent freshness as the
 * link's one keepalive. The consent period is configurable (`iceConsentInterval`, at least 4 s
 * per RFC 7675 §5.1); with `iceConsentFromRemoteChecks`, the peer's authenticated Binding request
 * on the selected pair refreshes consent and defers our own check, so that the controlling end
 * (the offerer) checks for both; `onConsentCheck` reports each check.
 */
import { afterEach, expect, it } from "vitest";
import type { RTCPeerConnection } from "werift";
import { type Linked, linkedPair, sleep } from "./sctp-pair.ts";

const pairs: Linked[] = [];
afterEach(async () => {
  await Promise.all(pairs.splice(0).map((p) => p.close()));
});

interface Consenting {
  consentInterval: number;
  iceControlling: boolean;
  nominated?: { consentRequestsSent: number };
  onConsentCheck?: { subscribe(f: (outcome: string, rtt?: number) => void): unknown };
}

const ice = (pc: RTCPeerConnection): Consenting =>
  (pc as unknown as { iceTransports: { connection: Consenting }[] }).iceTransports[0]
    ?.connection as Consenting;

it("one end checks consent for both, at the configured period; each check is reported", async () => {
  const opts = { iceConsentInterval: 4, iceConsentFromRemoteChecks: true };
  const p = await linkedPair({ a: opts, b: opts });
  pairs.push(p);
  const [a, b] = [ice(p.a), ice(p.b)];
  expect(a.iceControlling).toBe(true);
  expect(a.consentInterval).toBe(4);
  const seen: Record<string, string[]> = { a: [], b: [] };
  a.onConsentCheck?.subscribe((o) => seen.a?.push(o));
  b.onConsentCheck?.subscribe((o) => seen.b?.push(o));
  const sent0 = [a.nominated?.consentRequestsSent ?? 0, b.nominated?.consentRequestsSent ?? 0];
  // Stock werift: both ends check every 4-6 s; here only the controlling end, every 3.2-4.8 s.
  await sleep(10_000);
  const sentA = (a.nominated?.consentRequestsSent ?? 0) - (sent0[0] ?? 0);
  const sentB = (b.nominated?.consentRequestsSent ?? 0) - (sent0[1] ?? 0);
  expect(sentA).toBeGreaterThanOrEqual(2);
  expect(sentB).toBe(0);
  expect(seen.a).toContain("answered");
  expect(seen.b).toContain("received");
  expect(seen.b?.length).toBe(seen.a?.filter((o) => o === "answered").length);
  // Consent held on both ends (b never checked, yet may send).
  p.dc.send("still here");
  await sleep(200);
  expect(p.received).toContain("still here");
}, 20_000);

it("the period cannot go under RFC 7675's 4 s", async () => {
  const p = await linkedPair({ a: { iceConsentInterval: 1 } });
  pairs.push(p);
  expect(ice(p.a).consentInterval).toBe(4);
});
