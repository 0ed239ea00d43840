/**
 * Link profiles: the defaults that must differ between a metered cellular uplink and a LAN.
 * `cellular` (the default) is quiet when idle: no background probes, liveness from the traffic,
 * one ICE keepalive every 20 s (under the ~25 s a carrier NAT keeps an idle UDP mapping).
 * `lan` spends bytes for faster detection on an idle link: a probe every second (what roverlink
 * did before 2026-12-05) and the standard RFC 7675 consent cadence (5 s). docs/link-health.md.
 */
import { DEFAULT_HEALTH, type HealthConfig } from "./health.ts";

export const LINK_PROFILES = ["cellular", "lan"] as const;
export type LinkProfile = (typeof LINK_PROFILES)[number];

export function isLinkProfile(s: string): s is LinkProfile {
  return (LINK_PROFILES as readonly string[]).includes(s);
}

const PROFILES: Record<LinkProfile, Readonly<HealthConfig>> = {
  cellular: DEFAULT_HEALTH,
  lan: Object.freeze({ ...DEFAULT_HEALTH, probeIdleMs: 1_000, keepaliveMs: 5_000 }),
};

/** The health policy's configuration for a profile, with overrides on top. */
export function profileHealth(
  profile: LinkProfile,
  overrides: Partial<HealthConfig> = {},
): HealthConfig {
  return { ...PROFILES[profile], ...overrides };
}
