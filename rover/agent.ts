/**
 * The rover agent: joins a room on the edge, follows the room's events, and keeps one Link per
 * remote peer (mesh). Reacts to local network changes (NetWatch) by telling every link and by
 * dropping pooled HTTP connections. API contract: docs/rover.md.
 */
import { execFile } from "node:child_process";
import { EventEmitter } from "node:events";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pino, { type Logger } from "pino";
import type { RTCDataChannel } from "werift";
import {
  checkId,
  cursorAfterJoin,
  type FetchFn,
  RoverlinkClient,
  type TokenSource,
} from "../shared/client.ts";
import {
  ClientInputError,
  EdgeUnreachableError,
  EventStreamEndedError,
  ProblemError,
} from "../shared/errors.ts";
import { encodeFileMessage } from "../shared/file-wire.ts";
import { Quarantine, type Violation } from "../shared/link/conduct.ts";
import { DepartedLinks } from "../shared/link/departed.ts";
import type { HealthConfig, HealthState } from "../shared/link/health.ts";
import { crossedOffer, offersTo } from "../shared/link/pairing.ts";
import { PeerStreams } from "../shared/link/peer-streams.ts";
import {
  type Payload,
  ReliableReceiver,
  ReliableSender,
  type SendOptions,
} from "../shared/link/reliable.ts";
import {
  type IceServer,
  LIMITS,
  type Peer,
  type PeerGoneReason,
  type Position,
  peerGoneReason,
  type RoomEvent,
} from "../shared/protocol.ts";
import { positionProblem } from "../shared/schemas.ts";
import { decodeTokenUnverified } from "../shared/token.ts";
import { blackholeWarning, parseDefaultRouteDevs, parseSourceRules } from "./blackhole-check.ts";
import { EdgeHttp } from "./http.ts";
import type { PeerIdentity } from "./identity.ts";
import { Link, type Path } from "./link.ts";
import { isLoopbackHost } from "./loopback.ts";
import { NetWatch } from "./netwatch.ts";
import { Outbox, type OutboxError, type OutboxOptions } from "./outbox.ts";
import { nextStep, RETRY_FIRST_MS, retryDelay } from "./retry-delay.ts";
import { UplinkManager } from "./uplinks.ts";
import type { VideoSource } from "./video-source.ts";

/**
 * No link to that peer (never made, or dropped), where one is needed: `send`, `openChannel`,
 * `restart`, `disconnect`.
 */
export class NoLinkError extends Error {
  override name = "NoLinkError";
  readonly peer: string;
  constructor(peer: string) {
    super(`no link to "${peer}"`);
    this.peer = peer;
  }
}

/** The agent's id is not the peer its token acts as: the edge would seat that peer instead. */
export class AgentTokenMismatchError extends Error {
  override name = "AgentTokenMismatchError";
}

export interface AgentOptions {
  edge: string;
  room: string;
  id: string;
  token: TokenSource;
  kind?: string;
  meta?: Record<string, unknown>;
  position?: Position;
  /** Peers to offer to (we are the offerer); re-offered when they (re)join. */
  connect?: string[];
  /** Offer to every peer reported nearby (the smaller id offers, so there is one link per pair). */
  connectNearby?: boolean;
  /** Override the edge's ICE servers. */
  iceServers?: IceServer[];
  logger?: Logger;
  health?: Partial<HealthConfig>;
  /** React to local interface/route changes (default true). */
  watchNetwork?: boolean;
  /** The NetWatch to follow instead of a default one (tests give it their own readers). */
  netWatch?: NetWatch;
  /**
   * Multi-homed rovers: a routing table and source rule per uplink, so that what is bound to an
   * uplink's address leaves through it; where those cannot be installed, demote the preferred
   * default route on silent path loss (needs CAP_NET_ADMIN and `ip`; rover/uplinks.ts). Default
   * false.
   */
  manageRoutes?: boolean;
  /** Interval between checks of each backup path (ms; default 2500, rover/backup-paths.ts). */
  backupCheckMs?: number;
  /**
   * How events arrive: one Server-Sent Events stream (default: the edge's keep-alive comment
   * every 15 s is the only idle traffic, ~0.75 MB/day; resumed with Last-Event-ID after every
   * handover, and the edge keeps what it wrote for 60 s, so a stream that died silently loses
   * nothing; the agent long-polls when the edge answers polls but no stream opens) or long-polls
   * (a request every `pollWaitS`, ~4-5 MB/day; the default when `pollWaitS` is given).
   */
  events?: "sse" | "poll";
  /** Events long-poll wait in seconds (0..25, default 20): shorter behind proxies that cut idle requests. */
  pollWaitS?: number;
  /** Wrap the HTTP fetch (tests inject faults with it). */
  wrapFetch?: (f: FetchFn) => FetchFn;
  /** Extra host candidate addresses for werift (default: 127.0.0.1 when the edge is local). */
  iceAdditionalHostAddresses?: string[];
  /** Persistent DTLS certificate and remote-fingerprint check (identity.ts); default none. */
  identity?: PeerIdentity;
  /**
   * Durable `control` streams: kept in `<stateDir>/outbox/<room>/<id>.sqlite` (rover/outbox.ts), so
   * a restarted process resumes them. Default none: in memory, lost with the process.
   */
  stateDir?: string;
  /** Per-peer bound of unacknowledged `control` messages (default 10 000 and 32 MiB). */
  outboxLimits?: { messages?: number; bytes?: number };
  /** Outbox options (tests inject crash points with `faults`). */
  outboxOptions?: Omit<OutboxOptions, "onFault">;
  /**
   * The rover's camera (rover/video-source.ts), started by the caller: sent on links to browser
   * consoles only (peers that joined with kind `browser`), announced as `meta.video`.
   */
  video?: VideoSource;
}

/** One peer's `control` stream figures (the outbox towards it). */
export interface OutboxStats {
  peer: string;
  messages: number;
  bytes: number;
  /** Age of the oldest unacknowledged message, or null when there is none. */
  oldestAgeMs: number | null;
  expired: number;
  rejected: number;
}

export interface LinkStats {
  peer: string;
  state: "connecting" | "up" | "degraded" | "restarting" | "rebuilding" | "down";
  path: Path;
  rttMs: number | null;
  /** How old `rttMs` is: an idle link's answering end measures nothing (the offerer keeps alive). */
  rttAgeMs: number | null;
  lossPct: number | null;
  restarts: number;
  rebuilds: number;
  backlog: number;
  /** The link's video target bitrate (bit/s); null: no video on it. */
  videoTargetBps: number | null;
  /** RTP packets werift sent on the link's video track; null: no video on it. */
  videoPacketsSent: number | null;
}

export interface AgentMessage {
  peer: string;
  channel: string;
  data: Payload;
}

/** A handover, as the `handover` event gives it. */
export interface HandoverInfo {
  peer: string;
  /** `switch`: the selected pair moved (no signaling); `restart`: ICE restart; `rebuild`: new PeerConnection. */
  kind: "switch" | "restart" | "rebuild";
  /** What started it (`silence`, `uplink-gone`, `peer-switch`, …: docs/link-health.md). */
  reason: string;
  /** From the fault's detection (or the decision) to the link carrying data again. */
  gapMs: number;
}

