/**
 * Health probes on `telemetry`: `{"rlp":"ping","i":<id>}` answered by `{"rlp":"pong","i":<id>}`.
 * The prefix tells them from application telemetry; anything that starts with it must decode,
 * and decoding never trusts the bytes (a remote peer can send anything).
 */

export const PROBE_PREFIX = '{"rlp":';

export interface Probe {
  rlp: "ping" | "pong";
  i: number;
}

export class ProbeError extends Error {}

export function encodeProbe(p: Probe): string {
  return `${PROBE_PREFIX}"${p.rlp}","i":${p.i}}`;
}

/** True when the text claims to be a probe (it must then decode). */
export function isProbe(text: string): boolean {
  return text.startsWith(PROBE_PREFIX);
}

/** Decode a probe; throws ProbeError on anything but a well-formed one. */
export function decodeProbe(text: string): Probe {
  // Ours are ~30 bytes: a long one is garbage, and not worth parsing.
  if (text.length > 64) throw new ProbeError("probe too long");
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new ProbeError("probe is not valid JSON");
  }
  const p = v as Record<string, unknown> | null;
  if (
    typeof p !== "object" ||
    p === null ||
    (p.rlp !== "ping" && p.rlp !== "pong") ||
    typeof p.i !== "number" ||
    !Number.isSafeInteger(p.i) ||
    p.i < 0
  )
    throw new ProbeError("bad probe");
  return { rlp: p.rlp, i: p.i };
}
