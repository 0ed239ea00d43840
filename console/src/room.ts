/**
 * The browser's presence in one room: join, the event stream (SSE, falling back to long-poll),
 * the peer list, and routing of session events to links. Keeps the page "present" simply by
 * keeping the event stream open.
 */

import { cursorAfterJoin } from "../../shared/client.ts";
import { EventStreamEndedError } from "../../shared/errors.ts";
import type { HealthConfig } from "../../shared/link/health.ts";
import { PeerStreams } from "../../shared/link/peer-streams.ts";
import { ReliableReceiver, ReliableSender } from "../../shared/link/reliable.ts";
import { type JoinBody, type Peer, peerGoneReason, type RoomEvent } from "../../shared/protocol.ts";
import type { ControlStreams } from "./control-stream.ts";
import { type LinkCallbacks, type LinkContext, PeerLink } from "./link.ts";
import { errorStatus, errorText, isUnreachable, type SignalingClient } from "./signaling.ts";

/**
 * What the console announces in its join `meta` (docs/protocol.md, meta conventions): it frames
 * `control` with the shared reliable stream, and this page load is one process (incarnation).
 */
export const CONTROL_FRAMING = "rl1";

/** True when `peer` frames `control`: every roverlink agent, and browsers that announce it. */
export function framesControl(peer: Peer | undefined): boolean {
  return peer?.kind !== "browser" || peer.meta.control === CONTROL_FRAMING;
}

export interface RoomCallbacks extends LinkCallbacks {
  peers(room: RoomSession): void;
  nearby(room: RoomSession, ids: string[]): void;
  link(room: RoomSession, link: PeerLink): void;
  roomLog(room: RoomSession, text: string): void;
  /** The edge refused our token for good (expired, revoked): nothing more comes from it. */
  refused?(room: RoomSession, why: string): void;
  /** The edge answers again (true) or cannot be reached (false, with why). */
  edgeReachable?(room: RoomSession, ok: boolean, why?: string): void;
  /**
   * Another page signed in under our id (a second tab, another browser): both would read the one
   * event queue of the id and undo each other's links, so this one stepped back.
   */
  replaced?(room: RoomSession): void;
  /** A peer came (back) into the room, or a new process took its id (a rover restarted). */
  peerBack?(room: RoomSession, peer: string): void;
  /**
   * A new process of `peer` (a restarted rover, a reloaded page) starts from nothing: our
   * unacknowledged messages to it go again on a new stream, renumbered (each message's new
   * sequence number is its old one minus `from`).
   */
  rebased?(room: RoomSession, peer: string, from: number): void;
}

export interface RoomOptions {
  client: SignalingClient;
  room: string;
  self: string;
  kind?: string;
  getMic(): Promise<MediaStreamTrack>;
  /** Health policy overrides (tests); the shared defaults otherwise. */
  health?: Partial<HealthConfig>;
  /** RTCConfiguration extras; iceServers come from the edge unless given here. */
  iceServers?: RTCIceServer[];
}

export class RoomSession {
  readonly room: string;
  readonly self: string;
  readonly peers = new Map<string, Peer>();
  readonly links = new Map<string, PeerLink>();
  nearby: string[] = [];
  me: Peer | null = null;
  nearbyRadius: number | null = null;
  connected = false;

