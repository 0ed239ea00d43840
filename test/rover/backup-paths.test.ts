/**
 * rover/backup-paths.ts with real werift PeerConnections on loopback (patch 21) and the real
 * health policy: the adapter feeds the policy's backup inputs (onUplinks, onBackup, onSwitched,
 * onPeerMoved) and carries out its `switch` decisions. 127.0.0.1 and 127.0.0.2 stand in for two
 * uplinks (injected view of the interfaces: the test machine has one).
 */
import { afterEach, describe, expect, it } from "vitest";
import { Candidate } from "werift";
import { BackupPaths, readUplinks, type UplinkView } from "../../rover/backup-paths.ts";
import { iceConnection } from "../../rover/werift-internals.ts";
import { type Decision, LinkHealth } from "../../shared/link/health.ts";
import { type Linked, linkedPair, until } from "../patches/sctp-pair.ts";

const quiet = { debug: () => {}, info: () => {} };

type IceWithRemote = NonNullable<ReturnType<typeof iceConnection>> & {
  addRemoteCandidate(c: Candidate): Promise<void>;
};
let linked: Linked | null = null;
const paths: BackupPaths[] = [];
afterEach(async () => {
  for (const p of paths.splice(0)) p.close();
  await linked?.close();
  linked = null;
});

/** A policy and its adapter for one end; decisions are carried out as the link does. */
function end(pc: Linked["a"], view: () => UplinkView, label: string) {
  const health = new LinkHealth({}, Date.now());
  health.onOpen(Date.now());
  const decisions: Decision[] = [];
  const switched: string[] = [];
  const tick = () => {
    for (const d of health.poll(Date.now())) {
      decisions.push(d);
      if (d.type === "switch") backup.switchTo(d.to);
    }
  };
  const backup: BackupPaths = new BackupPaths({
    health,
    peer: label,
    log: quiet,
    checkEveryMs: 200,
    uplinks: view,
    tick,
    switched: (reason) => switched.push(reason),
  });
  paths.push(backup);
  backup.attach(pc);
  /** What Link.networkChanged does. */
  const networkChanged = () => {
    backup.sync();
    health.onNetworkChange(Date.now());
    setTimeout(tick, 60);
  };
  /** The same, deciding at once (as Link.networkChanged does). */
  const networkChangedNow = () => {
    backup.sync();
    health.onNetworkChange(Date.now());
    tick();
  };
  return { health, backup, decisions, switched, networkChanged, networkChangedNow };
}

const two: UplinkView = {
  present: [
    { iface: "wifi", address: "127.0.0.1" },
    { iface: "cell", address: "127.0.0.2" },
  ],
  preferred: "wifi",
};

/** The peer: single-homed. */
const oneUplink: UplinkView = {
  present: [{ iface: "eth0", address: "127.0.0.1" }],
  preferred: "eth0",
};

