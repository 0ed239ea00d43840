// The backup-path rules of the health policy (shared/link/health.ts): switching to a validated
// backup pair without signaling instead of restarting. Fake clock, no sockets.
import { describe, expect, it } from "vitest";
import { type Decision, LinkHealth } from "../../../shared/link/health.ts";

type At = { at: number; d: Decision };

/** Drive poll at every deadline up to `until`, collecting decisions (a fake clock). */
function run(h: LinkHealth, from: number, until: number, answered = false): At[] {
  const out: At[] = [];
  let now = from;
  for (let guard = 0; guard < 10_000; guard++) {
    for (const d of h.poll(now)) {
      out.push({ at: now, d });
      // A live peer: every probe is answered at once.
      if (answered && d.type === "probe") h.onReceive(now);
    }
    const next = h.nextDeadline();
    if (next === undefined || next > until) break;
    expect(next).toBeGreaterThan(now);
    now = next;
  }
  return out;
}

/** Switches, restarts and rebuilds as "kind:reason[>to]@time". */
const moves = (ds: At[]) =>
  ds
    .filter((x) => ["switch", "restart", "rebuild"].includes(x.d.type))
    .map((x) => {
      const d = x.d as { type: string; reason: string; to?: string };
      return `${d.type}:${d.reason}${d.to ? `>${d.to}` : ""}@${x.at}`;
    });

/** Up on wifi (a socket bound to it), cell present; a backup `cell-1` validated at `at`. */
function upWithBackup(at = 0, config = {}) {
  const h = new LinkHealth(config, 0);
  h.onOpen(0);
  h.onUplinks(0, { active: "wifi", preferred: "wifi", present: ["wifi", "cell"] });
  h.onBackup(at, "cell-1", "cell", true);
  return h;
}