  private readonly opts: RoomOptions;
  private readonly cb: RoomCallbacks;
  private cursor: string | undefined;
  /** Whether the last call for events reached the edge (see setReachable). */
  private reachable = true;
  private abort = new AbortController();
  private iceServers: RTCIceServer[] = [];
  /** Session events that arrived before their link knew its session id. */
  private early = new Map<string, RoomEvent[]>();
  /** This page load: a reload is a new process to the other side (new `control` streams). */
  private readonly incarnation = Math.random().toString(36).slice(2, 10);
  /**
   * `control` stream state per peer id, outliving links and the peer's processes, as in the rover
   * agent (shared/link/peer-streams.ts): a link made afresh to the same process neither loses nor
   * repeats anything, and a new process of the peer (a restarted rover) gets what the old one had
   * not acknowledged, once. Until 2026-12-08 a new incarnation got a new sender here, and what the
   * operator had typed and the old process had not acknowledged was dropped.
   */
  private streams = new PeerStreams({
    sender: () => new ReliableSender(),
    receiver: () => new ReliableReceiver(),
    churn: (peer, detail) => this.links.get(peer)?.violation("stream-churn", detail),
    stateLost: (peer, lost) => {
      if (lost.side === "sender") {
        this.cb.roomLog(this, `${peer}: a new control stream from it (a new process)`);
        return;
      }
      // A hello that lacks only what was acknowledged: nothing goes again, nothing to say.
      if (lost.resent > 0)
        this.cb.roomLog(
          this,
          `${peer}: its new process starts from nothing: ${lost.resent} unacknowledged message${lost.resent === 1 ? "" : "s"} of ours go${lost.resent === 1 ? "es" : ""} to it again`,
        );
      this.cb.rebased?.(this, peer, lost.from);
    },
  });

  constructor(opts: RoomOptions, cb: RoomCallbacks) {
    this.opts = opts;
    this.room = opts.room;
    this.self = opts.self;
    this.cb = cb;
  }

  async join(position?: { x: number; y: number }): Promise<void> {
    const body: JoinBody = this.joinBody();
    if (position) body.position = position;
    const res = await this.opts.client.join(this.room, body);
    this.me = res.peer;
    // This page load is a new process: it does not take the page before's events.
    this.cursor = cursorAfterJoin(this.cursor, res);
    this.iceServers = this.opts.iceServers ?? (res.iceServers as RTCIceServer[]);
    const radius = (res as { room?: { nearbyRadius?: unknown } }).room?.nearbyRadius;
    if (typeof radius === "number") this.nearbyRadius = radius;
    this.peers.clear();
    for (const p of res.peers) this.peers.set(p.id, p);
    this.connected = true;
    this.cb.peers(this);
    void this.eventLoop();
  }

  private joinBody(): JoinBody {
    return {
      kind: this.opts.kind ?? "browser",
      meta: { control: CONTROL_FRAMING, incarnation: this.incarnation },
    };
  }

  private streamsFor(peer: string): ControlStreams {
    const { sender, receiver } = this.streams.for(peer);
    return { sender, receiver };
  }

  private linkContext(peer: string): LinkContext {
    return {
      client: this.opts.client,
      room: this.room,
      self: this.self,
      rtc: { iceServers: this.iceServers },
      framed: framesControl(this.peers.get(peer)),
      streams: this.streamsFor(peer),
      getMic: this.opts.getMic,
      video: this.peers.get(peer)?.meta.video !== undefined,
      ...(this.opts.health ? { health: this.opts.health } : {}),
    };
  }

  private linkCallbacks(): LinkCallbacks {
    return {
      ...this.cb,
      session: (link) => {
        if (!link.session) return;
        const queued = this.early.get(link.session) ?? [];
        this.early.delete(link.session);
        for (const ev of queued) void link.handle(ev);
      },
      state: (link) => {
        if (link.state === "closed" && this.links.get(link.peer) === link) {
          this.links.delete(link.peer);
        }
        // A peer dropping our link may mean another page took our id (its join told them, not
        // us: the edge tells a peer nothing about itself): look now rather than at the next
        // refresh, fighting over links meanwhile.
        if (link.state === "rebuilding" || link.state === "closed") this.checkSelfSoon();
        this.cb.state(link);
      },
    };
  }

  /** Link to a peer (this browser offers). An existing open link is returned as is. */
  async connect(peer: string, opts: { voice?: boolean } = {}): Promise<PeerLink> {
    const existing = this.links.get(peer);
    if (existing && existing.state !== "closed") {
      if (opts.voice && existing.voice === "off") await existing.startVoice();
      return existing;
    }
    const link = new PeerLink(this.linkContext(peer), peer, "offerer", this.linkCallbacks());
    this.links.set(peer, link);
    this.cb.link(this, link);
    try {
      await link.connect(opts);
    } catch (err) {
      link.shutdown("could not connect");
      throw err;
    }
    return link;
  }