describe("backup paths (rover/backup-paths.ts)", () => {
  it("reads uplinks: IPv4 interfaces with a default route, the lowest metric preferred", () => {
    const ifaces = {
      lo: [{ address: "127.0.0.1", family: "IPv4", internal: true }],
      wifi: [{ address: "192.168.10.2", family: "IPv4", internal: false }],
      cell: [{ address: "100.64.20.2", family: "IPv4", internal: false }],
      dead: [{ address: "10.9.9.9", family: "IPv4", internal: false }],
    } as unknown as ReturnType<typeof import("node:os").networkInterfaces>;
    const v = readUplinks(ifaces, "cell/0114400A/200,wifi/010AA8C0/100");
    expect(v.preferred).toBe("wifi");
    expect(v.present.map((u) => u.iface).sort()).toEqual(["cell", "wifi"]);
    // Every address, routed or not: an uplink whose route is briefly missing keeps its socket.
    expect(v.addresses?.map((u) => u.iface).sort()).toEqual(["cell", "dead", "wifi"]);
  });

  it("validates a backup on the other uplink; the uplink gone switches to it without signaling, and the peer follows", async () => {
    linked = await linkedPair();
    let view = two;
    const a = end(linked.a, () => view, "a");
    end(linked.b, () => oneUplink, "b");
    // The active pair runs on werift's unbound socket; backups on both bound uplinks.
    expect(await until(() => a.health.snapshot(Date.now()).backups >= 1, 5_000)).toBe(true);
    expect(a.health.inputs()).toMatchObject({ onUplinks: 1 });
    // wifi goes away: the policy switches to the cell backup at once, no restart. (The active
    // pair is on werift's unbound socket, which used wifi, the preferred uplink, when selected.)
    view = { present: [{ iface: "cell", address: "127.0.0.2" }], preferred: "cell" };
    a.networkChanged();
    expect(await until(() => a.switched.length > 0, 2_000)).toBe(true);
    expect(a.decisions.filter((d) => d.type === "restart")).toEqual([]);
    const sw = a.decisions.find((d) => d.type === "switch");
    expect(sw).toMatchObject({ reason: "uplink-gone" });
    expect(a.health.inputs().onSwitched).toBe(1);
    const ia = iceConnection(linked.a);
    const ib = iceConnection(linked.b);
    expect(ia?.nominated?.protocol.uplink).toBe("127.0.0.2");
    expect(await until(() => ib?.nominated?.remoteAddr[0] === "127.0.0.2", 2_000)).toBe(true);
    const want = Array.from({ length: 30 }, (_, i) => `m${i}`);
    for (const m of want) linked.dc.send(m);
    expect(await until(() => want.every((m) => linked?.received.includes(m)), 5_000)).toBe(true);
  });

  it("discovery moves on past pairs that failed: a working pair ranked below DISCOVER_MAX still becomes a backup", async () => {
    linked = await linkedPair();
    // Six dead remote addresses that outrank every real pair (werift checks by priority): the
    // first round of each uplink checks four of them and fails.
    // (Straight to werift's ICE: the PeerConnection drops candidates after end-of-candidates.)
    const ia = iceConnection(linked.a) as unknown as IceWithRemote;
    for (let i = 0; i < 6; i++) {
      await ia.addRemoteCandidate(
        Candidate.fromSdp(`candidate:dead${i} 1 udp 2130706431 127.0.0.${200 + i} 9 typ host`),
      );
    }
    const dead = (p: { remoteAddr: [string, number] }) => p.remoteAddr[1] === 9;
    const a = end(linked.a, () => two, "a");
    end(linked.b, () => oneUplink, "b");
    // The premise: the dead pairs come first in werift's list and discovery tried them.
    expect(
      await until(() => (ia?.checkList ?? []).filter(dead).some((p) => p.state === 4), 10_000),
    ).toBe(true);
    expect(await until(() => a.health.snapshot(Date.now()).backups >= 1, 15_000)).toBe(true);
  });

  it("checks backups at the keepalive cadence while idle, and at the busy cadence as soon as traffic begins", async () => {
    linked = await linkedPair();
    const a = end(linked.a, () => two, "a");
    end(linked.b, () => oneUplink, "b");
    expect(await until(() => a.health.snapshot(Date.now()).backups >= 1, 5_000)).toBe(true);
    // Every round of checks ends by telling the policy whether the peer has other paths.
    let rounds = 0;
    const onPeerPaths = a.health.onPeerPaths.bind(a.health);
    a.health.onPeerPaths = (now, others) => {
      rounds++;
      onPeerPaths(now, others);
    };
    await new Promise((r) => setTimeout(r, 500)); // the start-up rounds (a new uplink's) end
    rounds = 0;
    // Idle (nothing sent): the next round is a keepalive interval (20 s) away, not 200 ms.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(rounds).toBe(0);
    // Traffic begins; the link's next tick reschedules (Link.#tick calls schedule()).
    a.health.onSend(Date.now());
    a.backup.schedule();
    await new Promise((r) => setTimeout(r, 1_100));
    expect(rounds).toBeGreaterThanOrEqual(3); // every 200 ms (checkEveryMs) while busy
  });

  it("a planned move keeps the path it left as that uplink's backup at once; another move does not", async () => {
    linked = await linkedPair();
    const a = end(linked.a, () => two, "a");
    end(linked.b, () => oneUplink, "b");
    expect(await until(() => a.health.snapshot(Date.now()).backups >= 2, 5_000)).toBe(true);
    const ice = iceConnection(linked.a);
    const bound = (address: string) =>
      ice?.checkList.find(
        (p) =>
          p.protocol.uplink === address && p.state === 3 /* succeeded */ && ice.isCurrentSession(p),
      );
    const cell = bound("127.0.0.2");
    const wifi = bound("127.0.0.1");
    if (!cell || !wifi) throw new Error("no validated pair on each uplink");
    const backups = () => a.health.snapshot(Date.now()).backups;
    // Idle: the next round of checks is 20 s away, so only the moves change the backups here.
    // Onto cell, not planned (as after wifi went away): the pair left is not made a backup.
    expect(a.backup.switchTo(cell.id)).toBe(true);
    expect(a.backup.switchTo(wifi.id, true)).toBe(true);
    expect(ice?.nominated?.id).toBe(wifi.id);
    // Planned (back to the preferred uplink): cell's path, live a moment ago, is a backup now.
    expect(backups()).toBe(1);
    expect(a.backup.switchTo(cell.id)).toBe(true);
    expect(backups()).toBe(0); // wifi's path was left by an unplanned move: not a backup yet
    expect(a.backup.switchTo(wifi.id, true)).toBe(true);
    expect(backups()).toBe(1);
  });

  it("a route briefly missing during a planned move keeps that uplink's backup: the move is a switch, not a restart", async () => {
    linked = await linkedPair();
    const addresses = two.present;
    let view: UplinkView = { ...two, addresses };
    const a = end(linked.a, () => view, "a");
    end(linked.b, () => oneUplink, "b");
    // Backups on both bound uplinks (the active pair is werift's unbound socket, via wifi).
    expect(await until(() => a.health.snapshot(Date.now()).backups >= 2, 5_000)).toBe(true);
    // The routes change in steps, as `ip route replace/del` make them (the lab's `prefer cell`):
    // first cell's default route is missing for a moment...
    view = { present: [{ iface: "wifi", address: "127.0.0.1" }], preferred: "wifi", addresses };
    a.networkChangedNow();
    // ...then cell is preferred: werift's unbound socket now leaves through cell with another
    // source address, so for the active pair wifi is gone. The cell backup is still there.
    view = { present: [{ iface: "cell", address: "127.0.0.2" }], preferred: "cell", addresses };
    a.networkChangedNow();
    expect(await until(() => a.switched.length > 0, 2_000)).toBe(true);
    expect(a.decisions.filter((d) => d.type === "restart")).toEqual([]);
    expect(a.decisions.find((d) => d.type === "switch")).toMatchObject({ reason: "uplink-gone" });
    expect(iceConnection(linked.a)?.nominated?.protocol.uplink).toBe("127.0.0.2");
  });

  it("the controlled side moves first: the controlling side's policy follows (onPeerMoved)", async () => {
    linked = await linkedPair();
    const a = end(linked.a, () => oneUplink, "a");
    const b = end(linked.b, () => two, "b");
    expect(await until(() => b.health.snapshot(Date.now()).backups >= 1, 5_000)).toBe(true);
    const to = [...(iconnB(linked).checkList ?? [])].find(
      (p) => p.protocol.uplink === "127.0.0.2" && p.state === 3,
    );
    if (!to) throw new Error("no validated pair on the second uplink");
    expect(b.backup.switchTo(to.id)).toBe(true);
    linked.dc.send("wake");
    expect(await until(() => (a.health.inputs().onPeerMoved ?? 0) > 0, 3_000)).toBe(true);
    expect(await until(() => a.decisions.some((d) => d.type === "switch"), 2_000)).toBe(true);
    expect(a.decisions.find((d) => d.type === "switch")).toMatchObject({ reason: "peer-moved" });
    expect(iceConnection(linked.a)?.nominated?.remoteAddr[0]).toBe("127.0.0.2");
  });
});

function iconnB(l: Linked) {
  const c = iceConnection(l.b);
  if (!c) throw new Error("no ICE connection");
  return c;
}
