/**
 * Linked pairs for the benchmarks, all on loopback: two roverlink agents through a local edge, two
 * werift PCs exchanging SDP in memory (with our patches, and the same release without them, from
 * the `werift-unpatched` npm alias that patch-package leaves alone), and two node-datachannel
 * (libdatachannel) PCs doing the same. Each pair echoes everything b receives back to a.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { type RTCDataChannel, RTCPeerConnection } from "werift";
import { RTCPeerConnection as UnpatchedPeerConnection } from "werift-unpatched";
import { Agent, type AgentMessage } from "../rover/agent.ts";
import { type LocalEdge, REPO_ROOT } from "../rover/local-edge.ts";
import { BacklogFullError, type Payload } from "../shared/link/reliable.ts";
import { mintToken } from "../shared/token.ts";
import { until } from "./stats.ts";

export const BENCH_SECRET = "bench-secret-bench-secret-bench-secret";

/** The stacks compared throughout. "werift": with our patches (patches/); "werift-unpatched": 0.25.2 as published. */
export type Stack = "roverlink" | "werift" | "werift-unpatched" | "node-datachannel";

/** A linked pair: `send` goes a -> b, b echoes it, `onEcho` sees it back at a. */
export interface EchoPair {
  send(data: string): void;
  onEcho(f: (data: string) => void): void;
  close(): Promise<void>;
}

export interface Linked {
  pair: EchoPair;
  /** From creating the first peer to an open channel at the offerer. */
  linkMs: number;
}

let room = 0;

/**
 * `agent.send`, waiting when the reliable backlog is full (BacklogFullError) instead of losing the
 * message: a FIFO retried every 5 ms. Agent has no drain event yet (docs/rover.md, flow control).
 */
function patientSender(agent: Agent, peer: string): (data: Payload) => void {
  const waiting: Payload[] = [];
  let timer: NodeJS.Timeout | null = null;
  const pump = () => {
    timer = null;
    while (waiting.length > 0) {
      try {
        agent.send(peer, "control", waiting[0] as Payload);
      } catch (e) {
        if (!(e instanceof BacklogFullError)) throw e;
        timer = setTimeout(pump, 5);
        return;
      }
      waiting.shift();
    }
  };
  return (data) => {
    waiting.push(data);
    if (!timer && waiting.length === 1) pump();
  };
}

export async function roverlinkPair(edge: LocalEdge): Promise<Linked> {
  const r = `bench-${process.pid}-${++room}`;
  const mk = async (id: string, connect: string[]) =>
    new Agent({
      edge: edge.url,
      room: r,
      id,
      token: await mintToken({ secret: BENCH_SECRET, sub: id, room: r, ttlSeconds: 3600 }),
      connect,
      // Loopback only: no servers, and 127.0.0.1 as a host candidate (the agent's local default).
      iceServers: [],
      iceAdditionalHostAddresses: ["127.0.0.1"],
      watchNetwork: false,
    });
  const b = await mk("b", []);
  await b.start();
  const echo = patientSender(b, "a");
  b.on("message", (m: AgentMessage) => echo(m.data));
  const a = await mk("a", ["b"]);
  const t0 = performance.now();
  const up = new Promise<void>((resolve) => a.once("link-up", () => resolve()));
  await a.start();
  await up;
  const linkMs = performance.now() - t0;
  const listeners: ((d: string) => void)[] = [];
  a.on("message", (m: AgentMessage) => {
    for (const l of listeners)
      l(typeof m.data === "string" ? m.data : Buffer.from(m.data).toString());
  });
  const send = patientSender(a, "b");
  return {
    linkMs,
    pair: {
      send: (d) => send(d),
      onEcho: (f) => listeners.push(f),
      close: async () => {
        await Promise.all([a.stop(), b.stop()]);
      },
    },
  };
}

// No servers (werift's default names a public STUN server); pairs only between loopback candidates,
// though werift also gathers the machine's interface addresses.
const weriftConfig = {
  iceServers: [],
  // Both ends advertise 1 MiB (werift's default is 64 KiB), so that the raw rows cover 256 KiB
  // messages; node-datachannel's default is 256 KiB.
  maxMessageSize: 1024 * 1024,
  iceUseIpv6: false,
  iceAdditionalHostAddresses: ["127.0.0.1"],
  iceFilterCandidatePair: (p: { remoteCandidate: { host: string } }) =>
    p.remoteCandidate.host === "127.0.0.1",
};