  /** The browser's network changed: every link's health policy hears of it. */
  networkChanged(): void {
    for (const link of this.links.values()) link.networkChanged();
  }

  async setPosition(x: number, y: number): Promise<void> {
    // The edge tells the others (peer-updated); our own copy comes from the response.
    this.me = await this.opts.client.updatePeer(this.room, this.self, { position: { x, y } });
    this.cb.peers(this);
  }

  private linkForSession(sid: string): PeerLink | undefined {
    for (const l of this.links.values()) if (l.session === sid) return l;
    return undefined;
  }

  private async eventLoop(): Promise<void> {
    const signal = this.abort.signal;
    let useStream = true;
    let backoffMs = 500;
    while (!signal.aborted) {
      try {
        if (useStream) {
          // An open stream is an edge that answers, whether or not an event comes.
          const opts: { lastEventId?: string; signal: AbortSignal; onOpen: () => void } = {
            signal,
            onOpen: () => this.setReachable(true),
          };
          if (this.cursor !== undefined) opts.lastEventId = this.cursor;
          for await (const ev of this.opts.client.stream(this.room, this.self, opts)) {
            this.cursor = ev.id;
            this.onEvent(ev);
            backoffMs = 500;
            this.setReachable(true);
          }
        } else {
          const opts: { after?: string; wait: number; signal: AbortSignal } = { wait: 20, signal };
          if (this.cursor !== undefined) opts.after = this.cursor;
          const res = await this.opts.client.poll(this.room, this.self, opts);
          for (const ev of res.events) this.onEvent(ev);
          this.cursor = res.cursor;
          backoffMs = 500;
          this.setReachable(true);
        }
      } catch (err) {
        if (signal.aborted) return;
        const status = errorStatus(err);
        if (status === 401 || status === 403) {
          this.cb.roomLog(this, `events refused: ${errorText(err)}`);
          this.connected = false;
          this.cb.peers(this);
          this.cb.refused?.(this, errorText(err));
          return;
        }
        const unreachable = isUnreachable(err);
        // The edge unreachable is said once per change (setReachable), not on every retry (six
        // lines in 15 s of an outage); any answer of the edge's (a 404, a 429) is its return.
        if (unreachable) this.setReachable(false, errorText(err));
        else if (status !== undefined || err instanceof EventStreamEndedError)
          this.setReachable(true);
        if (status === 404) {
          // We expired (tab asleep): join again, then resume.
          this.cb.roomLog(this, "presence expired; joining again");
          await this.opts.client.join(this.room, this.joinBody()).catch(() => undefined);
        } else if (err instanceof EventStreamEndedError) {
          // The edge ended the stream and said why: open the next one.
          this.cb.roomLog(this, `events: ${err.message}`);
        } else if (useStream && !unreachable && status === undefined) {
          this.cb.roomLog(this, `event stream failed (${errorText(err)}); long-polling instead`);
          useStream = false;
        } else if (!unreachable) {
          this.cb.roomLog(this, `events: ${errorText(err)}`);
        }
        await new Promise((r) => setTimeout(r, backoffMs));
        backoffMs = Math.min(backoffMs * 2, 10_000);
      }
    }
  }

  /** Said once per change, not on every retry. */
  private setReachable(ok: boolean, why?: string): void {
    if (ok === this.reachable) return;
    this.reachable = ok;
    this.cb.edgeReachable?.(this, ok, why);
  }

