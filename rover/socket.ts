/**
 * The local message socket (`--socket`; docs/socket.md): a Unix socket where programs in any
 * language send and receive `{peer, channel, data}` on `control` (exactly-once, through the
 * agent's reliable stream and durable outbox) or `telemetry`, and hear link events. Framing and
 * validation are in socket-wire.ts; this module is the I/O around them.
 *
 * Only the local user: the socket is created 0600 (under umask 0177, then chmod), and the default
 * directory is 0700. Every attached client gets every message and event. `control` messages that
 * arrive while no client is attached are held (bounded) for the next one.
 */
import { chmodSync, lstatSync, statSync, unlinkSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { BacklogFullError } from "../shared/link/reliable.ts";
import type { Agent, AgentEvents, AgentMessage } from "./agent.ts";
import { errnoText } from "./errno.ts";
import { makeDirs } from "./make-dirs.ts";
import { OutboxError } from "./outbox.ts";
import { SocketHold } from "./socket-hold.ts";
import {
  type AgentFrame,
  type ClientFrame,
  decodeClientFrame,
  encodeAgentFrame,
  LineSplitter,
  MAX_LINE_BYTES,
  SOCKET_PROTOCOL_VERSION,
  type SocketFrameError,
  sizeAgainstLimit,
} from "./socket-wire.ts";

/** Longest Unix socket path Linux takes (sun_path is 108 bytes with the NUL). */
const MAX_PATH_BYTES = 107;
/** A client with this much unread stops getting telemetry and rtt frames (bytes). */
const SKIP_UNRELIABLE_ABOVE = 4 * 1024 * 1024;
/** A client with this much unread is disconnected: it is not reading (bytes). */
const DISCONNECT_ABOVE = 64 * 1024 * 1024;
/** `control` messages held while no client is attached. */
const HOLD_MAX_MESSAGES = 10_000;
const HOLD_MAX_BYTES = 32 * 1024 * 1024;
const RTT_INTERVAL_MS = 1_000;
/** A client is not read from while a peer's link is up with this much unacknowledged `control`. */
const CONTROL_HIGH = 4 * 1024 * 1024;
const CONTROL_LOW = 1024 * 1024;

export class MessageSocketError extends Error {}

export interface MessageSocketOptions {
  agent: Agent;
  path: string;
  log: Logger;
  /** The path is the default one: its directory is made (or made again) private. */
  defaultPath?: boolean;
}

interface Client {
  sock: Socket;
  lines: LineSplitter;
  greeted: boolean;
  name: string;
  /** `ok`/`error` for control sends, in order, each after its commit. */
  acks: Promise<void>;
  /** Not read from until a peer's link drains. */
  waiting: boolean;
}

export class MessageSocket {
  #o: MessageSocketOptions;
  #server: Server | null = null;
  #clients = new Set<Client>();
  #held = new SocketHold({ messages: HOLD_MAX_MESSAGES, bytes: HOLD_MAX_BYTES });
  #heldDropped = 0;
  #rttTimer: NodeJS.Timeout | null = null;
  #drainWaits = 0;
  /** Undo each listener added to the agent (stop()). */
  #unlisten: (() => void)[] = [];

  constructor(o: MessageSocketOptions) {
    this.#o = o;
  }

  get path(): string {
    return this.#o.path;
  }

  /** How often a client was not read from until a link drained (backpressure applied). */
  get drainWaits(): number {
    return this.#drainWaits;
  }

  /** Listen; a path in use, too long or not a socket throws MessageSocketError (one line). */
  async start(): Promise<void> {
    const path = this.#o.path;
    if (Buffer.byteLength(path) > MAX_PATH_BYTES)
      throw new MessageSocketError(
        `--socket ${path}: longer than ${MAX_PATH_BYTES} bytes (a Unix socket path limit)`,
      );
    this.#prepareDir(dirname(path));
    await this.#clearStale(path);
    const server = createServer((sock) => this.#accept(sock));
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e: NodeJS.ErrnoException) =>
        reject(new MessageSocketError(`--socket ${path}: ${errnoText(e)}`)),
      );
      // Created 0600 from the start: no moment where another user could connect.
      const umask = process.umask(0o177);
      try {
        server.listen(path, () => resolve());
      } finally {
        process.umask(umask);
      }
    });
    chmodSync(path, 0o600);
    this.#server = server;
    this.#on("message", (m) => this.#message(m));
    this.#on("link-up", (peer, info) =>
      this.#broadcast({ t: "link", peer, state: "up", path: info.path }),
    );
    this.#on("link-down", (peer, reason) =>
      this.#broadcast({ t: "link", peer, state: "down", reason }),
    );
    this.#on("handover", (h) =>
      this.#broadcast({
        t: "handover",
        peer: h.peer,
        kind: h.kind,
        reason: h.reason,
        gapMs: h.gapMs,
      }),
    );
    this.#rttTimer = setInterval(() => this.#rtt(), RTT_INTERVAL_MS).unref();
    this.#o.log.info({ path }, "message socket listening");
  }

  async stop(): Promise<void> {
    for (const off of this.#unlisten.splice(0)) off();
    if (this.#rttTimer) clearInterval(this.#rttTimer);
    for (const c of this.#clients) c.sock.destroy();
    this.#clients.clear();
    const server = this.#server;
    this.#server = null;
    if (server) await new Promise<void>((r) => server.close(() => r()));
    try {
      unlinkSync(this.#o.path);
    } catch {
      // gone already
    }
  }

  #on<K extends keyof AgentEvents>(event: K, f: (...a: AgentEvents[K]) => void): void {
    // `as never`: the emitter's listener type is a conditional on K that TypeScript cannot
    // resolve here; callers are checked against AgentEvents.
    this.#o.agent.on(event, f as never);
    this.#unlisten.push(() => this.#o.agent.off(event, f as never));
  }

  #prepareDir(dir: string): void {
    try {
      makeDirs(dir, 0o700);
      // Our own default directory is private even if something made it otherwise.
      if (this.#o.defaultPath && (statSync(dir).mode & 0o077) !== 0) chmodSync(dir, 0o700);
    } catch (e) {
      throw new MessageSocketError(`--socket: cannot make ${dir}: ${errnoText(e)}`);
    }
  }

  /** A socket file left by an agent that died is removed; a live one, or any other file, is not. */
  async #clearStale(path: string): Promise<void> {
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(path);
    } catch {
      return; // nothing there
    }
    if (!st.isSocket())
      throw new MessageSocketError(`--socket ${path}: exists and is not a socket`);
    const live = await new Promise<boolean>((resolve) => {
      const s = connect(path);
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (live) throw new MessageSocketError(`--socket ${path}: another agent is listening there`);
    unlinkSync(path);
  }

  #accept(sock: Socket): void {
    const c: Client = {
      sock,
      lines: new LineSplitter(MAX_LINE_BYTES),
      greeted: false,
      name: "",
      acks: Promise.resolve(),
      waiting: false,
    };
    this.#clients.add(c);
    sock.on("data", (chunk: Buffer) => {
      for (const line of c.lines.push(chunk)) this.#line(c, line);
      if (c.lines.overflowed) {
        this.#write(c, {
          t: "error",
          code: "too-long",
          message: `a line is at most ${MAX_LINE_BYTES} bytes; closing`,
        });
        sock.end();
        sock.pause();
      }
    });
    sock.on("error", () => {}); // a client gone mid-write: its close follows
    sock.on("close", () => {
      this.#clients.delete(c);
      if (c.greeted) this.#o.log.info({ client: c.name }, "message socket client left");
    });
  }

  #line(c: Client, line: string): void {
    if (c.sock.destroyed || c.sock.writableEnded) return;
    let f: ClientFrame;
    try {
      f = decodeClientFrame(line);
    } catch (e) {
      const err = e as SocketFrameError;
      this.#write(c, {
        t: "error",
        code: err.code,
        message: err.message,
        ...(err.id !== undefined ? { id: err.id } : {}),
      });
      return;
    }
    if (f.t === "hello") {
      this.#hello(c, f);
      return;
    }
    if (!c.greeted) {
      this.#write(c, {
        t: "error",
        code: "hello-first",
        message: `say {"t":"hello","v":${SOCKET_PROTOCOL_VERSION}} first`,
        ...(f.id !== undefined ? { id: f.id } : {}),
      });
      return;
    }
    if (f.t === "position") this.#position(c, f);
    else this.#send(c, f);
  }

  /** A local program (navigation) publishes where the rover is: agent.setPosition(). */
  #position(c: Client, f: Extract<ClientFrame, { t: "position" }>): void {
    const id = f.id;
    this.#o.agent.setPosition(f.position).then(
      () => {
        if (id !== undefined) this.#write(c, { t: "ok", id });
      },
      (e: unknown) =>
        this.#write(c, {
          t: "error",
          code: "edge",
          message: `position not published: ${(e as Error).message}`,
          ...(id !== undefined ? { id } : {}),
        }),
    );
  }

  #hello(c: Client, f: Extract<ClientFrame, { t: "hello" }>): void {
    if (c.greeted) {
      this.#write(c, { t: "error", code: "hello-first", message: "hello was said already" });
      return;
    }
    if (f.v !== SOCKET_PROTOCOL_VERSION) {
      this.#write(c, {
        t: "error",
        code: "version",
        message: `this agent speaks version ${SOCKET_PROTOCOL_VERSION}, not ${f.v}; closing`,
      });
      c.sock.end();
      return;
    }
    c.greeted = true;
    c.name = f.name ?? "";
    const a = this.#o.agent;
    this.#write(c, {
      t: "hello",
      v: SOCKET_PROTOCOL_VERSION,
      self: a.id,
      room: a.room,
      links: a.stats().map((s) => ({ peer: s.peer, state: s.state, path: s.path, rttMs: s.rttMs })),
    });
    this.#o.log.info({ client: c.name }, "message socket client attached");
    if (this.#heldDropped > 0) {
      this.#write(c, {
        t: "error",
        code: "dropped",
        message: `${this.#heldDropped} control messages arrived while no client was attached and were dropped (more than ${HOLD_MAX_MESSAGES} or ${HOLD_MAX_BYTES} bytes held)`,
      });
      this.#heldDropped = 0;
    }
    this.#durableHold();
    for (const m of this.#held.take()) this.#write(c, messageFrame(m));
  }

  /** Held messages live in the agent's outbox once it has one (it opens when the agent starts). */
  #durableHold(): void {
    const ob = this.#o.agent.outbox;
    if (ob) this.#held.attach(ob);
  }

  #send(c: Client, f: Extract<ClientFrame, { t: "send" }>): void {
    const a = this.#o.agent;
    const { size, max } = sizeAgainstLimit(f.channel, f.payload);
    if (size > max) {
      const id = f.id;
      c.acks = c.acks.then(() =>
        this.#write(c, {
          t: "error",
          code: "too-big",
          message: `not sent: ${size} bytes, at most ${max} on ${f.channel} (split it)`,
          ...(id !== undefined ? { id } : {}),
        }),
      );
      return;
    }
    let writable: boolean;
    try {
      writable = a.send(f.peer, f.channel, f.payload, f.ttlMs ? { ttlMs: f.ttlMs } : undefined);
    } catch (e) {
      const msg = (e as Error).message;
      const code =
        e instanceof BacklogFullError
          ? "outbox-full"
          : e instanceof OutboxError
            ? "outbox-fault"
            : "no-link";
      // After the acks before it: a client matching replies in order sees them in order.
      c.acks = c.acks.then(() =>
        this.#write(c, {
          t: "error",
          code,
          message: `not sent: ${msg}`,
          ...(f.id !== undefined ? { id: f.id } : {}),
        }),
      );
      return;
    }
    if (f.channel === "control") {
      // Acknowledged once it is on disk: from then on the agent delivers it exactly once.
      const committed = a.outbox?.committed() ?? Promise.resolve();
      c.acks = c.acks.then(() =>
        committed.then(
          () => {
            if (f.id !== undefined) this.#write(c, { t: "ok", id: f.id });
          },
          (e: Error) =>
            this.#write(c, {
              t: "error",
              code: "outbox-fault",
              message: `not sent: ${e.message}`,
              ...(f.id !== undefined ? { id: f.id } : {}),
            }),
        ),
      );
    } else if (f.id !== undefined) {
      const id = f.id;
      c.acks = c.acks.then(() => this.#write(c, { t: "ok", id }));
    }
    // werift holds enough for this peer: read no more from this client until it drains.
    if (!writable) this.#pauseUntilDrained(c, f.peer);
    else if (f.channel === "control") this.#throttle(c, f.peer);
  }

  /**
   * Durable `control` is taken at once (it goes out once on disk), so `send` never asks to wait:
   * while the link is up, a client that has more than CONTROL_HIGH unacknowledged is not read
   * from until it is under CONTROL_LOW, so a bulk writer goes at the link's pace instead of
   * running into the outbox bound. While the link is down the outbox takes messages up to its
   * bound (then `outbox-full`).
   */
  #throttle(c: Client, peer: string): void {
    const link = this.#o.agent.link(peer);
    if (c.waiting || !link?.up || link.sender.backlog().bytes <= CONTROL_HIGH) return;
    c.waiting = true;
    this.#drainWaits++;
    c.sock.pause();
    const timer = setInterval(() => {
      const l = this.#o.agent.link(peer);
      if (c.sock.destroyed || !l?.up || l.sender.backlog().bytes <= CONTROL_LOW) {
        clearInterval(timer);
        c.waiting = false;
        if (!c.sock.destroyed) c.sock.resume();
      }
    }, 20);
    timer.unref();
  }

  #pauseUntilDrained(c: Client, peer: string): void {
    // Lines already read go on being taken (kept in order); one wait per client at a time.
    if (c.waiting) return;
    c.waiting = true;
    this.#drainWaits++;
    const a = this.#o.agent;
    c.sock.pause();
    const resume = (p: string) => {
      if (p !== peer) return;
      a.off("drain", resume);
      a.off("link-down", resume);
      c.waiting = false;
      if (!c.sock.destroyed) c.sock.resume();
    };
    a.on("drain", resume);
    // A link that goes down keeps the messages; waiting for a drain would never end.
    a.on("link-down", resume);
  }

  #message(m: AgentMessage): void {
    this.#durableHold();
    const greeted = [...this.#clients].filter((c) => c.greeted);
    if (greeted.length === 0) {
      if (m.channel !== "control") return; // telemetry is worth nothing later
      const dropped = this.#held.hold(m);
      if (dropped > 0 && this.#heldDropped === 0)
        this.#o.log.warn(
          { peer: m.peer },
          "message socket: no client attached and too many control messages held; dropping the oldest",
        );
      this.#heldDropped += dropped;
      return;
    }
    const reliable = m.channel === "control";
    // Messages an earlier process held (rows of the outbox) go first.
    if (this.#held.size > 0) {
      const before = this.#held.take();
      for (const c of greeted) for (const old of before) this.#write(c, messageFrame(old), true);
    }
    for (const c of greeted) this.#write(c, messageFrame(m), reliable);
  }

  #rtt(): void {
    if (this.#clients.size === 0) return;
    for (const s of this.#o.agent.stats()) {
      if (s.state === "down" || s.state === "connecting") continue;
      this.#broadcast(
        { t: "rtt", peer: s.peer, rttMs: s.rttMs, rttAgeMs: s.rttAgeMs, lossPct: s.lossPct },
        false,
      );
    }
  }

  #broadcast(f: AgentFrame, reliable = true): void {
    for (const c of this.#clients) if (c.greeted) this.#write(c, f, reliable);
  }

  /** Unreliable frames skip a client that lags; one that lags far is disconnected. */
  #write(c: Client, f: AgentFrame, reliable = true): void {
    const s = c.sock;
    if (s.destroyed || s.writableEnded) return;
    if (!reliable && s.writableLength > SKIP_UNRELIABLE_ABOVE) return;
    if (s.writableLength > DISCONNECT_ABOVE) {
      this.#o.log.warn({ client: c.name, unread: s.writableLength }, "message socket: slow reader");
      s.end(
        encodeAgentFrame({
          t: "error",
          code: "slow-reader",
          message: `more than ${DISCONNECT_ABOVE} bytes unread; closing`,
        }),
      );
      // It is not reading: the frame may never be seen, the connection goes anyway.
      setTimeout(() => s.destroy(), 5_000).unref();
      return;
    }
    s.write(encodeAgentFrame(f));
  }
}

function messageFrame(m: AgentMessage): AgentFrame {
  return { t: "message", peer: m.peer, channel: m.channel, payload: m.data };
}