/**
 * The agent's events and what their listeners get (docs/rover.md, "Library use"), so that
 * `agent.on("link-up", (peer, info) => …)` is checked by the compiler.
 */
export interface AgentEvents {
  "link-up": [peer: string, info: { path: Path; firstTime: boolean }];
  "link-down": [peer: string, reason: string];
  "link-state": [peer: string, state: HealthState, prev: HealthState];
  "link-refused": [peer: string, reason: string];
  handover: [info: HandoverInfo];
  message: [message: AgentMessage];
  drain: [peer: string];
  "peer-joined": [peer: Peer];
  /** A peer in the room changed its kind, meta or position (setPosition on a rover). */
  "peer-updated": [peer: Peer];
  "peer-left": [peer: string, reason: PeerGoneReason];
  /** The peer's end of `control` started over (docs/reliability.md). */
  "peer-state-lost": [peer: string, side: "sender" | "receiver"];
  /** A forwarding channel the peer opened (docs/rover.md, "Port forwarding"). */
  channel: [peer: string, channel: RTCDataChannel];
  /** A file transfer's channel; without a listener, transfers are refused. */
  "file-channel": [peer: string, channel: RTCDataChannel];
  violation: [peer: string, kind: Violation];
  misbehaving: [peer: string, violations: Partial<Record<Violation, number>>];
  /** The outbox cannot write (`error`), or writes again (`null`). */
  "outbox-fault": [error: OutboxError | null];
  /** The edge refused a fixed token for good: no more events come. */
  "token-refused": [error: ProblemError];
  /**
   * Another process joined the room with this agent's id (its incarnation): this agent has
   * dropped its links and reads no more events, and `stop()` does not leave (the presence is the
   * other's). Stop it.
   */
  "seat-taken": [incarnation: string];
  /** stop() began: links close; what depends on the agent (a file transfer) ends now. */
  stopped: [];
}

/** A route demotion of ours takes at most this long (ms)... */
const OWN_ROUTES_MS = 2_000;
/** ...and the route change it makes is seen within this long after it (netlink: at once) (ms). */
const OWN_ROUTES_SETTLE_MS = 300;
/** After the event stream could not be opened, long-poll this long before trying it again. */
const SSE_RETRY_MS = 10 * 60_000;
/** How long `control` stream state is kept for a peer without a link. */
const STREAM_KEEP_MS = 3_600_000;
/** setPosition(): at most one update to the edge this often (later values coalesce). */
const POSITION_EVERY_MS = 1_000;
/** How often the agent sweeps while it has something to watch, and otherwise (ms). */
const SWEEP_BUSY_MS = 2_000;
const SWEEP_IDLE_MS = 30_000;
/**
 * Stopping says goodbye to the edge (hang-ups, then leave) within this long: a supervisor
 * stopping us while the edge is unreachable must not have to kill us. Past it, presence and
 * sessions expire on the edge by themselves.
 */
export const LEAVE_BUDGET_MS = 2_000;