  private onEvent(ev: RoomEvent): void {
    switch (ev.type) {
      case "peer-joined":
      case "peer-updated":
        if (ev.peer.id === this.self) this.me = ev.peer;
        else {
          const isNew = !this.peers.has(ev.peer.id);
          if (ev.type === "peer-joined" && isNew)
            this.cb.roomLog(this, `${ev.peer.id} joined (${ev.peer.kind})`);
          const before = this.peers.get(ev.peer.id)?.meta.incarnation;
          this.peers.set(ev.peer.id, ev.peer);
          // Another process behind the id: its links are made afresh; our streams stay (its hello
          // settles them: what it lacks goes to it, shared/link/peer-streams.ts).
          const reborn = before !== undefined && before !== ev.peer.meta.incarnation;
          if (reborn) void this.links.get(ev.peer.id)?.close("the peer restarted");
          if (isNew || reborn) this.cb.peerBack?.(this, ev.peer.id);
        }
        this.cb.peers(this);
        return;
      case "peer-left": {
        if (this.peers.has(ev.peer))
          this.cb.roomLog(this, `${ev.peer} left (${peerGoneReason(ev)})`);
        this.peers.delete(ev.peer);
        this.cb.peers(this);
        this.links.get(ev.peer)?.shutdown("the peer left");
        return;
      }
      case "nearby":
        this.nearby = ev.peers;
        this.cb.nearby(this, ev.peers);
        return;
      case "offer": {
        const known = this.linkForSession(ev.session);
        if (known) {
          void known.handle(ev);
          return;
        }
        // A new session from a peer we have a link with: it rebuilt its PeerConnection.
        const live = this.links.get(ev.from);
        if (live && live.state !== "closed") {
          live.accept(ev).catch((err: unknown) => {
            this.cb.roomLog(this, `answering ${ev.from}: ${errorText(err)}`);
          });
          return;
        }
        // A new session: the other side is linking to us.
        const link = new PeerLink(
          this.linkContext(ev.from),
          ev.from,
          "answerer",
          this.linkCallbacks(),
        );
        this.links.set(ev.from, link);
        this.cb.link(this, link);
        link.accept(ev).catch((err: unknown) => {
          this.cb.roomLog(this, `answering ${ev.from}: ${errorText(err)}`);
          link.shutdown("could not answer");
        });
        return;
      }
      case "seat-taken":
        // Another page joined under our id (the edge says so at once; refreshPeers finds it
        // within seconds otherwise).
        if (ev.incarnation !== this.incarnation) this.stepBack();
        return;
      case "answer":
      case "restart":
      case "candidates":
      case "session-closed": {
        const link = this.linkForSession(ev.session);
        if (link) void link.handle(ev);
        else if (ev.type !== "session-closed") {
          const q = this.early.get(ev.session) ?? [];
          q.push(ev);
          this.early.set(ev.session, q);
        }
        return;
      }
    }
  }

  /**
   * Peers' `lastSeen` as the edge has it now (a failure waits for the next round), and whether
   * our own id is still this page's.
   */
  async refreshPeers(): Promise<void> {
    if (!this.connected) return;
    try {
      const { peers } = await this.opts.client.peers(this.room);
      for (const p of peers) {
        if (p.id === this.self) {
          const theirs = p.meta.incarnation;
          if (theirs !== undefined && theirs !== this.incarnation) {
            this.stepBack();
            return;
          }
        } else if (this.peers.has(p.id)) this.peers.set(p.id, p);
      }
    } catch {
      return; // the event loop reports the edge's state
    }
    this.cb.peers(this);
  }

  private selfCheckAt = 0;
  /** refreshPeers now, at most every 2 s. */
  private checkSelfSoon(): void {
    const now = Date.now();
    if (now - this.selfCheckAt < 2_000) return;
    this.selfCheckAt = now;
    void this.refreshPeers();
  }

  /**
   * Another page joined under our id: stop reading its events and close our links here (the
   * peers drop them too, for the new page's), without leaving: the presence is the other page's.
   */
  private stepBack(): void {
    if (!this.connected) return;
    this.abort.abort();
    this.connected = false;
    this.cb.roomLog(this, `another console signed in as ${this.self}: this one stepped back`);
    for (const l of [...this.links.values()])
      l.shutdown(`another console signed in as ${this.self}`);
    this.cb.replaced?.(this);
  }

  /** Close every link and leave the room. */
  async leave(): Promise<void> {
    this.abort.abort();
    await Promise.all([...this.links.values()].map((l) => l.close()));
    await this.opts.client.leave(this.room, this.self).catch(() => undefined);
    this.connected = false;
  }
}
