/**
 * UDP forwarding: datagrams on unordered channels with no retransmissions (a late datagram is
 * worth nothing; no head-of-line blocking). Each local source address is a flow with its own
 * channel, so that the peer's answers find their way back to the program that sent.
 *   UdpListener  the `--forward udp:...` side: a socket on 127.0.0.1:<local port>, one flow per source
 *   udpTarget    the receiving side of one flow: a socket connected to 127.0.0.1:<port>
 * Wire format: shared/forward-wire.ts.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import type { RTCDataChannel } from "werift";
import {
  decodeForwardMessage,
  encodeForwardMessage,
  type ForwardSpec,
} from "../shared/forward-wire.ts";
import { errnoText } from "./errno.ts";
import { closeQuietly, whenOpen } from "./forward-tcp.ts";

/** Datagrams are dropped, not queued, with more than this waiting on the channel (bytes). */
const MAX_BUFFERED = 256 * 1024;
/** Datagrams held while a flow's channel opens. */
const MAX_PENDING = 64;
/** A flow with no datagram either way for this long ends (ms). */
export const UDP_IDLE_MS = 60_000;
/** After a refusal, datagrams from the same source are dropped this long before asking again. */
const RETRY_AFTER_MS = 5_000;
const ACCEPT_TIMEOUT_MS = 15_000;

/** Counted from this side: out = local program to the peer, in = the peer to the local program. */
export interface FlowEnd {
  reason: string;
  datagramsOut: number;
  datagramsIn: number;
  dropped: number;
}

export interface UdpListenerDeps {
  /** Open the flow's channel (throws when there is no link); `label` is the open request. */
  open(proto: "udp", port: number): { dc: RTCDataChannel; id: string };
  log: {
    info(o: object, msg: string): void;
    warn(o: object, msg: string): void;
  };
}

interface Flow {
  from: RemoteInfo;
  id: string;
  dc: RTCDataChannel | null;
  state: "opening" | "open" | "refused";
  pending: Buffer[];
  lastActivity: number;
  retryAt: number;
  timer: NodeJS.Timeout | null;
  end: FlowEnd;
}

export class UdpListener {
  #spec: ForwardSpec;
  #deps: UdpListenerDeps;
  #sock: Socket | null = null;
  #flows = new Map<string, Flow>();
  #sweep: NodeJS.Timeout | null = null;

  constructor(spec: ForwardSpec, deps: UdpListenerDeps) {
    this.#spec = spec;
    this.#deps = deps;
  }

  listen(): Promise<void> {
    const sock = createSocket("udp4");
    this.#sock = sock;
    return new Promise((resolve, reject) => {
      sock.once("error", reject);
      sock.bind(this.#spec.localPort, "127.0.0.1", () => {
        sock.off("error", reject);
        sock.on("error", () => {}); // ICMP errors for a sender gone away: nothing to do
        sock.on("message", (m, from) => this.#datagram(m, from));
        this.#sweep = setInterval(() => this.#endIdle(), 5_000).unref();
        resolve();
      });
    });
  }

