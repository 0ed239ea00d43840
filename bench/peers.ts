/**
 * Linked pairs for the benchmarks, all on loopback: two roverlink agents through a local edge, two
 * werift PCs (with our patches, and the same release without them, from the `werift-unpatched` npm
 * alias that patch-package leaves alone), and two node-datachannel (libdatachannel) PCs. Each pair
 * echoes everything b receives back to a. For the JavaScript stacks b runs in a worker thread of
 * its own (bench/echo-peer.ts) unless `oneThread` is set: two rovers are two machines, and with both
 * ends on one event loop they got half the CPU that node-datachannel's native threads got.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { MessageChannel, Worker } from "node:worker_threads";
import { RTCPeerConnection } from "werift";
import { RTCPeerConnection as UnpatchedPeerConnection } from "werift-unpatched";
import { Agent, type AgentMessage } from "../rover/agent.ts";
import { type LocalEdge, REPO_ROOT } from "../rover/local-edge.ts";
import { mintToken } from "../shared/token.ts";
import {
  type FromEcho,
  NDC_CONFIG,
  type NdcChannel,
  type NdcModule,
  type Port,
  runEchoPeer,
  type Stack,
  streamSender,
  type ToEcho,
  weriftConfig,
} from "./echo-peer.ts";
import { until } from "./stats.ts";

export type { Stack };

export const BENCH_SECRET = "bench-secret-bench-secret-bench-secret";

/** A linked pair: `send` goes a -> b, b echoes it, `onEcho` sees it back at a. */
export interface EchoPair {
  send(data: string): void;
  onEcho(f: (data: string) => void): void;
  close(): Promise<void>;
}

export interface Linked {
  pair: EchoPair;
  /** From starting to link (b already running) to an open channel at the offerer. */
  linkMs: number;
}

export interface PairOptions {
  /** Both ends on the caller's thread (the setup before 2026-12-06 evening). */
  oneThread?: boolean;
}

let room = 0;

/** The b end, started: in a worker of its own, or on this thread over a MessageChannel. */
class EchoEnd {
  #port: Port;
  #worker: Worker | null = null;
  #channel: MessageChannel | null = null;
  #waits: ((m: FromEcho) => boolean)[] = [];
  #listeners: ((m: FromEcho) => void)[] = [];

  constructor(oneThread: boolean) {
    if (oneThread) {
      this.#channel = new MessageChannel();
      runEchoPeer(this.#channel.port2);
      this.#port = this.#channel.port1;
    } else {
      this.#worker = new Worker(new URL("./echo-peer.ts", import.meta.url), {
        workerData: { echoPeer: true },
      });
      this.#port = this.#worker;
    }
    this.#port.on("message", (m: FromEcho) => {
      if (m.t === "error") process.stderr.write(`bench: echo peer: ${m.message}\n`);
      for (const l of this.#listeners) l(m);
      this.#waits = this.#waits.filter((w) => !w(m));
    });
  }

  post(m: ToEcho): void {
    this.#port.postMessage(m);
  }

  onMessage(f: (m: FromEcho) => void): void {
    this.#listeners.push(f);
  }

  /** The next message of type `t` (an `error` rejects). */
  next<T extends FromEcho["t"]>(t: T): Promise<Extract<FromEcho, { t: T }>> {
    return new Promise((resolve, reject) => {
      this.#waits.push((m) => {
        if (m.t === "error") reject(new Error(`echo peer: ${m.message}`));
        else if (m.t === t) resolve(m as Extract<FromEcho, { t: T }>);
        else return false;
        return true;
      });
    });
  }

  async close(): Promise<void> {
    const closed = this.next("closed");
    this.post({ t: "close" });
    await Promise.race([closed, new Promise((r) => setTimeout(r, 10_000))]).catch(() => {
      // A b that fails to close is ended below all the same.
    });
    this.#channel?.port1.close();
    this.#channel?.port2.close();
    await this.#worker?.terminate();
  }
}

async function startEcho(
  stack: Stack,
  opts: PairOptions,
  roverlink?: { edge: string; room: string; token: string },
): Promise<EchoEnd> {
  const b = new EchoEnd(opts.oneThread ?? false);
  const ready = b.next("ready");
  b.post({ t: "start", stack, roverlink });
  await ready;
  return b;
}

export async function roverlinkPair(edge: LocalEdge, opts: PairOptions = {}): Promise<Linked> {
  const r = `bench-${process.pid}-${++room}`;
  const token = (id: string) =>
    mintToken({ secret: BENCH_SECRET, sub: id, room: r, ttlSeconds: 3600 });
  const b = await startEcho("roverlink", opts, {
    edge: edge.url,
    room: r,
    token: await token("b"),
  });
  const a = new Agent({
    edge: edge.url,
    room: r,
    id: "a",
    token: await token("a"),
    connect: ["b"],
    // Loopback only: no servers, and 127.0.0.1 as a host candidate (the agent's local default).
    iceServers: [],
    iceAdditionalHostAddresses: ["127.0.0.1"],
    watchNetwork: false,
  });
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
  const send = streamSender(a, "b");
  return {
    linkMs,
    pair: {
      send: (d) => send(d),
      onEcho: (f) => listeners.push(f),
      close: async () => {
        await Promise.all([a.stop(), b.close()]);
      },
    },
  };
}

export async function weriftPair(unpatched = false, opts: PairOptions = {}): Promise<Linked> {
  const b = await startEcho(unpatched ? "werift-unpatched" : "werift", opts);
  const t0 = performance.now();
  // The two builds have the same API (one release); only the patches differ.
  const PC = unpatched
    ? (UnpatchedPeerConnection as unknown as typeof RTCPeerConnection)
    : RTCPeerConnection;
  const a = new PC(weriftConfig);
  const dc = a.createDataChannel("control");
  await a.setLocalDescription(await a.createOffer());
  const offer = a.localDescription as NonNullable<typeof a.localDescription>;
  const answer = b.next("desc");
  b.post({ t: "desc", sdp: offer.sdp, type: offer.type });
  const got = await answer;
  await a.setRemoteDescription({ type: got.type as "answer", sdp: got.sdp });
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
  // Always on this thread: node-datachannel's addon aborts the process when used from a worker
  // ("Entering the V8 API without proper locking"). Its DTLS, SCTP and ICE run on native threads
  // of their own anyway; only the JavaScript callbacks share this event loop.
  const b = await startEcho("node-datachannel", { oneThread: true });
  const t0 = performance.now();
  // No ICE servers, sockets bound to loopback: the only candidate is 127.0.0.1.
  const a = new m.PeerConnection("a", NDC_CONFIG);
  a.onLocalDescription((sdp, type) => b.post({ t: "desc", sdp, type }));
  a.onLocalCandidate((candidate, mid) => b.post({ t: "cand", candidate, mid }));
  b.onMessage((msg) => {
    if (msg.t === "desc") a.setRemoteDescription(msg.sdp, msg.type);
    if (msg.t === "cand") a.addRemoteCandidate(msg.candidate, msg.mid);
  });
  const dc: NdcChannel = a.createDataChannel("control");
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
        await b.close();
        a.close();
      },
    },
  };
}

/** A pair of the given stack. */
export function pairOf(stack: Stack, edge: LocalEdge, opts: PairOptions = {}): Promise<Linked> {
  if (stack === "roverlink") return roverlinkPair(edge, opts);
  if (stack === "werift") return weriftPair(false, opts);
  if (stack === "werift-unpatched") return weriftPair(true, opts);
  return nodeDatachannelPair(); // both ends on this thread whatever `opts` says (see there)
}
