/**
 * werift patch 21 (docs/werift-patches.md): paths on one more uplink, backup pairs checked
 * without nominating them, and moving the selected pair without signaling (renomination that the
 * controlled side follows; the controlling side told when the peer sends on another pair). Real
 * PeerConnections on loopback UDP; 127.0.0.2 and 127.0.0.3 stand in for a second uplink (all of
 * 127/8 is loopback on Linux). Each test fails on werift without the patch.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { RTCPeerConnection } from "werift";
import { type Linked, linkedPair, until } from "./sctp-pair.ts";

interface Pair {
  protocol: {
    uplink?: string;
    close?: () => Promise<void>;
    request(r: unknown, addr: [string, number], key: Buffer, o: object): Promise<unknown>;
  };
  remoteAddr: [string, number];
  localCandidate: { host: string };
  state: number;
  packetsSent: number;
}
interface Ice {
  nominated?: Pair;
  checkList: Pair[];
  iceControlling: boolean;
  addUplink(address: string): Promise<unknown[]>;
  checkPair(pair: Pair): Promise<number | null>;
  selectPair(pair: Pair, reason?: string): boolean;
  localUsername: string;
  remoteUsername: string;
  remotePassword: string;
  buildRequest(o: {
    nominate: boolean;
    localUsername: string;
    remoteUsername: string;
    iceControlling: boolean;
  }): unknown;
  onPeerPath: { subscribe(f: (p: Pair) => void): void };
  onSelectedPairChanged: { subscribe(f: (p: Pair, prev: Pair, reason: string) => void): void };
}
const ice = (pc: RTCPeerConnection) =>
  (pc as unknown as { iceTransports: { connection: Ice }[] }).iceTransports[0]?.connection as Ice;

const SUCCEEDED = 3;
let linked: Linked | null = null;
afterEach(async () => {
  await linked?.close();
  linked = null;
});

/** The pairs of the uplink `address` towards the peer's 127.0.0.1 host candidate. */
function uplinkPair(c: Ice, address: string): Pair {
  const p = c.checkList.find(
    (x) => x.protocol.uplink === address && x.remoteAddr[0] === "127.0.0.1",
  );
  if (!p) throw new Error(`no pair on uplink ${address}`);
  return p;
}

async function sendAll(l: Linked, n: number, tag: string): Promise<boolean> {
  const want = Array.from({ length: n }, (_, i) => `${tag}${i}`);
  for (const m of want) l.dc.send(m);
  return until(() => want.every((m) => l.received.includes(m)), 5_000);
}

describe("werift backup paths and switching without signaling (patch 21)", () => {
  it("checks a backup pair on another uplink without moving either selection", async () => {
    linked = await linkedPair();
    const a = ice(linked.a);
    const b = ice(linked.b);
    const [selA, selB] = [a.nominated, b.nominated];
    await a.addUplink("127.0.0.2");
    const backup = uplinkPair(a, "127.0.0.2");
    expect(await a.checkPair(backup)).not.toBeNull();
    expect(backup.state).toBe(SUCCEEDED);
    // The peer answered and checked back (a triggered check), learning 127.0.0.2 as prflx.
    expect(
      await until(
        () => b.checkList.some((p) => p.remoteAddr[0] === "127.0.0.2" && p.state === SUCCEEDED),
        2_000,
      ),
    ).toBe(true);
    expect(a.nominated).toBe(selA);
    expect(b.nominated).toBe(selB);
  });

  it("the controlling side renominates a backup; the controlled side follows; data flows after the old path dies", async () => {
    linked = await linkedPair();
    const a = ice(linked.a);
    const b = ice(linked.b);
    expect(a.iceControlling).toBe(true);
    const old = a.nominated as Pair;
    await a.addUplink("127.0.0.2");
    const backup = uplinkPair(a, "127.0.0.2");
    expect(await a.checkPair(backup)).not.toBeNull();
    const changed: string[] = [];
    b.onSelectedPairChanged.subscribe((_p, _prev, reason) => changed.push(reason));
    expect(a.selectPair(backup)).toBe(true);
    expect(await until(() => b.nominated?.remoteAddr[0] === "127.0.0.2", 2_000)).toBe(true);
    expect(changed).toEqual(["remote-nomination"]);
    // The old path is gone (its socket closed): everything goes over the backup, both ways.
    if (old.protocol !== backup.protocol) await old.protocol.close?.();
    const before = backup.packetsSent;
    expect(await sendAll(linked, 50, "after-")).toBe(true);
    expect(backup.packetsSent).toBeGreaterThan(before);
  });

  it("a USE-CANDIDATE without a newer NOMINATION (aggressive nomination's) does not move the controlled side", async () => {
    linked = await linkedPair();
    const a = ice(linked.a);
    const b = ice(linked.b);
    const selB = b.nominated;
    await a.addUplink("127.0.0.2");
    const backup = uplinkPair(a, "127.0.0.2");
    expect(await a.checkPair(backup)).not.toBeNull();
    const request = a.buildRequest({
      nominate: true,
      localUsername: a.localUsername,
      remoteUsername: a.remoteUsername,
      iceControlling: true,
    });
    await backup.protocol.request(request, backup.remoteAddr, Buffer.from(a.remotePassword), {
      retransmissions: 2,
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(b.nominated).toBe(selB);
  });

  it("the controlled side moves first: the controlling side hears the peer on another pair and follows", async () => {
    linked = await linkedPair();
    const a = ice(linked.a);
    const b = ice(linked.b);
    await b.addUplink("127.0.0.3");
    const backup = uplinkPair(b, "127.0.0.3");
    expect(await b.checkPair(backup)).not.toBeNull();
    const moved: Pair[] = [];
    a.onPeerPath.subscribe((p) => moved.push(p));
    expect(b.selectPair(backup)).toBe(true);
    // b now sends (SACKs, data) from 127.0.0.3; a is told, and selects the pair b uses.
    // The controlling side is told once its own pair has been quiet a moment (150 ms).
    const l = linked;
    let n = 0;
    const sending = setInterval(() => l.dc.send(`wake${n++}`), 20);
    const told = await until(() => moved.length > 0, 2_000);
    clearInterval(sending);
    expect(told).toBe(true);
    const seen = moved[0] as Pair;
    expect(seen.remoteAddr[0]).toBe("127.0.0.3");
    expect(a.selectPair(seen)).toBe(true);
    expect(b.nominated).toBe(backup);
    expect(await sendAll(linked, 50, "moved-")).toBe(true);
  });
});
