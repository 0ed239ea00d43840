/**
 * Health probes on `telemetry` (shared/link/probe-wire.ts): the other side's pings are answered
 * (within the conduct's pong rate), answers to ours go to the health policy. Pure.
 */
import type { PeerConduct, Violation } from "../../shared/link/conduct.ts";
import { decodeProbe, encodeProbe, isProbe } from "../../shared/link/probe-wire.ts";

export type ProbeAction =
  | { type: "reply"; text: string }
  | { type: "answered"; id: number }
  | { type: "violation"; kind: Violation; detail: string };

/** What to do with text that arrived on `telemetry`; null when it is application telemetry. */
export function onTelemetryText(
  text: string,
  now: number,
  conduct: PeerConduct,
): ProbeAction | null {
  if (!isProbe(text)) return null;
  let p: ReturnType<typeof decodeProbe>;
  try {
    p = decodeProbe(text);
  } catch (e) {
    return { type: "violation", kind: "malformed-probe", detail: (e as Error).message };
  }
  if (p.rlp === "pong") return { type: "answered", id: p.i };
  if (!conduct.allowPong(now))
    return { type: "violation", kind: "probe-flood", detail: "ping rate" };
  return { type: "reply", text: encodeProbe({ rlp: "pong", i: p.i }) };
}

/** Our probe number `id`. */
export function ping(id: number): string {
  return encodeProbe({ rlp: "ping", i: id });
}