  #ctx(f: Flow): object {
    const s = this.#spec;
    return {
      proto: "udp",
      id: f.id,
      from: `${f.from.address}:${f.from.port}`,
      local: s.localPort,
      peer: s.peer,
      remote: s.remotePort,
    };
  }

  #datagram(m: Buffer, from: RemoteInfo): void {
    const key = `${from.address}:${from.port}`;
    const now = Date.now();
    let f = this.#flows.get(key);
    if (f?.state === "refused" && now >= f.retryAt) {
      this.#flows.delete(key);
      f = undefined;
    }
    f ??= this.#newFlow(key, from, now);
    f.lastActivity = now;
    if (m.length === 0) return; // an empty datagram cannot cross (werift sends no empty binary)
    if (f.state === "open" && f.dc) this.#send(f, f.dc, m);
    else if (f.state === "opening") {
      f.pending.push(m);
      if (f.pending.length > MAX_PENDING) {
        f.pending.shift();
        f.end.dropped++;
      }
    } else f.end.dropped++;
  }

  #send(f: Flow, dc: RTCDataChannel, m: Buffer): void {
    if (dc.readyState !== "open" || dc.bufferedAmount > MAX_BUFFERED) {
      f.end.dropped++;
      return;
    }
    dc.send(m);
    f.end.datagramsOut++;
  }

  #newFlow(key: string, from: RemoteInfo, now: number): Flow {
    const f: Flow = {
      from: { ...from },
      id: "-",
      dc: null,
      state: "opening",
      pending: [],
      lastActivity: now,
      retryAt: 0,
      timer: null,
      end: { reason: "", datagramsOut: 0, datagramsIn: 0, dropped: 0 },
    };
    this.#flows.set(key, f);
    try {
      const { dc, id } = this.#deps.open("udp", this.#spec.remotePort);
      f.dc = dc;
      f.id = id;
    } catch (e) {
      this.#refused(f, (e as Error).message);
      return f;
    }
    const dc = f.dc;
    f.timer = setTimeout(
      () => this.#refused(f, `no answer from the peer in ${ACCEPT_TIMEOUT_MS / 1000} s`),
      ACCEPT_TIMEOUT_MS,
    );
    dc.onMessage.subscribe((m) => {
      if (typeof m !== "string") {
        if (f.state !== "open") return;
        f.lastActivity = Date.now();
        f.end.datagramsIn++;
        this.#sock?.send(m, f.from.port, f.from.address);
        return;
      }
      let msg: ReturnType<typeof decodeForwardMessage>;
      try {
        msg = decodeForwardMessage(m);
      } catch {
        return; // a stray control message on a datagram channel: ignored
      }
      if (f.state !== "opening") return;
      if (msg.t === "accept") {
        f.state = "open";
        if (f.timer) clearTimeout(f.timer);
        this.#deps.log.info(this.#ctx(f), "forward open");
        for (const p of f.pending.splice(0)) this.#send(f, dc, p);
      } else if (msg.t === "refuse") this.#refused(f, msg.reason);
    });
    dc.stateChanged.subscribe((s) => {
      if (s !== "closed") return;
      if (f.state === "opening") this.#refused(f, "the peer closed the channel without accepting");
      else if (f.state === "open") this.#ended(f, f.end.reason || "the channel closed");
    });
    return f;
  }

  #refused(f: Flow, reason: string): void {
    if (f.state === "refused") return;
    f.state = "refused";
    f.retryAt = Date.now() + RETRY_AFTER_MS;
    f.end.dropped += f.pending.length;
    f.pending = [];
    if (f.timer) clearTimeout(f.timer);
    if (f.dc) closeQuietly(f.dc);
    this.#deps.log.warn({ ...this.#ctx(f), reason }, "forward refused");
  }

  #ended(f: Flow, reason: string): void {
    const key = `${f.from.address}:${f.from.port}`;
    if (this.#flows.get(key) === f) this.#flows.delete(key);
    f.state = "refused"; // no longer used
    this.#deps.log.info({ ...this.#ctx(f), ...f.end, reason }, "forward ended");
  }

  #endIdle(): void {
    const now = Date.now();
    for (const f of this.#flows.values()) {
      if (f.state === "open" && f.dc && now - f.lastActivity >= UDP_IDLE_MS) {
        f.end.reason = `idle for ${UDP_IDLE_MS / 1000} s`;
        closeQuietly(f.dc);
      }
    }
  }

  close(): void {
    if (this.#sweep) clearInterval(this.#sweep);
    for (const f of this.#flows.values()) {
      if (f.timer) clearTimeout(f.timer);
      if (f.dc) closeQuietly(f.dc);
    }
    this.#flows.clear();
    this.#sock?.close();
    this.#sock = null;
  }
}

/**
 * The receiving side of one UDP flow: a socket connected to 127.0.0.1:<port>, accepted once
 * bound. `ended` is called once, when the channel closes.
 */
export function udpTarget(
  dc: RTCDataChannel,
  port: number,
  hooks: { opened(): void; ended(e: FlowEnd): void; failed(reason: string): void },
): { close(): void } {
  const sock = createSocket("udp4");
  const end: FlowEnd = {
    reason: "the channel closed",
    datagramsOut: 0,
    datagramsIn: 0,
    dropped: 0,
  };
  let open = false;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    sock.close();
  };
  // Before connect: a bind failure; after: ICMP port unreachable while nothing listens there yet.
  sock.on("error", (e: NodeJS.ErrnoException) => {
    if (!open) {
      close();
      hooks.failed(`127.0.0.1:${port}: ${errnoText(e)}`);
    }
  });
  sock.bind(0, "127.0.0.1", () => {
    sock.connect(port, "127.0.0.1", () => {
      whenOpen(dc, () => {
        open = true;
        dc.send(encodeForwardMessage({ t: "accept" }));
        hooks.opened();
      });
    });
  });
  sock.on("message", (m) => {
    if (!open || dc.readyState !== "open" || dc.bufferedAmount > MAX_BUFFERED || m.length === 0) {
      end.dropped++;
      return;
    }
    dc.send(m);
    end.datagramsOut++;
  });
  dc.onMessage.subscribe((m) => {
    if (typeof m === "string" || !open || closed) return;
    end.datagramsIn++;
    sock.send(m, (err) => {
      if (err) end.dropped++;
    });
  });
  dc.stateChanged.subscribe((s) => {
    if (s !== "closed") return;
    close();
    if (open) hooks.ended(end);
  });
  return { close };
}
