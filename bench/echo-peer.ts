/**
 * The echoing end (b) of a benchmark pair, driven over a message port: in a worker thread of its
 * own by default, as two rovers are two machines (each end gets its own event loop and core), or
 * on the caller's thread (`--one-thread`, the setup of the figures before 2026-12-06 evening).
 * Signaling between the two ends (SDP, candidates) goes over the port; roverlink's b joins the
 * local edge like any agent.
 */
import { createRequire } from "node:module";
import { isMainThread, parentPort, workerData } from "node:worker_threads";
import { type RTCDataChannel, RTCPeerConnection } from "werift";
import { RTCPeerConnection as UnpatchedPeerConnection } from "werift-unpatched";
import { Agent, type AgentMessage } from "../rover/agent.ts";
import { BacklogFullError, type Payload } from "../shared/link/reliable.ts";

export type Stack = "roverlink" | "werift" | "werift-unpatched" | "node-datachannel";

/** a → b. */
export type ToEcho =
  | { t: "start"; stack: Stack; roverlink?: { edge: string; room: string; token: string } }
  | { t: "desc"; sdp: string; type: string }
  | { t: "cand"; candidate: string; mid: string }
  | { t: "close" };

/** b → a. */
export type FromEcho =
  | { t: "ready" }
  | { t: "desc"; sdp: string; type: string }
  | { t: "cand"; candidate: string; mid: string }
  | { t: "closed" }
  | { t: "error"; message: string };

/** MessagePort and Worker both have this shape. */
export interface Port {
  postMessage(m: unknown): void;
  // biome-ignore lint/suspicious/noExplicitAny: MessagePort's and Worker's own listener type
  on(event: "message", f: (m: any) => void): unknown;
}

// No servers (werift's default names a public STUN server); pairs only between loopback candidates,
// though werift also gathers the machine's interface addresses.
export const weriftConfig = {
  iceServers: [],
  // Both ends advertise 1 MiB (werift's default is 64 KiB), so that the raw rows cover 256 KiB
  // messages; node-datachannel's default is 256 KiB.
  maxMessageSize: 1024 * 1024,
  iceUseIpv6: false,
  iceAdditionalHostAddresses: ["127.0.0.1"],
  iceFilterCandidatePair: (p: { remoteCandidate: { host: string } }) =>
    p.remoteCandidate.host === "127.0.0.1",
};

/** node-datachannel's API as used here (its own types come with the optional package). */
export interface NdcChannel {
  sendMessage(m: string): boolean;
  onMessage(cb: (m: string | Buffer | ArrayBuffer) => void): void;
  onOpen(cb: () => void): void;
  isOpen(): boolean;
  close(): void;
}
export interface NdcPeer {
  onLocalDescription(cb: (sdp: string, type: string) => void): void;
  onLocalCandidate(cb: (candidate: string, mid: string) => void): void;
  onDataChannel(cb: (dc: NdcChannel) => void): void;
  setRemoteDescription(sdp: string, type: string): void;
  addRemoteCandidate(candidate: string, mid: string): void;
  createDataChannel(label: string): NdcChannel;
  close(): void;
}
export interface NdcModule {
  PeerConnection: new (
    name: string,
    config: { iceServers: string[]; bindAddress?: string },
  ) => NdcPeer;
  getLibraryVersion(): string;
}
export const NDC_CONFIG = { iceServers: [], bindAddress: "127.0.0.1" };

/**
 * Hands messages to `agent.send` in order, honouring backpressure as a stream writer does: when
 * `send` returns false (the message is kept), the rest wait for the agent's `drain`; when the
 * reliable backlog is full (BacklogFullError, the message is not kept), it is tried again in 5 ms.
 */