export async function weriftPair(unpatched = false): Promise<Linked> {
  const t0 = performance.now();
  // The two builds have the same API (one release); only the patches differ.
  const PC = unpatched
    ? (UnpatchedPeerConnection as unknown as typeof RTCPeerConnection)
    : RTCPeerConnection;
  const a = new PC(weriftConfig);
  const b = new PC(weriftConfig);
  const dc = a.createDataChannel("control");
  b.onDataChannel.subscribe((ch: RTCDataChannel) => ch.onMessage.subscribe((m) => ch.send(m)));
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription as NonNullable<typeof a.localDescription>);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription as NonNullable<typeof b.localDescription>);
  if (!(await until(() => dc.readyState === "open", 20_000)))
    throw new Error("werift: channel did not open in 20 s");
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

/** The parts of node-datachannel's API used here (its own types come with the optional package). */
interface NdcChannel {
  sendMessage(m: string): boolean;
  onMessage(cb: (m: string | Buffer | ArrayBuffer) => void): void;
  onOpen(cb: () => void): void;
  isOpen(): boolean;
  close(): void;
}
interface NdcPeer {
  onLocalDescription(cb: (sdp: string, type: string) => void): void;
  onLocalCandidate(cb: (candidate: string, mid: string) => void): void;
  onDataChannel(cb: (dc: NdcChannel) => void): void;
  setRemoteDescription(sdp: string, type: string): void;
  addRemoteCandidate(candidate: string, mid: string): void;
  createDataChannel(label: string): NdcChannel;
  close(): void;
}
interface NdcModule {
  PeerConnection: new (
    name: string,
    config: { iceServers: string[]; bindAddress?: string },
  ) => NdcPeer;
  getLibraryVersion(): string;
}

let ndc: NdcModule | string | undefined;

/** node-datachannel, or why it cannot be loaded on this machine. */
export function nodeDatachannel(): NdcModule | string {
  if (ndc !== undefined) return ndc;
  try {
    ndc = createRequire(import.meta.url)("node-datachannel") as NdcModule;
    ndc.getLibraryVersion();
  } catch (err) {
    ndc = `unavailable on this machine: ${(err as Error).message.split("\n")[0]}`;
  }
  return ndc;
}

export function nodeDatachannelVersion(): string | null {
  const m = nodeDatachannel();
  if (typeof m === "string") return null;
  const pkg = JSON.parse(
    readFileSync(join(REPO_ROOT, "node_modules/node-datachannel/package.json"), "utf8"),
  ) as { version: string };
  return `node-datachannel ${pkg.version}, libdatachannel ${m.getLibraryVersion()}`;
}

export async function nodeDatachannelPair(): Promise<Linked> {
  const m = nodeDatachannel();
  if (typeof m === "string") throw new Error(m);
  const t0 = performance.now();
  // No ICE servers, sockets bound to loopback: the only candidate is 127.0.0.1.
  const config = { iceServers: [], bindAddress: "127.0.0.1" };
  const a = new m.PeerConnection("a", config);
  const b = new m.PeerConnection("b", config);
  a.onLocalDescription((sdp, type) => b.setRemoteDescription(sdp, type));
  a.onLocalCandidate((c, mid) => b.addRemoteCandidate(c, mid));
  b.onLocalDescription((sdp, type) => a.setRemoteDescription(sdp, type));
  b.onLocalCandidate((c, mid) => a.addRemoteCandidate(c, mid));
  const echoes: NdcChannel[] = [];
  b.onDataChannel((ch) => {
    echoes.push(ch);
    ch.onMessage((msg) => ch.sendMessage(String(msg)));
  });
  const dc = a.createDataChannel("control");
  const listeners: ((d: string) => void)[] = [];
  dc.onMessage((msg) => {
    for (const l of listeners) l(String(msg));
  });
  const opened = await new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), 20_000);
    dc.onOpen(() => {
      clearTimeout(t);
      resolve(true);
    });
  });
  if (!opened) throw new Error("node-datachannel: channel did not open in 20 s");
  const linkMs = performance.now() - t0;
  return {
    linkMs,
    pair: {
      send: (d) => {
        dc.sendMessage(d);
      },
      onEcho: (f) => listeners.push(f),
      close: async () => {
        dc.close();
        for (const e of echoes) e.close();
        a.close();
        b.close();
      },
    },
  };
}

/** A pair of the given stack. */
export function pairOf(stack: Stack, edge: LocalEdge): Promise<Linked> {
  if (stack === "roverlink") return roverlinkPair(edge);
  if (stack === "werift") return weriftPair();
  if (stack === "werift-unpatched") return weriftPair(true);
  return nodeDatachannelPair();
}
