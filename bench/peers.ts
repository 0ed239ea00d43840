/** Linked pairs for the benchmarks: two roverlink agents through a local edge, or two stock werift PCs. */
import { type RTCDataChannel, RTCPeerConnection } from "werift";
import { Agent, type AgentMessage } from "../rover/agent.ts";
import type { LocalEdge } from "../rover/local-edge.ts";
import { mintToken } from "../shared/token.ts";
import { until } from "./stats.ts";

export const BENCH_SECRET = "bench-secret-bench-secret-bench-secret";

/** A linked pair with a send function (a -> b) and b echoing everything back to a. */
export interface EchoPair {
  /** Send from a; `onEcho` gets every message that came back. */
  send(data: string): void;
  onEcho(f: (data: string) => void): void;
  close(): Promise<void>;
}

let room = 0;

export async function roverlinkPair(edge: LocalEdge): Promise<{ pair: EchoPair; linkMs: number }> {
  const r = `bench-${process.pid}-${++room}`;
  const mk = async (id: string, connect: string[]) =>
    new Agent({
      edge: edge.url,
      room: r,
      id,
      token: await mintToken({ secret: BENCH_SECRET, sub: id, room: r, ttlSeconds: 3600 }),
      connect,
      watchNetwork: false,
    });
  const b = await mk("b", []);
  await b.start();
  b.on("message", (m: AgentMessage) => b.send(m.peer, m.channel, m.data));
  const a = await mk("a", ["b"]);
  const t0 = performance.now();
  const up = new Promise<void>((resolve) => a.once("link-up", () => resolve()));
  await a.start();
  await up;
  const linkMs = performance.now() - t0;
  const listeners: ((d: string) => void)[] = [];
  a.on("message", (m: AgentMessage) => {
    for (const l of listeners) l(String(m.data));
  });
  return {
    linkMs,
    pair: {
      send: (d) => a.send("b", "control", d),
      onEcho: (f) => listeners.push(f),
      close: async () => {
        await Promise.all([a.stop(), b.stop()]);
      },
    },
  };
}

const config = { iceServers: [], iceUseIpv6: false, iceAdditionalHostAddresses: ["127.0.0.1"] };

export async function weriftPair(): Promise<{ pair: EchoPair; linkMs: number }> {
  const t0 = performance.now();
  const a = new RTCPeerConnection(config);
  const b = new RTCPeerConnection(config);
  const dc = a.createDataChannel("control");
  b.onDataChannel.subscribe((ch: RTCDataChannel) => ch.onMessage.subscribe((m) => ch.send(m)));
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription as NonNullable<typeof a.localDescription>);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription as NonNullable<typeof b.localDescription>);
  await until(() => dc.readyState === "open", 20_000);
  const linkMs = performance.now() - t0;
  const listeners: ((d: string) => void)[] = [];
  dc.onMessage.subscribe((m) => {
    for (const l of listeners) l(m.toString());
  });
  return {
    linkMs,
    pair: {
      send: (d) => dc.send(d),
      onEcho: (f) => listeners.push(f),
      close: async () => {
        await Promise.all([a.close(), b.close()]);
      },
    },
  };
}

/** node-datachannel (libdatachannel) cannot be installed here: say why, measured nothing. */
export const NODE_DATACHANNEL_UNAVAILABLE =
  "node-datachannel 0.33.4's npm tarball ships no prebuilt binary and no install script; building it needs cmake-js and libdatachannel sources fetched from GitHub, which this machine cannot reach (npm registry only)";
