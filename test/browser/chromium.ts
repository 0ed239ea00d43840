/**
 * Debian's Chromium (never a downloaded one) under playwright-core, set up so that WebRTC stays on
 * this machine: no STUN (the console passes the edge's empty iceServers), no mDNS host-name
 * candidates (their resolution would multicast), loopback candidates allowed, fake audio device.
 */
import { existsSync } from "node:fs";
import { type Browser, type BrowserContext, chromium } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  // WebRTC on loopback: gather 127.0.0.1 candidates and do not hide addresses behind mDNS names.
  "--allow-loopback-in-peer-connection",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
  "--autoplay-policy=no-user-gesture-required",
  // Home/End on a scrolled pane jump rather than animate: under a loaded CI machine a log pane
  // stayed at scrollTop 20 for 10 s after Home (a test waits for 0), never seen on a quiet one.
  "--disable-smooth-scrolling",
];

/**
 * Launch Chromium. playwright-core gives every launch a fresh temporary --user-data-dir and
 * deletes it on close.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
}

/**
 * Test instrumentation, not the app's: the context's pages keep every RTCPeerConnection they make
 * in `window.madePcs`, newest last, so that a test can close one under the app (as a crashed
 * network stack would) or count them.
 */
export async function recordPeerConnections(ctx: BrowserContext): Promise<void> {
  await ctx.addInitScript(() => {
    const Native = window.RTCPeerConnection;
    const made: RTCPeerConnection[] = [];
    (window as unknown as { madePcs: RTCPeerConnection[] }).madePcs = made;
    window.RTCPeerConnection = class extends Native {
      constructor(config?: RTCConfiguration) {
        super(config);
        made.push(this);
      }
    } as typeof RTCPeerConnection;
  });
}
