import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

// Tests talk to loopback and lab namespaces only: keep wrangler/miniflare from fetching Request.cf
// data or sending metrics (inherited by every wrangler/workerd the tests start).
process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";
process.env.WRANGLER_SEND_METRICS = "false";
// Rovers the tests spawn keep durable state (outbox, identity) under $XDG_STATE_HOME by default:
// a fresh directory per run, so that a run never writes to the user's ~/.local/state, and two runs
// on one machine (two checkouts) never share an outbox file ("database is locked").
const stateHome = mkdtempSync(join(tmpdir(), "roverlink-test-state-"));
process.env.XDG_STATE_HOME = stateHome;
process.on("exit", () => rmSync(stateHome, { recursive: true, force: true }));

// Projects: the edge runs inside workerd, the rest on Node (browser tests drive Chromium), the lab only as root.
export default defineConfig({
  test: {
    // At least two files at a time, even on a 2-core machine (Vitest's default there is one): most
    // of the suite waits on timers, links and the lab rather than on the CPU, and the lab files run
    // side by side, each in a lab of its own (test/lab/lab.ts). The edge, node and lab projects share
    // this setting so that they form one group: a long lab file overlaps the rest of the suite.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                ROVERLINK_SECRET: "test-secret-test-secret-test-secret",
                PRESENCE_TTL_S: "30",
                MAX_PEERS_PER_ROOM: "4",
                NEARBY_RADIUS: "5",
                TURN_URLS: "turn:127.0.0.1:3478?transport=udp,turn:127.0.0.1:3478?transport=tcp",
                TURN_SECRET: "turn-secret-for-tests",
                TURN_TTL_S: "600",
                // Small enough for test/edge/events.test.ts to overflow cheaply.
                MAX_EVENTS_PER_PEER: "150",
                MAX_EVENTS_PER_SENDER: "60",
                // test/edge/caps.test.ts waits for SSE acknowledgements (60 s by default).
                SSE_ACK_DELAY_S: "2",
              },
              // A small real limiter for test/edge/limits.test.ts to stand in for RATE_LIMITER_ADDR.
              ratelimits: {
                SMALL_LIMITER: { namespace_id: "9001", simple: { limit: 20, period: 60 } },
              },
            },
          }),
        ],
        // Files share one workerd (each test uses fresh rooms and subjects): ~9 s less start-up.
        test: { name: "edge", include: ["test/edge/**/*.test.ts"], isolate: false },
      },
      {
        test: {
          name: "node",
          include: [
            "test/shared/**/*.test.ts",
            "test/rover/**/*.test.ts",
            "test/integration/**/*.test.ts",
            "test/patches/**/*.test.ts",
            "test/cli/**/*.test.ts",
          ],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        // Browser console: Debian's Chromium driven by playwright-core against a local
        // edge. Heavy (a browser + wrangler dev per file): one file at a time.
        test: {
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // A page's next state (signed in, a row drawn) within 10 s, not Vitest's 1 s: on a loaded
          // 2-core machine, sign-in alone took longer than 1 s and failed tests that were right.
          expect: { poll: { timeout: 10_000 } },
          fileParallelism: false,
        },
      },
      {
        // Network-namespace lab (docs/lab.md): needs root, iproute2, iptables, coturn. Each worker
        // builds its own lab (RL_LAB_NAME rl<worker>), so lab files run in parallel.
        test: {
          name: "lab",
          include: ["test/lab/**/*.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
