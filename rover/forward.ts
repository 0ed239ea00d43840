/**
 * Port forwarding over links (`--forward`, `--allow-forward`; docs/rover.md "Port forwarding").
 * Listens on 127.0.0.1 for each forward and opens one data channel per TCP connection or UDP
 * flow to the peer; answers the peer's channels, connecting only to the targets it allows.
 * One log line per forward opened, refused or ended, on both sides.
 *   forward-tcp.ts  one TCP connection over its channel (backpressure, half-close)
 *   forward-udp.ts  UDP flows
 *   shared/forward-wire.ts  the channel labels and control messages
 *
 * Channel cap: forward channels are outside LinkChannels' 64 (application channels, which stay
 * open for the link's life). Each TCP connection holds one channel while it lives; at most
 * MAX_FORWARD_CHANNELS live at once per peer (both directions), past that new ones are refused.
 */
import { randomBytes } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import type { RTCDataChannel } from "werift";
import {
  type AllowedTarget,
  encodeForwardMessage,
  type ForwardProto,
  type ForwardSpec,
  formatForward,
  forwardLabel,
  parseForwardLabel,
} from "../shared/forward-wire.ts";
import { errnoText } from "./errno.ts";
import { closeQuietly, cutOff, TcpPipe, whenOpen } from "./forward-tcp.ts";
import { UdpListener, udpTarget } from "./forward-udp.ts";
import { holdStreamIdUntilReset } from "./werift-internals.ts";

/** Live forward channels per peer, both directions (SCTP has 65535 streams; each costs memory). */
export const MAX_FORWARD_CHANNELS = 256;
/** The receiving side closes a refused channel itself after this, if the opener did not (ms). */
const REFUSED_CLOSE_MS = 5_000;

export interface ForwardAgent {
  openChannel(
    peer: string,
    label: string,
    opts: { ordered: boolean; maxRetransmits?: number },
  ): RTCDataChannel;
  on(event: "channel", listener: (peer: string, dc: RTCDataChannel) => void): unknown;
  off(event: "channel", listener: (peer: string, dc: RTCDataChannel) => void): unknown;
  /** Count a refused request against the peer's link (shared/link/conduct.ts). */
  violation?(peer: string, kind: "refused-request", detail: string): void;
}

export interface ForwardLogger {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
}

export interface ForwarderOptions {
  agent: ForwardAgent;
  forwards: ForwardSpec[];
  allow: AllowedTarget[];
  log: ForwardLogger;
}

export class ForwardListenError extends Error {}

export class Forwarder {
  #o: ForwarderOptions;
  #servers: Server[] = [];
  #udp: UdpListener[] = [];
  #sockets = new Set<Socket>();
  #live = new Map<string, number>();
  #onChannel = (peer: string, dc: RTCDataChannel) => this.#incoming(peer, dc);

  constructor(o: ForwarderOptions) {
    this.#o = o;
  }

  /** Live forward channels to `peer` (both directions). */
  live(peer: string): number {
    return this.#live.get(peer) ?? 0;
  }