describe("LinkHealth: backup paths", () => {
  it("the active uplink gone: switches to the validated backup at once (no restart, no edge)", () => {
    const h = upWithBackup();
    h.onUplinks(500, { active: "wifi", preferred: "cell", present: ["cell"] });
    h.onNetworkChange(500);
    expect(moves(run(h, 500, 520))).toEqual(["switch:uplink-gone>cell-1@500"]);
    expect(h.snapshot(500).switches).toBe(1);
  });

  it("the active uplink gone and no validated backup: restarts as before", () => {
    const h = new LinkHealth({}, 0);
    h.onOpen(0);
    h.onUplinks(0, { active: "wifi", preferred: "wifi", present: ["wifi", "cell"] });
    h.onUplinks(500, { active: "wifi", preferred: "cell", present: ["cell"] });
    expect(moves(run(h, 500, 520))).toEqual(["restart:network-change@500"]);
  });

  it("a requested restart restarts even with a valid backup, and keeps its reason (turn-credentials)", () => {
    // New TURN credentials are used only by a new gathering: a switch would keep the old allocation.
    const h = upWithBackup();
    h.requestRestart(500, "turn-credentials");
    expect(moves(run(h, 500, 520))).toEqual(["restart:turn-credentials@500"]);
    const g = upWithBackup();
    g.requestRestart(500);
    expect(moves(run(g, 500, 520))).toEqual(["restart:manual@500"]);
  });

  it("a backup on the active uplink is no way out", () => {
    const h = new LinkHealth({}, 0);
    h.onOpen(0);
    h.onUplinks(0, { active: "wifi", preferred: "wifi", present: ["wifi", "cell"] });
    h.onBackup(0, "wifi-2", "wifi", true);
    h.onUplinks(500, { active: "wifi", preferred: "cell", present: ["cell"] });
    expect(moves(run(h, 500, 520))).toEqual(["restart:network-change@500"]);
  });

  it("silence with a validated backup: switches after backupSilenceMs of sending unheard, not silenceMs", () => {
    const h = upWithBackup(0, { backupSilenceMs: 600, silenceMs: 1_500 });
    h.onReceive(1_000);
    h.onSend(1_010);
    h.onSend(1_030); // still sending, nothing back
    expect(moves(run(h, 1_030, 2_000))).toEqual(["switch:silence>cell-1@1610"]);
  });

  it("sending only what the peer does not acknowledge (telemetry) is not silence: no switch", () => {
    // Seen with two agents on loopback, telemetry one way at 2 msg/s: a switch every ~2.5 s.
    const h = upWithBackup(0, { backupSilenceMs: 600, silenceMs: 1_500 });
    run(h, 0, 1_000, true); // the link's first probe
    h.onReceive(1_000);
    const ds: At[] = [];
    for (let t = 1_010; t < 6_000; t += 500) {
      h.onSend(t, false);
      ds.push(...run(h, t, t + 499, true));
    }
    expect(moves(ds)).toEqual([]);
    // Now and then one probe checks the path (answered here): 2.5 s after the first unheard send.
    expect(ds.filter((x) => x.d.type === "probe").map((x) => x.at)).toEqual([3_510]);
    // Still busy for the backup checks' cadence.
    expect(h.backupCheckInterval(6_000, 2_500)).toBe(2_500);
  });

  it("telemetry one way into a blackhole: the check's probe goes unanswered and the link switches", () => {
    const h = upWithBackup(0, { backupSilenceMs: 600, silenceMs: 1_500 });
    run(h, 0, 1_000, true); // the link's first probe
    h.onReceive(1_000);
    const ds: At[] = [];
    let id = 0;
    for (let t = 1_010; t < 6_000; t += 500) {
      h.onSend(t, false);
      for (const x of run(h, t, t + 499)) {
        ds.push(x);
        if (x.d.type === "probe") h.onProbeSent(++id, x.at); // it goes out, and is never answered
      }
    }
    const probe = ds.find((x) => x.d.type === "probe")?.at;
    expect(probe).toBe(3_510);
    // backupSilenceMs after the unanswered probe, not at the keepalive (20 s). (The test's
    // backup path is as deaf, so what follows it is no-delivery.)
    expect(moves(ds)[0]).toBe("switch:silence>cell-1@4110");
  });

  it("following the peer's switch (werift renominated) restarts the silence clock: no switch of our own off the peer's new path", () => {
    const h = upWithBackup(0, { backupSilenceMs: 600, silenceMs: 1_500 });
    h.onBackup(0, "wifi-2", "wifi", true);
    h.onReceive(1_000);
    h.onSend(1_010);
    h.onSend(1_030);
    // 590 ms unheard, then werift follows the peer onto another pair (not a switch of ours).
    expect(moves(run(h, 1_030, 1_600))).toEqual([]);
    h.onSwitched(1_600, "wifi-2", "wifi");
    h.onSend(1_605);
    // Without the reset our silence switch would fire at 1 610, 10 ms after following.
    expect(moves(run(h, 1_605, 2_150))).toEqual([]);
    h.onReceive(2_150); // the peer's path works
    expect(moves(run(h, 2_150, 4_000, true))).toEqual([]);
  });

  it("after leaving a silent uplink, its other backups are not switched back to (a blackhole takes them all)", () => {
    const h = upWithBackup(0, { backupSilenceMs: 600, preferHoldMs: 2_000 });
    h.onBackup(0, "wifi-2", "wifi", true);
    h.onReceive(5_000);
    h.onSend(5_010);
    const ds = run(h, 5_010, 5_700);
    expect(moves(ds)).toEqual(["switch:silence>cell-1@5610"]);
    h.onSwitched(5_610, "cell-1", "cell");
    h.onReceive(5_650); // the new path works
    // wifi is still the preferred uplink, and wifi-2 had been valid for long: no move back.
    expect(moves(run(h, 5_700, 9_000, true))).toEqual([]);
  });

  it("a quiet link that sends nothing is not silent (idle links do not switch)", () => {
    const h = upWithBackup(0, { backupSilenceMs: 600, silenceMs: 1_500, probeIdleMs: 10_000 });
    h.onReceive(1_000);
    expect(moves(run(h, 1_000, 2_400))).toEqual([]);
  });

  it("a lost backup is not used: an unacknowledged message restarts the link (silence)", () => {
    const h = upWithBackup(0, { backupSilenceMs: 600, silenceMs: 1_500 });
    h.onBackup(100, "cell-1", "cell", false);
    h.onReceive(1_000);
    h.onSend(1_010);
    h.onReliableSent(1, 1_010);
    // No RTT sample yet: PTO 500 ms, dead after two (liveness.ts); no switch, the backup is gone.
    expect(moves(run(h, 1_010, 2_600))).toEqual(["restart:silence@2010"]);
  });

  it("a switch that delivers nothing falls back: another backup, else a restart (no-delivery)", () => {
    const h = upWithBackup(0, { verifyMinMs: 400 });
    h.onUplinks(500, { active: "wifi", preferred: "cell", present: ["cell"] });
    expect(moves(run(h, 500, 500))).toEqual(["switch:uplink-gone>cell-1@500"]);
    h.onSwitched(500, "cell-1", "cell");
    expect(moves(run(h, 501, 1_000))).toEqual(["restart:no-delivery@900"]);
  });

  it("anything heard after a switch ends its check", () => {
    const h = upWithBackup(0, { verifyMinMs: 400 });
    h.onUplinks(500, { active: "wifi", preferred: "cell", present: ["cell"] });
    run(h, 500, 500);
    h.onSwitched(500, "cell-1", "cell");
    h.onReceive(540);
    expect(moves(run(h, 540, 1_400))).toEqual([]);
  });

  it("the peer moved to another pair: the link follows it (the controlling side renominates)", () => {
    const h = upWithBackup();
    h.onPeerMoved(300, "peer-pair");
    expect(moves(run(h, 300, 300))).toEqual(["switch:peer-moved>peer-pair@300"]);
  });

  it("followed off our uplink by the peer (its silence): that uplink's other backups wait for a new check before `preferred` moves back", () => {
    // Seen in the lab (wifi blackholed): the peer went quiet first and moved to our cell; we
    // followed, then moved back to wifi as `preferred` 6 ms later, onto the dead uplink.
    const h = upWithBackup(0, { preferHoldMs: 2_000 });
    h.onBackup(0, "wifi-2", "wifi", true);
    h.onReceive(5_000);
    h.onPeerMoved(5_000, "cell-1");
    expect(moves(run(h, 5_000, 5_000))).toEqual(["switch:peer-moved>cell-1@5000"]);
    h.onSwitched(5_000, "cell-1", "cell");
    h.onReceive(5_050);
    expect(moves(run(h, 5_050, 9_000, true))).toEqual([]);
    // A check over wifi passes again: the planned move waits its hold from then.
    h.onBackup(9_000, "wifi-2", "wifi", true);
    expect(moves(run(h, 9_000, 11_000, true))).toEqual(["switch:preferred>wifi-2@11000"]);
  });

  it("the same when werift followed the peer's renomination on its own (onSwitched, not ours)", () => {
    const h = upWithBackup(0, { preferHoldMs: 2_000 });
    h.onBackup(0, "wifi-2", "wifi", true);
    h.onReceive(5_000);
    h.onSwitched(5_000, "cell-1", "cell");
    h.onReceive(5_050);
    expect(moves(run(h, 5_050, 9_000, true))).toEqual([]);
  });

  it("a peer that moves within our uplink (its own network changed) leaves our other backups usable", () => {
    const h = upWithBackup(0, { preferHoldMs: 2_000 });
    h.onBackup(0, "wifi-2", "wifi", true);
    h.onBackup(0, "wifi-3", "wifi", true);
    h.onReceive(5_000);
    h.onPeerMoved(5_000, "wifi-3");
    expect(moves(run(h, 5_000, 5_000))).toEqual(["switch:peer-moved>wifi-3@5000"]);
    h.onSwitched(5_000, "wifi-3", "wifi");
    // cell-1 and wifi-2 are still backups (a move off the uplink would have dropped wifi-2).
    expect(h.snapshot(5_000).backups).toBe(2);
  });

  it("does not chase the peer: a move of the peer within peerFollowHoldMs of our own switch is not followed", () => {
    const h = upWithBackup(0, { peerFollowHoldMs: 1_000 });
    h.onPeerMoved(300, "p1");
    expect(moves(run(h, 300, 300))).toEqual(["switch:peer-moved>p1@300"]);
    h.onReceive(310);
    h.onPeerMoved(800, "p2");
    expect(moves(run(h, 800, 800))).toEqual([]);
    h.onPeerMoved(1_400, "p3");
    expect(moves(run(h, 1_400, 1_400))).toEqual(["switch:peer-moved>p3@1400"]);
  });

  it("a planned move: the preferred uplink's backup, once valid for preferHoldMs", () => {
    const h = new LinkHealth({ preferHoldMs: 2_000 }, 0);
    h.onOpen(0);
    h.onUplinks(0, { active: "cell", preferred: "cell", present: ["cell"] });
    // wifi comes back and becomes preferred: a network change with the active uplink there
    // restarts nothing.
    h.onUplinks(1_000, { active: "cell", preferred: "wifi", present: ["wifi", "cell"] });
    h.onNetworkChange(1_000);
    expect(moves(run(h, 1_000, 1_200, true))).toEqual([]);
    h.onBackup(1_300, "wifi-1", "wifi", true);
    expect(moves(run(h, 1_300, 3_400, true))).toEqual(["switch:preferred>wifi-1@3300"]);
  });

  it("a flapping uplink (its backup lost before preferHoldMs) is never switched to", () => {
    const h = new LinkHealth({ preferHoldMs: 2_000 }, 0);
    h.onOpen(0);
    h.onUplinks(0, { active: "cell", preferred: "wifi", present: ["wifi", "cell"] });
    const ds: At[] = [];
    for (let t = 0; t < 5_000; t += 500) {
      h.onBackup(t + 100, "wifi-1", "wifi", true);
      ds.push(...run(h, t + 100, t + 349, true));
      h.onUplinks(t + 350, { active: "cell", preferred: "cell", present: ["cell"] });
      ds.push(...run(h, t + 350, t + 498, true));
      h.onUplinks(t + 499, { active: "cell", preferred: "wifi", present: ["wifi", "cell"] });
    }
    expect(moves(ds)).toEqual([]);
  });

  it("a backup whose uplink briefly vanished from the routes (a route re-added) is used again", () => {
    const h = upWithBackup();
    h.onUplinks(400, { active: "wifi", preferred: "wifi", present: ["wifi"] });
    h.onUplinks(410, { active: "wifi", preferred: "cell", present: ["wifi", "cell"] });
    h.onUplinks(420, { active: "wifi", preferred: "cell", present: ["cell"] });
    expect(moves(run(h, 420, 420))).toEqual(["switch:uplink-gone>cell-1@420"]);
  });

  it("with the active socket following routes (uplink unknown), a network change moves to the preferred uplink's backup", () => {
    const h = new LinkHealth({}, 0);
    h.onOpen(0);
    h.onUplinks(0, { active: null, preferred: "wifi", present: ["wifi", "cell"] });
    h.onBackup(0, "wifi-1", "wifi", true);
    h.onBackup(0, "cell-1", "cell", true);
    h.onUplinks(400, { active: null, preferred: "cell", present: ["wifi", "cell"] });
    h.onNetworkChange(400);
    expect(moves(run(h, 400, 500))).toEqual(["switch:network-change>cell-1@420"]);
  });

  it("a network change still in its debounce is weighed after following the peer, not dropped by the switch", () => {
    const h = new LinkHealth({}, 0);
    h.onOpen(0);
    h.onUplinks(0, { active: null, preferred: "wifi", present: ["wifi", "cell"] });
    h.onBackup(0, "cell-1", "cell", true);
    // wifi goes; 5 ms later, before the change is due, the peer is heard on another pair.
    h.onUplinks(400, { active: null, preferred: "cell", present: ["cell"] });
    h.onNetworkChange(400);
    h.onPeerMoved(405, "peer-pair");
    expect(moves(run(h, 405, 405))).toEqual(["switch:peer-moved>peer-pair@405"]);
    // werift's unbound socket again: the new pair's uplink is unknown, so the change counts.
    h.onSwitched(405, "peer-pair", null);
    h.onReceive(410);
    expect(moves(run(h, 410, 600, true))).toEqual(["switch:network-change>cell-1@420"]);
  });

  it("counts the backup inputs it is fed (production wiring is checked against this)", () => {
    const h = upWithBackup();
    h.onPeerMoved(1, "x");
    h.onSwitched(2, "x", "cell");
    expect(h.inputs()).toMatchObject({ onUplinks: 1, onBackup: 1, onPeerMoved: 1, onSwitched: 1 });
    expect(h.snapshot(3).backups).toBe(1);
  });

  it("checks backups at the busy cadence while sending, at the keepalive cadence when idle", () => {
    const h = new LinkHealth({ keepaliveMs: 20_000 }, 0);
    h.onOpen(0, "p0");
    // Nothing sent yet: idle, backups checked as often as the keepalive runs.
    expect(h.backupCheckInterval(1_000, 2_500)).toBe(20_000);
    h.onReliableSent(1, 5_000);
    expect(h.backupCheckInterval(6_000, 2_500)).toBe(2_500);
    expect(h.backupCheckInterval(24_999, 2_500)).toBe(2_500);
    // A keepalive period without sending: idle again.
    expect(h.backupCheckInterval(25_000, 2_500)).toBe(20_000);
    // A busy cadence slower than the keepalive is kept as it is.
    expect(h.backupCheckInterval(25_000, 30_000)).toBe(30_000);
  });
});
