/**
 * patches/werift+0.25.2.patch, patch 31 (docs/werift-patches.md): every ICE restart starts
 * another check-scheduling loop (`Connection.connect()`: `for (;;) { ...; if
 * (!this.schedulingChecks()) break; await timers.setTimeout(20); }`), and stock werift never
 * ended the loops of earlier ICE sessions: `restart()` clears the check list and `checkListDone`,
 * so an old loop's `schedulingChecks()` kept returning true until a later session completed or
 * the connection closed. A peer that restarts ICE again and again without completing left one
 * 50 Hz poller per restart (found by the hostile-peer audit, 2026-12-07: 400 PATCH restarts
 * against a rover held 490 timers). Real PeerConnections on loopback UDP, negotiated in memory;
 * the restarts' remote credentials are made up, so none of their checks can succeed (as with a
 * hostile peer).
 */
import { randomBytes } from "node:crypto";
import { afterEach, expect, it } from "vitest";
import { withIceCredentials } from "../../shared/link/sdp-edit.ts";
import { type Linked, linkedPair, sleep } from "./sctp-pair.ts";

let pair: Linked | null = null;
afterEach(async () => {
  await pair?.close();
  pair = null;
});

const timeouts = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

type Polled = { schedulingChecks(): boolean };

it("keeps one check-scheduling loop however often the peer restarts ICE", async () => {
  pair = await linkedPair();
  const { b } = pair;
  await sleep(300);
  const before = timeouts();
  // b answers 50 restart offers (as the rover answers a PATCH restart: the remote description
  // with new credentials); no check with those credentials ever comes.
  const remote = (b.remoteDescription as NonNullable<typeof b.remoteDescription>).sdp;
  for (let i = 0; i < 50; i++) {
    const sdp = withIceCredentials(remote, {
      ufrag: randomBytes(6).toString("hex"),
      pwd: randomBytes(16).toString("hex"),
    });
    await b.setRemoteDescription({ type: "offer", sdp });
    await b.setLocalDescription(await b.createAnswer());
  }
  await sleep(500);
  // How often the check list is polled in one second: one loop polls ~50 times.
  const ice = (b as unknown as { iceTransports: { connection: Polled }[] }).iceTransports[0]
    ?.connection as Polled;
  let polls = 0;
  const poll = ice.schedulingChecks.bind(ice);
  ice.schedulingChecks = () => {
    polls++;
    return poll();
  };
  await sleep(1_000);
  const held = timeouts() - before;
  // The premise: the check list is polled at all (the first loop still runs).
  expect(polls).toBeGreaterThan(0);
  expect(held, `timers held after 50 restarts (${polls} check-list polls in 1 s)`).toBeLessThan(10);
  expect(polls, "check-list polls in 1 s").toBeLessThan(150);
});