  /** Bind every local port, then answer the peer's channels; a port in use fails here. */
  async start(): Promise<void> {
    try {
      for (const f of this.#o.forwards) {
        if (f.proto === "tcp") this.#servers.push(await this.#listenTcp(f));
        else {
          const u = new UdpListener(f, {
            open: (proto, port) => this.#open(f.peer, proto, port),
            log: this.#o.log,
          });
          await u.listen();
          this.#udp.push(u);
        }
        this.#o.log.info(
          { forward: formatForward(f), listen: `127.0.0.1:${f.localPort}` },
          "forward listening",
        );
      }
    } catch (e) {
      await this.stop();
      throw e;
    }
    this.#o.agent.on("channel", this.#onChannel);
  }

  async stop(): Promise<void> {
    this.#o.agent.off("channel", this.#onChannel);
    for (const u of this.#udp.splice(0)) u.close();
    for (const s of this.#sockets) s.destroy();
    await Promise.all(
      this.#servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))),
    );
  }

  #listenTcp(f: ForwardSpec): Promise<Server> {
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) =>
      this.#outgoing(f, sock),
    );
    return new Promise((resolve, reject) => {
      server.once("error", (e: NodeJS.ErrnoException) =>
        reject(
          new ForwardListenError(
            `--forward ${formatForward(f)}: cannot listen on 127.0.0.1:${f.localPort}: ${errnoText(e)}`,
          ),
        ),
      );
      server.listen(f.localPort, "127.0.0.1", () => resolve(server));
    });
  }

  /** Open a forward channel to `peer`, counted against the cap; throws with the reason. */
  #open(peer: string, proto: ForwardProto, port: number): { dc: RTCDataChannel; id: string } {
    if (this.live(peer) >= MAX_FORWARD_CHANNELS)
      throw new Error(`${MAX_FORWARD_CHANNELS} forwarded connections to "${peer}" already`);
    const id = randomBytes(4).toString("hex");
    const dc = this.#o.agent.openChannel(
      peer,
      forwardLabel({ proto, port, id }),
      proto === "tcp" ? { ordered: true } : { ordered: false, maxRetransmits: 0 },
    );
    this.#count(peer, dc);
    return { dc, id };
  }

  #count(peer: string, dc: RTCDataChannel): void {
    holdStreamIdUntilReset(dc);
    this.#live.set(peer, this.live(peer) + 1);
    let counted = true;
    dc.stateChanged.subscribe((s) => {
      if (s !== "closed" || !counted) return;
      counted = false;
      const n = this.live(peer) - 1;
      if (n > 0) this.#live.set(peer, n);
      else this.#live.delete(peer);
    });
  }

  #track(sock: Socket): void {
    this.#sockets.add(sock);
    sock.once("close", () => this.#sockets.delete(sock));
  }

  /** A local program connected to a `--forward tcp:` port. */
  #outgoing(f: ForwardSpec, sock: Socket): void {
    const log = this.#o.log;
    const ctx = {
      proto: "tcp",
      from: `${sock.remoteAddress}:${sock.remotePort}`,
      local: f.localPort,
      peer: f.peer,
      remote: f.remotePort,
    };
    let opened: { dc: RTCDataChannel; id: string };
    try {
      opened = this.#open(f.peer, "tcp", f.remotePort);
    } catch (e) {
      log.warn({ ...ctx, reason: (e as Error).message }, "forward refused");
      cutOff(sock);
      return;
    }
    const c = { ...ctx, id: opened.id };
    this.#track(sock);
    new TcpPipe(sock, opened.dc, "opener", {
      opened: () => log.info(c, "forward open"),
      notOpened: (reason) => log.warn({ ...c, reason }, "forward refused"),
      ended: (e) => log.info({ ...c, ...e }, "forward ended"),
    });
  }

  /** A channel the peer opened. */
  #incoming(peer: string, dc: RTCDataChannel): void {
    const log = this.#o.log;
    const req = parseForwardLabel(dc.label);
    if (!req) {
      log.warn({ peer, label: dc.label.slice(0, 64) }, "forward refused: malformed request");
      this.#o.agent.violation?.(peer, "refused-request", "malformed forward request");
      refuse(dc, "malformed forward request");
      return;
    }
    const ctx = { peer, proto: req.proto, target: `127.0.0.1:${req.port}`, id: req.id };
    const allowed = this.#o.allow.some((a) => a.proto === req.proto && a.port === req.port);
    if (!allowed || this.live(peer) >= MAX_FORWARD_CHANNELS) {
      const full = `${MAX_FORWARD_CHANNELS} forwarded connections from "${peer}" already`;
      const what = `${req.proto}:${req.port}`;
      log.warn(
        { ...ctx, reason: allowed ? full : `${what} is not in --allow-forward` },
        "forward refused",
      );
      // A flood of them is a misbehaving peer (each was a warn line, without end).
      this.#o.agent.violation?.(peer, "refused-request", `forward to ${what} refused`);
      // Said as the opener prints it: about the rover at the other end.
      refuse(dc, allowed ? full : `${what} is not in the peer's --allow-forward`);
      return;
    }
    this.#count(peer, dc);
    if (req.proto === "udp") {
      udpTarget(dc, req.port, {
        opened: () => log.info(ctx, "forward open"),
        ended: (e) => log.info({ ...ctx, ...e }, "forward ended"),
        failed: (why) => {
          log.warn({ ...ctx, reason: why }, "forward refused");
          refuse(dc, why);
        },
      });
      return;
    }
    const sock = connect({ host: "127.0.0.1", port: req.port, allowHalfOpen: true });
    this.#track(sock);
    const gone = dc.stateChanged.subscribe((s) => {
      if (s === "closed") cutOff(sock);
    });
    const failed = (e: NodeJS.ErrnoException) => {
      gone.unSubscribe();
      const why = `127.0.0.1:${req.port}: ${errnoText(e)}`;
      log.warn({ ...ctx, reason: why }, "forward refused");
      refuse(dc, why);
    };
    sock.once("error", failed);
    sock.once("connect", () => {
      sock.off("error", failed);
      gone.unSubscribe();
      new TcpPipe(sock, dc, "receiver", {
        opened: () => {},
        notOpened: () => {},
        ended: (e) => log.info({ ...ctx, ...e }, "forward ended"),
      });
      log.info(ctx, "forward open");
    });
  }
}

/** Tell the opener why, and let it close the channel (the message is not lost to the reset). */
function refuse(dc: RTCDataChannel, reason: string): void {
  holdStreamIdUntilReset(dc);
  whenOpen(dc, () => dc.send(encodeForwardMessage({ t: "refuse", reason })));
  setTimeout(() => closeQuietly(dc), REFUSED_CLOSE_MS).unref();
}