export class Agent extends EventEmitter<AgentEvents> {
  readonly id: string;
  readonly room: string;
  readonly log: Logger;
  #o: AgentOptions;
  #http = new EdgeHttp();
  #client: RoverlinkClient;
  #links = new Map<string, Link>();
  #peers = new Map<string, Peer>();
  #cursor: string | undefined;
  #iceServers: IceServer[] = [];
  #running = false;
  #edgeReachable: boolean | null = null;
  #warnedNoIce = false;
  #edgeSince = Date.now();
  #pollAbort: AbortController | null = null;
  #loop: Promise<void> | null = null;
  #net: NetWatch | null = null;
  #iceTimer: NodeJS.Timeout | null = null;
  #handovers = 0;
  readonly #incarnation = Math.random().toString(36).slice(2, 10);
  #uplinks: UplinkManager | null = null;
  /** Route changes until then are our own demotion's (see #networkChanged). */
  #ownRoutesUntil = 0;
  /** A declined offer's session could not be closed: it expires on the edge by itself. */
  #declineFailed = (e: unknown): void => {
    this.log.info({ err: (e as Error).message }, "declined offer not closed; it expires");
  };
  /** The last incarnation seen per peer (kept after it leaves, to tell a restart from a return). */
  #incarnations = new Map<string, unknown>();
  /** Links kept to peers that left the edge (shared/link/departed.ts). */
  #departed = new DepartedLinks();
  #sweepTimer: NodeJS.Timeout | null = null;
  /** What stop() ends: every sendAsync() waiting for room. */
  #onStop = new Set<() => void>();
  /** When the armed sweep runs (ms since epoch). */
  #sweepAt = 0;
  /** Peers whose link was dropped for misbehaving (shared/link/conduct.ts). */
  #quarantine = new Quarantine();
  /**
   * `control` stream state per peer id, outliving Link objects and the peer's processes: a link
   * made afresh carries on where the last one stopped, and the hello exchange tells a peer that
   * resumed from one that lost its state (then the unacknowledged messages go on a new stream).
   * shared/link/peer-streams.ts, as in the console.
   */
  #streams = new PeerStreams({
    sender: (peer) => this.#newSender(peer),
    receiver: (peer) => new ReliableReceiver({}, this.#outbox?.receiverStore(peer)),
    // A peer process that restarted starts one new stream; one that switches streams again
    // within a minute restarts our receiver each time (a warn line each): misbehaving.
    churn: (peer, detail) => this.violation(peer, "stream-churn", detail),
    stateLost: (peer, lost) =>
      lost.side === "sender"
        ? this.#stateLost(peer, "sender", { deliveredBefore: lost.deliveredBefore })
        : this.#stateLost(peer, "receiver", { resent: lost.resent }),
  });
  /** Durable stream state (stateDir); null: in memory. */
  #outbox: Outbox | null = null;
  /** start() once, stop() once: a second event loop or a destroyed client helps nobody. */
  #phase: "new" | "starting" | "stopped" = "new";
  /**
   * A join went out and no answer said it was refused: the edge may list us even though start()
   * never finished (stopped while the join's answer, or the ICE server lookup after it, was on its
   * way). stop() then still says goodbye, or the room would show a ghost until presence expires.
   */
  #mayBeSeated = false;
  /** Another process joined with our id: its events and presence are not ours any more. */
  #seatTaken = false;
  /** Where we are, as joins carry it (the option, then setPosition()). */
  #position: Position | undefined;
  /** setPosition(): the value still to send (undefined: none), and the update on its way. */
  #positionNext: Position | null | undefined;
  #positionFlight: Promise<void> | null = null;
  #positionSentAt = Number.NEGATIVE_INFINITY;

  constructor(o: AgentOptions) {
    super();
    // Bad input fails here, in one line, not as a deaf agent later.
    checkId("room", o.room);
    checkId("peer", o.id);
    const w = o.pollWaitS;
    if (w !== undefined && !(Number.isInteger(w) && w >= 0 && w <= LIMITS.pollWaitMaxS))
      throw new ClientInputError(
        `pollWaitS must be an integer 0..${LIMITS.pollWaitMaxS}, got ${w}`,
      );
    const bad = o.position === undefined ? null : positionProblem(o.position);
    if (bad) throw new ClientInputError(bad);
    this.#o = o;
    this.#position = o.position;
    this.id = o.id;
    this.room = o.room;
    this.log = o.logger ?? pino({ level: "silent" });
    // Short request timeouts: a request stuck on a dead uplink must not hold up a handover.
    this.#client = new RoverlinkClient({
      baseUrl: o.edge,
      token: o.token,
      fetch: o.wrapFetch ? o.wrapFetch(this.#http.fetch) : this.#http.fetch,
      timeoutMs: 5_000,
    });
  }

  get client(): RoverlinkClient {
    return this.#client;
  }

  get handovers(): number {
    return this.#handovers;
  }

  peers(): Peer[] {
    return [...this.#peers.values()];
  }

  /** The durable outbox (null in memory): its `db` takes the application's writes (docs/rover.md). */
  get outbox(): Outbox | null {
    return this.#outbox;
  }

  /**
   * Whether the edge answered the agent's last request for events (any answer, a refusal too:
   * only a request that got none counts as unreachable); null before the first. `since`: when
   * that last changed (ms since the epoch).
   */
  edgeStatus(): { reachable: boolean | null; since: number } {
    return { reachable: this.#edgeReachable, since: this.#edgeSince };
  }

  #edgeAnswered(reachable: boolean): void {
    if (this.#edgeReachable === reachable) return;
    this.#edgeReachable = reachable;
    this.#edgeSince = Date.now();
  }

  /** When the agent's token expires (s since the epoch), if it is a fixed token; else null. */
  tokenExpiry(): number | null {
    const t = this.#o.token;
    if (typeof t !== "string") return null;
    try {
      const exp = decodeTokenUnverified(t).claims.exp;
      return typeof exp === "number" && Number.isFinite(exp) ? exp : null;
    } catch {
      return null; // start() refuses it with one line
    }
  }

  /**
   * Join the room; rejects with a one-line error (ProblemError / EdgeUnreachableError /
   * OutboxError), or with `signal`'s reason when it aborts first (stopped while the edge does not
   * answer).
   */
  async start(signal?: AbortSignal): Promise<void> {
    if (this.#phase !== "new")
      throw new Error(
        this.#phase === "stopped"
          ? "this agent was stopped: make a new Agent to join again"
          : "this agent was started already",
      );
    this.#phase = "starting";
    if (this.#o.stateDir && !this.#outbox) {
      const file = join(this.#o.stateDir, "outbox", this.room, `${this.id}.sqlite`);
      this.#outbox = new Outbox(file, {
        ...this.#o.outboxOptions,
        onFault: (err) => {
          if (err) this.log.error({ err: err.message }, "outbox: messages cannot be kept");
          else this.log.info({}, "outbox: writes work again");
          this.emit("outbox-fault", err);
        },
      });
    }
    try {
      await this.#checkTokenSubject();
      await this.#join(signal);
    } catch (e) {
      // A start that failed may be tried again (the edge was down), unless stop() came meanwhile.
      if (this.#phase === "starting") this.#phase = "new";
      this.#outbox?.close();
      this.#outbox = null;
      throw e;
    }
    // Logged once joined: a failure before that stays one line on stderr.
    if (this.#outbox) this.log.info({ file: this.#outbox.file }, "durable control streams");
    this.#running = true;
    this.#loop = this.#eventLoop();
    this.#sweepSoon(); // the first sweep finds what a durable outbox brought back
    if (this.#o.manageRoutes) {
      this.#uplinks = new UplinkManager({
        log: (o, msg, level = "warn") => this.log[level](o, msg),
      });
      void this.#uplinks.sourceRoute();
    }
    if (this.#o.watchNetwork !== false) {
      void this.#checkBlackholeEscape();
      this.#net = this.#o.netWatch ?? new NetWatch();
      this.#net.on("change", (c: { what: string }) => this.#networkChanged(c.what));
    }
    for (const p of this.#o.connect ?? []) {
      if (this.#peers.has(p)) this.connect(p);
      // Not an error (it may come later), but the one thing an operator needs to know.
      else this.log.info({ peer: p }, "waiting for the peer to join the room");
    }
  }

  /** Say once, at start-up, when a silently dead uplink could not be escaped (blackhole-check.ts). */
  async #checkBlackholeEscape(): Promise<void> {
    const ip = async (args: string[]) =>
      (await promisify(execFile)("ip", args, { timeout: 2_000 })).stdout;
    try {
      const devAddresses: Record<string, string[]> = {};
      for (const [dev, addrs] of Object.entries(networkInterfaces()))
        devAddresses[dev] = (addrs ?? []).filter((x) => x.family === "IPv4").map((x) => x.address);
      const warning = blackholeWarning({
        defaultRouteDevs: parseDefaultRouteDevs(await ip(["-j", "route", "show", "default"])),
        manageRoutes: this.#o.manageRoutes === true,
        devAddresses,
        sourceRuleFroms: parseSourceRules(await ip(["-j", "rule", "show"]).catch(() => "[]")),
      });
      if (warning) this.log.warn({}, warning);
    } catch (e) {
      // No `ip` (iproute2) here: nothing to say about routes.
      this.log.debug({ err: (e as Error).message }, "uplink check skipped");
    }
  }

  /**
   * Before joining: a join seats the token's subject, whatever this agent's id. With another
   * peer's token it would announce a new incarnation of that peer (its links dropped), then every
   * call as `id` would be refused. A token that does not decode is left to the edge to refuse.
   */
  async #checkTokenSubject(): Promise<void> {
    const t = this.#o.token;
    let sub: unknown;
    try {
      sub = decodeTokenUnverified(typeof t === "function" ? await t() : t).claims.sub;
    } catch {
      return;
    }
    if (typeof sub === "string" && sub !== this.id)
      throw new AgentTokenMismatchError(
        `the token acts as "${sub}", not "${this.id}": use a token for "${this.id}", or run as "${sub}"`,
      );
  }

  async #join(signal?: AbortSignal): Promise<void> {
    const body: { kind: string; meta?: Record<string, unknown>; position?: Position } = {
      kind: this.#o.kind ?? "rover",
    };
    // A new incarnation tells peers this process is new even when the edge still lists us (a
    // restart within the presence TTL): they rebuild their link instead of restarting a dead one.
    body.meta = { ...this.#o.meta, incarnation: this.#incarnation };
    // Consoles add a receive-only video section to their offers to a peer that announces this.
    if (this.#o.video) body.meta.video = { codec: this.#o.video.config.codec };
    if (this.#position) body.position = this.#position;
    this.#mayBeSeated = true;
    const j = await this.#client.join(this.room, body, signal).catch((e: unknown) => {
      // The edge answered no, or was never reached: nothing to leave. (A timeout or an abort
      // may have come after the edge seated us.)
      if (e instanceof ProblemError || (e instanceof EdgeUnreachableError && !e.timedOut))
        this.#mayBeSeated = false;
      throw e;
    });
    const known = new Set(this.#peers.keys());
    this.#peers.clear();
    for (const p of j.peers) {
      this.#peers.set(p.id, p);
      if (this.#noteIncarnation(p)) this.#dropLink(p.id, "peer restarted");
    }
    // A re-join to an edge that forgot the room (restarted without its state) lists only who came
    // back: the others left while we could not hear it. Their links were rebuilt forever.
    for (const peer of new Set([...known, ...this.#links.keys()]))
      if (!this.#peers.has(peer)) this.#peerGone(peer, "expired");
    this.#cursor = cursorAfterJoin(this.#cursor, j);
    this.#edgeAnswered(true);
    this.#iceServers = this.#o.iceServers ?? j.iceServers;
    if (
      this.#iceServers.length === 0 &&
      !this.#warnedNoIce &&
      !isLoopbackHost(new URL(this.#o.edge).hostname)
    ) {
      // Host candidates only: peers behind different NATs never link, and offer again forever.
      this.#warnedNoIce = true;
      this.log.warn(
        {},
        "the edge hands out no STUN or TURN servers: only peers on the same network can link (set STUN_URLS and TURN on the edge, docs/protocol.md)",
      );
    }
    this.log.info(
      { room: this.room, id: this.id, peers: j.peers.length, resumed: j.status === 200 },
      "joined",
    );
    if (!this.#o.iceServers && j.iceServers.some((s) => s.credential)) {
      // Learn the credentials' lifetime (the join response does not carry it).
      const r = await this.#client.iceServers(this.room, signal).catch((e: unknown) => {
        this.log.warn(
          { err: (e as Error).message },
          "ICE server lifetime unknown; refreshing in 60 s",
        );
        return null;
      });
      if (r) this.#iceServers = r.iceServers;
      this.#scheduleIceRefresh(r?.ttl ?? 3600);
    }
  }

  #scheduleIceRefresh(ttlS: number): void {
    if (this.#iceTimer) clearTimeout(this.#iceTimer);
    if (this.#o.iceServers || ttlS <= 0) return;
    // Refresh TURN credentials well before they expire; new PeerConnections take the fresh ones.
    this.#iceTimer = setTimeout(
      async () => {
        try {
          const r = await this.#client.iceServers(this.room);
          this.#iceServers = r.iceServers;
          this.log.info(
            { servers: r.iceServers.length, ttl: r.ttl },
            "ICE server credentials refreshed",
          );
          for (const l of this.#links.values()) l.updateIceServers();
          this.#scheduleIceRefresh(r.ttl);
        } catch (e) {
          this.log.warn({ err: (e as Error).message }, "ICE server refresh failed");
          this.#scheduleIceRefresh(60);
        }
      },
      Math.max(10, ttlS / 2) * 1000,
    );
    this.#iceTimer.unref();
  }

  /** One Server-Sent Events stream, until the edge ends it; throws as `client.stream` does. */
  async #streamEvents(signal: AbortSignal, onOpen: () => void, onEvent: () => void): Promise<void> {
    const events = this.#client.stream(this.room, this.id, {
      ...(this.#cursor !== undefined ? { lastEventId: this.#cursor } : {}),
      signal,
      onOpen,
    });
    for await (const ev of events) {
      onEvent();
      this.#onEvent(ev);
      // Reading on would take (and, on a stream, acknowledge) the other process's events.
      if (this.#seatTaken) return;
      this.#cursor = ev.id;
    }
  }

  async #eventLoop(): Promise<void> {
    let backoff = RETRY_FIRST_MS;
    // A poll wait given and no mode: the caller wants long-polls.
    const preferred = this.#o.events ?? (this.#o.pollWaitS !== undefined ? "poll" : "sse");
    let mode = preferred;
    /** While long-polling instead of streaming: when to try the stream again. */
    let retrySseAt = 0;
    let streamOpen = false;
    /** Why the stream last failed to open, while one long-poll tells the two causes apart. */
    let streamFailed: string | null = null;
    while (this.#running && !this.#seatTaken) {
      this.#pollAbort = new AbortController();
      if (mode === "poll" && preferred === "sse" && Date.now() >= retrySseAt) mode = "sse";
      try {
        if (mode === "sse") {
          const opened = Date.now();
          streamOpen = false;
          await this.#streamEvents(
            this.#pollAbort.signal,
            () => {
              streamOpen = true;
              this.#edgeAnswered(true);
            },
            () => {
              backoff = RETRY_FIRST_MS;
            },
          );
          // The edge ended the stream (a deploy, its lease): open the next at once, unless it
          // keeps ending them at once.
          if (Date.now() - opened < 1_000) {
            await this.#pause(retryDelay(backoff, null));
            backoff = nextStep(backoff);
          }
          continue;
        }
        const r = await this.#client.poll(this.room, this.id, {
          after: this.#cursor,
          wait: this.#o.pollWaitS ?? 20,
          signal: this.#pollAbort.signal,
        });
        backoff = RETRY_FIRST_MS;
        this.#edgeAnswered(true);
        if (streamFailed !== null) {
          // The edge answers polls but no stream came (not an event stream, or a proxy that
          // holds the answer until it ends): long-polls work everywhere; the stream later.
          this.log.warn(
            { err: streamFailed, retryStreamInS: SSE_RETRY_MS / 1000 },
            "event stream not available; long-polling instead",
          );
          streamFailed = null;
          retrySseAt = Date.now() + SSE_RETRY_MS;
        }
        for (const ev of r.events) {
          this.#onEvent(ev);
          if (this.#seatTaken) break;
        }
        if (this.#seatTaken) break;
        this.#cursor = r.cursor;
      } catch (e) {
        if (!this.#running) break;
        if (this.#pollAbort.signal.aborted) continue; // network change: poll again on a fresh connection
        this.#edgeAnswered(e instanceof ProblemError || e instanceof EventStreamEndedError);
        if (mode === "sse" && !streamOpen && !(e instanceof ProblemError)) {
          // The stream did not open: the edge is unreachable (then the stream is tried again, as
          // long-polls would fail too), or it does not stream. One long-poll tells which.
          mode = "poll";
          streamFailed = (e as Error).message;
          retrySseAt = Number.POSITIVE_INFINITY;
          continue;
        }
        if (streamFailed !== null) {
          // The poll failed too: the edge is unreachable, not the stream unsupported.
          streamFailed = null;
          retrySseAt = 0;
        }
        let delay = retryDelay(backoff, e);
        if (e instanceof ProblemError && e.status === 404) {
          // Links are kept: their paths do not go through the edge, and the peers keep theirs.
          this.log.warn({}, "the edge forgot us (presence expired): joining again");
          try {
            await this.#join();
            continue;
          } catch (err) {
            // The wait is the join's to set (a 429's or 503's Retry-After), not the 404's.
            delay = retryDelay(backoff, err);
            this.log.warn({ err: (err as Error).message, retryInMs: delay }, "re-join failed");
          }
        } else if (
          e instanceof ProblemError &&
          (e.status === 401 || e.status === 403) &&
          typeof this.#o.token === "string"
        ) {
          // A fixed token the edge refuses (it expired, or its key was rotated) never works
          // again: say so and stop, rather than poll deaf forever. A token function may
          // recover (a rotated file), so it is retried below.
          this.log.error({ err: e.message }, "the edge refuses our token: no more events");
          this.emit("token-refused", e);
          break;
        } else {
          this.log.warn({ err: (e as Error).message, retryInMs: delay }, "events poll failed");
        }
        await this.#pause(delay);
        backoff = nextStep(backoff);
      }
    }
  }

  /**
   * Wait between tries at the edge, cut short by what aborts the current request: stop() (a
   * supervisor's SIGTERM waited up to 5 s on it) or a network change (try the new path at once).
   */
  #pause(ms: number): Promise<void> {
    const signal = this.#pollAbort?.signal;
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
    });
  }

  #onEvent(ev: RoomEvent): void {
    this.log.debug({ event: ev.type, id: ev.id }, "event");
    switch (ev.type) {
      case "peer-joined":
      case "peer-updated": {
        const id = ev.peer.id;
        const prev = this.#peers.get(id);
        this.#peers.set(id, ev.peer);
        const reborn = this.#noteIncarnation(ev.peer);
        if (ev.type === "peer-updated" && prev && !reborn) {
          this.emit("peer-updated", ev.peer);
          return;
        }
        this.emit("peer-joined", ev.peer);
        const l = this.#links.get(id);
        if (l && !reborn) {
          // The same process back at the edge (its presence had expired): keep the link, with
          // its reliable stream; a link that is not up offers again now.
          l.reoffer();
          return;
        }
        if (l) {
          // A new process behind the id: its PeerConnection and reliable stream are gone.
          this.#dropLink(id, "peer restarted");
        }
        if (this.#o.connect?.includes(id)) this.connect(id);
        return;
      }
      case "peer-left":
        this.#peerGone(ev.peer, peerGoneReason(ev));
        return;
      case "nearby":
        if (this.#o.connectNearby)
          for (const p of ev.peers) if (offersTo(this.id, p)) this.connect(p);
        return;
      case "offer": {
        if (this.#quarantine.refused(ev.from, Date.now())) {
          // Logged once a quarantine: a peer could offer in a loop.
          if (this.#quarantine.declined(ev.from))
            this.log.info({ peer: ev.from }, "offer from a quarantined peer declined");
          void this.#client.closeSession(this.room, ev.session).catch(this.#declineFailed);
          return;
        }
        let l = this.#links.get(ev.from);
        if (l && l.role === "offerer" && l.session !== ev.session) {
          if (crossedOffer(this.id, ev.from) === "decline") {
            // Both offered at once: the smaller id's offer wins; decline theirs. (Our own offer
            // may still be waiting for its answer, session unknown: it wins all the same, and
            // the other side yields to it.)
            void this.#client.closeSession(this.room, ev.session).catch(this.#declineFailed);
            return;
          }
          void l.close(false);
          this.#links.delete(ev.from);
          l = undefined;
        }
        if (!l) l = this.#newLink(ev.from, "answerer");
        void l.onOffer(ev);
        return;
      }
      case "answer":
        void this.#links.get(ev.from)?.onAnswer(ev);
        return;
      case "candidates":
        void this.#links.get(ev.from)?.onCandidates(ev);
        return;
      case "restart":
        // A WHIP-style restart by PATCH (curl, other clients); agents restart by re-POST.
        void this.#links.get(ev.from)?.onRestart(ev);
        return;
      case "session-closed":
        for (const l of this.#links.values()) l.onSessionClosed(ev.session, ev.reason);
        return;
      case "seat-taken":
        // Our own re-join keeps our incarnation, and a new process starts after its event.
        if (ev.incarnation === this.#incarnation || this.#seatTaken) return;
        this.#seatTaken = true;
        this.log.error(
          { room: this.room, id: this.id, incarnation: ev.incarnation },
          "another process joined the room with this peer id: this agent drops its links, reads no more events and will not leave (two agents cannot share an id)",
        );
        // The peers follow the new process (its incarnation); ours would offer again under the
        // same id and fight its links. Not hung up: the edge's sessions of this id are its now.
        for (const peer of [...this.#links.keys()]) void this.#dropLink(peer, "seat taken");
        this.emit("seat-taken", ev.incarnation);
        return;
    }
  }

  /** The edge lists `peer` no more: its link is dropped, or kept for a grace while it works. */
  #peerGone(peer: string, reason: PeerGoneReason): void {
    this.#peers.delete(peer);
    const l = this.#links.get(peer);
    if (l && this.#departed.left(peer, reason, l.up, Date.now()) === "keep") {
      this.#sweepSoon();
      // The edge lost sight of the peer (its uplink to the edge, or the edge, failed), the
      // path between us did not: kept for a bounded grace while it works (#sweep).
      const { maxKeepMs } = this.#departed.config;
      this.log.info(
        { peer, keepS: maxKeepMs / 1000 },
        "peer's presence expired; live link kept for a grace",
      );
    } else if (l) {
      this.#dropLink(peer, `peer ${reason}`);
    }
    this.emit("peer-left", peer, reason);
  }

  /** True when `peer` is a new process (another incarnation than the one we knew). */
  #noteIncarnation(peer: Peer): boolean {
    const now = peer.meta.incarnation;
    const known = this.#incarnations.get(peer.id);
    this.#incarnations.set(peer.id, now);
    const reborn = known !== undefined && known !== now;
    // Its streams stay (#streamsFor): the new process's hello settles them.
    return reborn;
  }

  /** The `control` stream state for the current process behind `peer`. */
  #streamsFor(peer: string): { sender: ReliableSender; receiver: ReliableReceiver } {
    // A new process behind the peer id keeps both streams too, in memory as on disk: its hello
    // tells whether it resumed ours (durable) or starts from nothing, and then what the old
    // process had not acknowledged goes to the new one on a new stream (`rebase`), with
    // `peer-state-lost`. In memory this used to start a new sender, losing messages `send` had
    // taken without a word. Our receiver: a new stream from the peer resets it by itself.
    return this.#streams.for(peer);
  }

  #newSender(peer: string): ReliableSender {
    const limits = this.#o.outboxLimits;
    return new ReliableSender({
      ...(limits?.messages !== undefined ? { maxBacklog: limits.messages } : {}),
      ...(limits?.bytes !== undefined ? { maxBacklogBytes: limits.bytes } : {}),
      ...(this.#outbox ? { store: this.#outbox.senderStore(peer) } : {}),
    });
  }

  /** The peer's end of a `control` stream started over: it lost its state (or keeps none). */
  #stateLost(peer: string, side: "sender" | "receiver", detail: object): void {
    this.log.warn(
      { peer, side, ...detail },
      side === "receiver"
        ? "peer lost its control-stream state (it expects a stream from the start): unacknowledged messages go again on a new stream"
        : "peer lost its control-stream state (it sends a new stream): receiving from the start",
    );
    this.emit("peer-state-lost", peer, side);
  }

  /**
   * The peer broke the link protocol past its budget: drop the link (hanging up), forget its
   * stream state (what it sent cannot be trusted, and it must not hold our memory), and refuse
   * it for a while, longer each time.
   */
  #dropMisbehaving(peer: string, violations: Partial<Record<Violation, number>>): void {
    const ms = this.#quarantine.strike(peer, Date.now());
    this.#sweepSoon();
    this.log.warn(
      { peer, violations, quarantineS: Math.round(ms / 1000) },
      "dropping a misbehaving peer's link",
    );
    this.#dropLink(peer, "misbehaving", true);
    this.#streams.delete(peer);
    this.emit("misbehaving", peer, violations);
  }

  /** Close and forget the link to `peer`: the promise settles once it is closed. */
  #dropLink(peer: string, reason: string, hangUp = false): Promise<void> {
    const l = this.#links.get(peer);
    if (!l) return Promise.resolve();
    const closed = l.close(hangUp);
    this.#links.delete(peer);
    this.#departed.forget(peer);
    this.#followLinks();
    this.emit("link-down", peer, reason);
    return closed;
  }

  /**
   * Links kept to peers the edge no longer lists: dropped once they have been down a while.
   * Stream state of peers with no link: forgotten after an hour.
   */
  #sweep(): void {
    this.#sweepTimer = null;
    if (!this.#running) return;
    const now = Date.now();
    for (const [peer, s] of this.#streams) {
      s.sender.expire(now); // stale messages are dropped (counted) while they wait
      if (this.#links.has(peer)) s.idleSince = now;
      // Durable state stays on disk; in memory, what waits for the peer is kept as well.
      else if (
        now - s.idleSince >= STREAM_KEEP_MS &&
        (!this.#outbox || s.sender.backlog().messages === 0)
      )
        this.#streams.delete(peer);
    }
    for (const peer of this.#links.keys())
      if (this.#departed.isKept(peer) && this.#peers.has(peer)) this.#departed.returned(peer);
    for (const peer of this.#departed.sweep(now, (p) => this.#links.get(p)?.up ?? false))
      this.#dropLink(peer, "peer gone");
    for (const peer of this.#quarantine.released(now)) {
      // Served: a peer we are told to connect to gets a new offer.
      if (this.#o.connect?.includes(peer) && this.#peers.has(peer)) this.connect(peer);
    }
    this.#armSweep();
  }

  /**
   * The next sweep: in 2 s while something it watches can change soon (messages waiting with a
   * deadline, links kept to departed peers, refused peers), in 30 s otherwise. A fixed 2 s timer
   * woke an idle rover for nothing; what makes the sweep busy again calls this at once.
   */
  #armSweep(): void {
    if (!this.#running) return;
    let busy = this.#departed.keeping || this.#quarantine.refusing;
    if (!busy)
      for (const s of this.#streams.values())
        if (s.sender.backlog().messages > 0) {
          busy = true;
          break;
        }
    this.#sweepIn(busy ? SWEEP_BUSY_MS : SWEEP_IDLE_MS);
  }

  /** Something the sweep watches may have begun (a send, a kept link, a refusal). Cheap. */
  #sweepSoon(): void {
    this.#sweepIn(SWEEP_BUSY_MS);
  }

  /** Sweep within `ms`: an armed sweep that comes sooner stays. */
  #sweepIn(ms: number): void {
    if (!this.#running) return;
    const at = Date.now() + ms;
    if (this.#sweepTimer && this.#sweepAt <= at) return;
    if (this.#sweepTimer) clearTimeout(this.#sweepTimer);
    this.#sweepAt = at;
    this.#sweepTimer = setTimeout(() => this.#sweep(), ms);
    this.#sweepTimer.unref();
  }

  #newLink(peer: string, role: "offerer" | "answerer"): Link {
    const local = isLoopbackHost(new URL(this.#o.edge).hostname);
    const extra = this.#o.iceAdditionalHostAddresses ?? (local ? ["127.0.0.1"] : undefined);
    const link = new Link({
      ...this.#streamsFor(peer),
      client: this.#client,
      room: this.room,
      self: this.id,
      peer,
      role,
      raw:
        this.#peers.get(peer)?.kind === "browser" && this.#peers.get(peer)?.meta.control !== "rl1",
      iceServers: () => this.#iceServers,
      log: this.log,
      ...(this.#o.health ? { health: this.#o.health } : {}),
      ...(this.#o.backupCheckMs !== undefined ? { backupCheckMs: this.#o.backupCheckMs } : {}),
      ...(extra ? { iceAdditionalHostAddresses: extra } : {}),
      ...(this.#o.identity ? { identity: this.#o.identity } : {}),
      // Video goes to consoles only: other rovers would pay for a stream nobody watches.
      ...(this.#o.video && this.#peers.get(peer)?.kind === "browser"
        ? { video: this.#o.video }
        : {}),
    });
    link.on("refused", (reason: string) => {
      this.emit("link-refused", peer, reason);
      if (this.#links.get(peer) === link && !link.up) this.#dropLink(peer, "refused");
    });
    link.on("up", (info: { path: Path; firstTime: boolean }) => {
      this.log.info({ peer, path: info.path, first: info.firstTime }, "link up");
      this.emit("link-up", peer, info);
    });
    link.on("down", (reason: string) => this.emit("link-down", peer, reason));
    link.on("drain", () => this.emit("drain", peer));
    link.on("violation", (kind) => this.emit("violation", peer, kind));
    link.on("misbehaving", (counts) => {
      if (this.#links.get(peer) === link) this.#dropMisbehaving(peer, counts);
    });
    link.on("message", (m: { channel: string; data: Payload }) =>
      this.emit("message", { peer, ...m }),
    );
    link.on("channel", (dc: RTCDataChannel) => this.emit("channel", peer, dc));
    link.on("file-channel", (dc: RTCDataChannel) => {
      if (this.listenerCount("file-channel") > 0) this.emit("file-channel", peer, dc);
      else refuseFiles(dc);
    });
    link.on("state", (state, prev) => this.emit("link-state", peer, state, prev));
    link.on("restart-failed", (err: string) => {
      // The restart could not reach the edge: its kept-alive connection may ride a dead uplink.
      this.log.info({ peer, err }, "restart attempt failed; fresh connections to the edge");
      this.#freshHttp();
    });
    link.on("restarting", (reason: string) => {
      this.log.info({ peer, reason }, "handover started");
      // Silent loss with the routing table unchanged: the preferred uplink may be a black hole.
      if (reason === "silence" || reason === "restart-timeout") {
        // Kept-alive HTTP connections may sit on the dead path too.
        this.#freshHttp();
        if (this.#uplinks) {
          this.#ownRoutesUntil = Date.now() + OWN_ROUTES_MS;
          void this.#uplinks.demotePrimary().finally(() => {
            this.#ownRoutesUntil = Date.now() + OWN_ROUTES_SETTLE_MS;
          });
        }
      }
    });
    link.on("switching", (reason: string) => {
      this.log.info({ peer, reason }, "switching to a backup path");
      // The link no longer needs the edge for this, but the agent's own requests may ride the
      // dead path too.
      if (reason === "silence" || reason === "uplink-gone") this.#freshHttp();
      if (reason === "silence") void this.#uplinks?.demotePrimary();
    });
    link.on("handover", (h) => {
      this.#handovers++;
      this.log.info({ peer, ...h }, "handover done");
      this.#followLinks();
      this.emit("handover", { peer, ...h });
    });
    this.#links.set(peer, link);
    return link;
  }

  /** Start linking to a peer (we offer). */
  connect(peer: string): void {
    if (peer === this.id || this.#links.has(peer) || this.#seatTaken) return;
    if (this.#quarantine.refused(peer, Date.now())) return;
    void this.#newLink(peer, "offerer").start();
  }

  /**
   * Send to a peer. `control` is exactly-once across restarts and rebuilds; durable (stateDir), it
   * is accepted even with no link to a peer we know of, and kept until acknowledged. Returns false
   * when werift holds enough `control` data for now (the message is kept): wait for `drain` (or
   * use `sendAsync`) before sending more, as with Node streams. Throws BacklogFullError when the
   * peer's outbox is full and OutboxError when the disk cannot keep the message.
   */
  send(peer: string, channel: string, data: Payload, opts?: SendOptions): boolean {
    this.#sweepSoon();
    const l = this.#links.get(peer);
    if (l) return l.send(channel, data, opts);
    if (channel === "control" && this.#outbox && peer !== this.id && this.#knows(peer)) {
      this.#streamsFor(peer).sender.send(data, opts);
      return true;
    }
    throw new NoLinkError(peer);
  }

  /**
   * Bytes werift holds for `channel` to `peer`, not yet on the wire: 0 when there is no link or
   * the channel is not open. An application channel has no flow control of its own (`send`
   * returns true): a sender that must not outrun a slow or stalled peer watches this.
   */
  bufferedAmount(peer: string, channel: string): number {
    return this.#links.get(peer)?.buffered(channel) ?? 0;
  }

  /** `send`, waiting for the link to drain first when it asked the caller to wait. */
  async sendAsync(peer: string, channel: string, data: Payload, opts?: SendOptions): Promise<void> {
    if (this.send(peer, channel, data, opts)) return;
    await new Promise<void>((resolve) => {
      const on = (p?: string) => {
        if (p !== undefined && p !== peer) return;
        this.off("drain", on);
        this.off("link-down", on);
        this.#onStop.delete(on);
        resolve();
      };
      this.on("drain", on);
      // A link that goes down keeps the message; waiting on would never end. Nor after stop()
      // (the message was taken: with stateDir it is on disk for the next start).
      this.on("link-down", on);
      this.#onStop.add(on);
    });
  }

  /**
   * Open a data channel to `peer` that the caller handles itself (messages do not come as
   * `message` events). The peer's agent emits `channel` (peer, channel) for it when its label
   * starts with `rlfwd/` (shared/forward-wire.ts); other labels are ordinary application channels
   * there. Throws when there is no link to `peer`.
   */
  openChannel(
    peer: string,
    label: string,
    opts: { ordered: boolean; maxRetransmits?: number },
  ): RTCDataChannel {
    const dc = this.#links.get(peer)?.openChannel(label, opts);
    if (!dc) throw new NoLinkError(peer);
    return dc;
  }

  /** Count a breach of a protocol carried outside the link (file transfers) against `peer`. */
  violation(peer: string, kind: Violation, detail: string): void {
    this.#links.get(peer)?.violation(kind, detail);
  }

  /**
   * `send` on `control`, resolved once the message is on disk (at once in memory); rejects with
   * OutboxError when its batch could not be written (the message was not accepted).
   */
  async sendDurable(peer: string, data: Payload, opts?: SendOptions): Promise<void> {
    this.send(peer, "control", data, opts);
    await this.#outbox?.committed();
  }

  #knows(peer: string): boolean {
    return this.#peers.has(peer) || this.#streams.has(peer) || !!this.#outbox?.knows(peer);
  }

  /** The `control` outbox towards every peer with stream state. */
  outboxStats(): OutboxStats[] {
    const now = Date.now();
    return [...this.#streams].map(([peer, s]) => {
      const st = s.sender.stats();
      const at = s.sender.oldestAt();
      return {
        peer,
        messages: st.backlog,
        bytes: st.backlogBytes,
        oldestAgeMs: at === null ? null : Math.max(0, now - at),
        expired: st.expired,
        rejected: st.rejected,
      };
    });
  }

  broadcast(channel: string, data: Payload): void {
    for (const l of this.#links.values()) l.send(channel, data);
  }

  /**
   * Publish where this rover is (null: no position). Peers get `peer-updated`, and the room's
   * `nearby` lists follow. Before start() or while rejoining, the next join carries it. One
   * update is on its way at a time, at most one a second: values set meanwhile coalesce into
   * the next one (the latest wins), so a program may call this at its sensor's rate. Resolves
   * when an update carrying this value (or a later one) is accepted, or once the agent stopped;
   * rejects with ClientInputError for a value the edge would refuse, else with the edge's
   * one-line error.
   */
  setPosition(position: Position | null): Promise<void> {
    // A bad reading rejects like an edge refusal (a sensor's NaN must not throw in a loop).
    const problem = position === null ? null : positionProblem(position);
    if (problem) return Promise.reject(new ClientInputError(problem));
    this.#position = position ? { ...position } : undefined;
    if (!this.#running) return Promise.resolve();
    this.#positionNext = position;
    this.#positionFlight ??= this.#sendPositions().finally(() => {
      this.#positionFlight = null;
    });
    return this.#positionFlight;
  }

  async #sendPositions(): Promise<void> {
    while (this.#positionNext !== undefined && this.#running) {
      // At most one a second: the edge allows a peer 600 requests a minute for everything, and
      // restarts and trickles must not wait behind a sensor's rate (each update also goes to
      // every peer in the room).
      const wait = this.#positionSentAt + POSITION_EVERY_MS - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait).unref());
      if (this.#positionNext === undefined || !this.#running) return;
      const position = this.#positionNext;
      this.#positionNext = undefined;
      this.#positionSentAt = Date.now();
      // The position replaces the last (a merge patch would keep a map this one does not name).
      const patch = position === null ? null : { ...position, map: position.map ?? null };
      await this.#client.updatePeer(this.room, this.id, { position: patch });
    }
  }

  /**
   * Force an ICE-restart handover on the link to `peer` now; rejects with NoLinkError when there is
   * none. `reason` is logged with the request; the `handover` event's reason is `manual`.
   */
  async restart(peer: string, reason = "manual"): Promise<void> {
    const l = this.#links.get(peer);
    if (!l) throw new NoLinkError(peer);
    l.restart(reason);
  }

  /**
   * The links now, by peer: a snapshot (a copy made at the call), so changing it changes nothing
   * here and it does not follow links made or dropped later. Until 2026-12-08 this returned the
   * agent's own map, which callers could (and tests did) delete links from behind its back. Use
   * `link(peer)` for one peer and `disconnect(peer)` to drop one.
   */
  links(): ReadonlyMap<string, Link> {
    return new Map(this.#links);
  }

  /** The link to `peer` (up, or recovering from a fault), or undefined. */
  link(peer: string): Link | undefined {
    return this.#links.get(peer);
  }

  /**
   * Drop the link to `peer`: it closes, `link-down` says `disconnected`, and its session is hung
   * up (DELETE) unless `hangUp` is false (the peer then learns it from the link itself: the
   * PeerConnection's close reaches it, as when a process forgets a link). The `control` stream
   * state stays: a link made again carries on. A peer that offers again (an agent told to
   * connect to us) is answered. Resolves once the link is closed; rejects with NoLinkError when
   * there is none.
   */
  async disconnect(peer: string, opts: { hangUp?: boolean } = {}): Promise<void> {
    if (!this.#links.has(peer)) throw new NoLinkError(peer);
    await this.#dropLink(peer, "disconnected", opts.hangUp ?? true);
  }

  /** Whether a link to `peer` exists (up, or recovering from a fault). */
  hasLink(peer: string): boolean {
    return this.#links.has(peer);
  }

  /** The camera source (null: no --video). */
  get video(): VideoSource | null {
    return this.#o.video ?? null;
  }

  stats(): LinkStats[] {
    const now = Date.now();
    return [...this.#links.values()].map((l) => {
      const h = l.health.snapshot(now);
      return {
        peer: l.peer,
        // The policy's own report (degraded: late probes or loss past its threshold).
        state: h.state,
        path: l.path(),
        rttMs: h.rttMs,
        rttAgeMs: h.rttAt === null ? null : Math.max(0, now - h.rttAt),
        lossPct: h.lossPct,
        restarts: h.restarts,
        rebuilds: h.rebuilds,
        backlog: l.sender.backlog().messages,
        videoTargetBps: l.videoStats()?.targetBps ?? null,
        videoPacketsSent: l.videoStats()?.packetsOnWire ?? null,
      };
    });
  }

  /**
   * Requests to the edge leave from the uplink a link escaped to, when the routing table still
   * prefers another (a silent blackhole on a rover that cannot move its routes): else the edge,
   * reached through the dead uplink, would expire our presence and miss our restarts. Back to the
   * routing table's choice when no link rides such an uplink any more.
   */
  #followLinks(): void {
    let address: string | null = null;
    for (const l of this.#links.values()) address ??= l.escapeAddress();
    if (!this.#http.bindTo(address)) return;
    this.log.info(
      { from: address ?? "the routing table's choice" },
      address
        ? "requests to the edge follow the link's uplink"
        : "requests to the edge follow the routing table",
    );
    this.#pollAbort?.abort();
  }

  /** New HTTP connections for everything from now on; the parked poll is re-sent on one at once. */
  #freshHttp(): void {
    this.#http.reset();
    this.#pollAbort?.abort();
  }

  #networkChanged(what: string): void {
    if (what === "routes" && Date.now() < this.#ownRoutesUntil) {
      // Our own demotion of a dead uplink's route, part of the handover under way: not a new
      // cause (it superseded that handover in the lab, costing ~1 s).
      this.log.debug({ what }, "route change of our own");
      return;
    }
    this.log.info({ what }, "local network changed");
    void this.#uplinks?.sourceRoute(); // an uplink's address or gateway may be new
    this.#freshHttp();
    for (const l of this.#links.values()) l.networkChanged();
    this.#followLinks();
  }

  /** Leave the room and close every link; the goodbye to the edge takes at most `budgetMs`. */
  async stop(budgetMs = LEAVE_BUDGET_MS): Promise<void> {
    this.#phase = "stopped";
    for (const f of [...this.#onStop]) f();
    this.emit("stopped");
    if (!this.#running) {
      // Not joined (or stopped before): a join still in flight is cut off. If it may have seated
      // us, leave anyway (a 404 then just means it never arrived); with half the budget, as an
      // edge that kept the join unanswered is unlikely to answer this at once.
      if (this.#mayBeSeated) {
        this.#mayBeSeated = false;
        this.#http.reset(0);
        await this.#client.leave(this.room, this.id, AbortSignal.timeout(budgetMs / 2)).then(
          () => this.log.info({}, "left (stopped while joining)"),
          (e: unknown) => {
            if (!(e instanceof ProblemError && e.status === 404))
              this.log.warn(
                { err: (e as Error).message },
                "leave not confirmed; presence expires by itself",
              );
          },
        );
      }
      await this.#http.destroy();
      return;
    }
    this.#running = false;
    this.#net?.close();
    if (this.#sweepTimer) clearTimeout(this.#sweepTimer);
    await this.#uplinks?.close();
    if (this.#iceTimer) clearTimeout(this.#iceTimer);
    this.#pollAbort?.abort();
    const deadline = Date.now() + budgetMs;
    // Hang-ups get half the budget; leaving (which also ends our sessions there) the rest.
    const hungUp = await within(
      Promise.all([...this.#links.values()].map((l) => l.close(true))),
      budgetMs / 2,
    );
    if (!hungUp) this.log.warn({}, "hang-ups not confirmed by the edge in time");
    this.#links.clear();
    if (this.#seatTaken) {
      // The presence is the other process's now: leaving would end it.
      this.log.info({}, "not leaving: another process holds this peer id");
    } else {
      try {
        await this.#client.leave(this.room, this.id, AbortSignal.timeout(deadline - Date.now()));
      } catch (e) {
        this.log.warn(
          { err: (e as Error).message },
          "leave not confirmed; presence expires by itself",
        );
      }
    }
    // The loop ends at once on the aborted poll; whatever is still in flight is cut off.
    if (!(await within(this.#loop ?? Promise.resolve(), 100))) {
      this.log.warn({}, "event loop still busy at stop");
    }
    await this.#http.destroy();
    this.#outbox?.close();
    this.#outbox = null;
    this.log.info({}, "stopped");
  }
}

/** True when `p` settled (either way) within `ms`; false when the time ran out first. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => {
    timer = setTimeout(() => r(false), Math.max(0, ms));
  });
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Nobody takes files here (no FileReceiver, e.g. no --receive-dir): the sender hears why at once. */
function refuseFiles(dc: RTCDataChannel): void {
  const refuse = () => {
    try {
      dc.send(
        encodeFileMessage({ t: "refuse", reason: "this peer takes no files (no --receive-dir)" }),
      );
    } catch {
      // closing
    }
    setTimeout(() => {
      try {
        dc.close();
      } catch {
        // closed already
      }
    }, 5_000).unref();
  };
  if (dc.readyState === "open") refuse();
  else dc.stateChanged.subscribe((s) => s === "open" && refuse());
}