export function streamSender(agent: Agent, peer: string): (data: Payload) => void {
  const waiting: Payload[] = [];
  let head = 0;
  let blocked = false;
  const pump = () => {
    blocked = false;
    while (head < waiting.length) {
      let ok: boolean;
      try {
        ok = agent.send(peer, "control", waiting[head] as Payload);
      } catch (e) {
        // Not kept: the unacknowledged backlog is full. Acknowledgements free it; try again soon.
        if (!(e instanceof BacklogFullError)) throw e;
        blocked = true;
        setTimeout(pump, 5);
        return;
      }
      waiting[head++] = "";
      if (!ok) {
        blocked = true;
        return;
      }
    }
    waiting.length = 0;
    head = 0;
  };
  agent.on("drain", (p: string) => {
    if (p === peer && blocked) pump();
  });
  return (data) => {
    waiting.push(data);
    if (!blocked && waiting.length - head === 1) pump();
  };
}

/** Run b on `port` until it is told to close. */
export function runEchoPeer(port: Port): void {
  const post = (m: FromEcho) => port.postMessage(m);
  let close: () => Promise<void> = async () => {};
  const handlers: ((m: ToEcho) => void | Promise<void>)[] = [];

  const start = async (m: Extract<ToEcho, { t: "start" }>) => {
    if (m.stack === "roverlink") {
      const r = m.roverlink as NonNullable<typeof m.roverlink>;
      const b = new Agent({
        edge: r.edge,
        room: r.room,
        id: "b",
        token: r.token,
        connect: [],
        // Loopback only: no servers, and 127.0.0.1 as a host candidate (the agent's local default).
        iceServers: [],
        iceAdditionalHostAddresses: ["127.0.0.1"],
        watchNetwork: false,
      });
      await b.start();
      const echo = streamSender(b, "a");
      b.on("message", (msg: AgentMessage) => echo(msg.data));
      close = () => b.stop();
    } else if (m.stack === "node-datachannel") {
      const ndc = createRequire(import.meta.url)("node-datachannel") as NdcModule;
      const b = new ndc.PeerConnection("b", NDC_CONFIG);
      const channels: NdcChannel[] = [];
      b.onLocalDescription((sdp, type) => post({ t: "desc", sdp, type }));
      b.onLocalCandidate((candidate, mid) => post({ t: "cand", candidate, mid }));
      b.onDataChannel((ch) => {
        channels.push(ch);
        ch.onMessage((msg) => ch.sendMessage(String(msg)));
      });
      handlers.push((h) => {
        if (h.t === "desc") b.setRemoteDescription(h.sdp, h.type);
        if (h.t === "cand") b.addRemoteCandidate(h.candidate, h.mid);
      });
      close = async () => {
        for (const c of channels) c.close();
        b.close();
      };
    } else {
      // The two builds have the same API (one release); only the patches differ.
      const PC =
        m.stack === "werift-unpatched"
          ? (UnpatchedPeerConnection as unknown as typeof RTCPeerConnection)
          : RTCPeerConnection;
      const b = new PC(weriftConfig);
      b.onDataChannel.subscribe((ch: RTCDataChannel) => ch.onMessage.subscribe((d) => ch.send(d)));
      handlers.push(async (h) => {
        if (h.t !== "desc") return;
        await b.setRemoteDescription({ type: h.type as "offer", sdp: h.sdp });
        await b.setLocalDescription(await b.createAnswer());
        const local = b.localDescription as NonNullable<typeof b.localDescription>;
        post({ t: "desc", sdp: local.sdp, type: local.type });
      });
      close = () => b.close();
    }
    post({ t: "ready" });
  };

  port.on("message", (m: ToEcho) => {
    const run = async () => {
      if (m.t === "start") await start(m);
      else if (m.t === "close") {
        await close();
        post({ t: "closed" });
      } else for (const h of handlers) await h(m);
    };
    run().catch((e: unknown) => post({ t: "error", message: (e as Error).message }));
  });
}

if (!isMainThread && (workerData as { echoPeer?: boolean } | undefined)?.echoPeer && parentPort)
  runEchoPeer(parentPort);
