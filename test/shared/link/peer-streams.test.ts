/**
 * shared/link/peer-streams.ts: the `control` streams per peer id that the rover agent and the
 * console keep across links and the peer's processes.
 */
import { describe, expect, it } from "vitest";
import { PeerStreams, type StateLost } from "../../../shared/link/peer-streams.ts";
import { type DataFrame, ReliableReceiver, ReliableSender } from "../../../shared/link/reliable.ts";

function table(now = { t: 0 }) {
  const lost: [string, StateLost][] = [];
  const churn: string[] = [];
  const streams = new PeerStreams({
    sender: () => new ReliableSender(),
    receiver: () => new ReliableReceiver(),
    stateLost: (peer, l) => lost.push([peer, l]),
    churn: (peer) => churn.push(peer),
    now: () => now.t,
  });
  return { streams, lost, churn, now };
}

describe("PeerStreams", () => {
  it("a new process of the peer gets what the old one had not acknowledged, once, renumbered", () => {
    const { streams, lost } = table();
    const s = streams.for("rover");
    const frames = ["a", "b", "c", "d"].map((p) => s.sender.send(p));
    // The old process acknowledged two, then died; a new process says hello from nothing.
    s.sender.onAck(2);
    expect(streams.for("rover")).toBe(s);
    const fresh = new ReliableReceiver();
    const resent = s.sender.resendFrom(fresh.hello().n);
    expect(lost).toEqual([["rover", { side: "receiver", resent: 2, from: 2 }]]);
    // Each carried message's new number is its old one minus `from`.
    expect(resent.map((f) => [f.s, f.p])).toEqual([
      [(frames[2] as DataFrame).s - 2, "c"],
      [(frames[3] as DataFrame).s - 2, "d"],
    ]);
    expect(resent.flatMap((f) => fresh.onData(f))).toEqual(["c", "d"]);
  });

  it("a new stream from the peer resets the receiver and says so; a second within a minute is churn", () => {
    const { streams, lost, churn, now } = table();
    const { receiver } = streams.for("rover");
    const stream = (st: string, s: number, p: string): DataFrame => ({ rl: 1, t: "d", st, s, p });
    expect(receiver.onData(stream("one", 0, "x"))).toEqual(["x"]);
    expect(receiver.onData(stream("two", 0, "y"))).toEqual(["y"]);
    expect(lost).toEqual([["rover", { side: "sender", deliveredBefore: 1 }]]);
    expect(churn).toEqual([]);
    now.t += 1_000;
    receiver.onData(stream("three", 0, "z"));
    expect(churn).toEqual(["rover"]);
    streams.delete("rover");
    expect(streams.has("rover")).toBe(false);
    expect(streams.for("rover").receiver).not.toBe(receiver);
  });
});
