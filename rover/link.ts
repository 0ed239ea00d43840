/**
 * One link to one remote peer: a werift RTCPeerConnection plus everything that makes it last —
 * signaling through the edge (offer/answer, trickle, ICE restart by re-POST), the health monitor
 * (health.ts) driving restarts and rebuilds, and the reliable layer (reliable.ts) that keeps
 * `control` exactly-once and in order across both. I/O only: decisions come from health.ts.
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { type RTCDataChannel, RTCPeerConnection } from "werift";
import type { RoverlinkClient } from "../shared/client.ts";
import { ProblemError } from "../shared/errors.ts";
import type { IceServer, RoomEvent } from "../shared/protocol.ts";
import {
  buildCandidateFrag,
  fragCandidates,
  fragPwd,
  fragUfrag,
  parseSdpFrag,
  type SdpFrag,
  serializeSdpFrag,
} from "../shared/sdpfrag.ts";
import { CandidateBuffer } from "./candidate-buffer.ts";
import { type Decision, type HealthConfig, LinkHealth } from "./health.ts";
import { iceCredentials, pcIdOf, sdpCandidates, withIceCredentials, withPcId } from "./ice-sdp.ts";
import type { PeerIdentity } from "./identity.ts";
import {
  BacklogFullError,
  decodeFrame,
  encodeFrame,
  type Payload,
  ReliableReceiver,
  ReliableSender,
} from "./reliable.ts";

export type Role = "offerer" | "answerer";
export type Path = "direct" | "relay" | "unknown";

export interface Logger {
  debug(o: object, msg?: string): void;
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
}

export interface LinkOptions {
  client: RoverlinkClient;
  room: string;
  self: string;
  peer: string;
  role: Role;
  /** Remote is a browser console: `control` carries raw text, no reliable framing. */
  raw: boolean;
  iceServers: () => IceServer[];
  health?: Partial<HealthConfig>;
  log: Logger;
  /** werift host-candidate options (tests, multi-homed rovers). */
  iceAdditionalHostAddresses?: string[];
  interfaceAddresses?: { udp4?: string };
  /**
   * The `control` stream state to carry on with (the agent keeps it per peer process, so that a
   * link made afresh to the same process neither loses nor repeats anything). Default: new.
   */
  sender?: ReliableSender;
  receiver?: ReliableReceiver;
  /** Our DTLS certificate and the check of remote fingerprints (identity.ts). Default: none. */
  identity?: PeerIdentity;
}

type OfferEvent = Extract<RoomEvent, { type: "offer" }>;
type AnswerEvent = Extract<RoomEvent, { type: "answer" }>;
type CandidatesEvent = Extract<RoomEvent, { type: "candidates" }>;
type RestartEvent = Extract<RoomEvent, { type: "restart" }>;

const PROBE_PREFIX = '{"rlp":';
/** Messages an application channel may hold while it (re)opens. */
const APP_QUEUE_MAX = 1_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Type of a werift ICE connection's selected pair (internal API, see docs/werift-patches.md). */
type Nominated =
  | { localCandidate?: { type?: string }; remoteCandidate?: { ufrag?: string } }
  | undefined;

export class Link extends EventEmitter {
  readonly peer: string;
  readonly role: Role;
  readonly health: LinkHealth;
  readonly sender: ReliableSender;
  readonly receiver: ReliableReceiver;
  #o: LinkOptions;
  #pc: RTCPeerConnection | null = null;
  #channels = new Map<string, RTCDataChannel>();
  #sid: string | null = null;
  #etag: string | null = null;
  /** Local candidates waiting for a session to trickle into. */
  #outCandidates: { candidate: string; sdpMid?: string; sdpMLineIndex?: number }[] = [];
  /** While a description is made and sent, its candidates travel in it, not by PATCH. */
  #holdTrickle = false;
  /** Local candidates already sent inside a description or fragment (werift gathers first). */
  #sentCandidates = new Set<string>();
  /** Remote candidates waiting for the description (session and ufrag) they belong to. */
  readonly #held = new CandidateBuffer();
  #timer: NodeJS.Timeout | null = null;
  #reofferTimer: NodeJS.Timeout | null = null;
  #offerFailures = 0;
  /** Our PeerConnection's id (in every SDP we send) and the remote one's (from theirs). */
  #pcId = "";
  #remotePcId: string | null = null;
  /** The remote PeerConnection that must answer our pending restart offer (null: any). */
  #answerFrom: string | null = null;
  #closed = false;
  #everOpen = false;
  #probeSeq = 0;
  #ackTimer: NodeJS.Timeout | null = null;
  #busy: Promise<void> = Promise.resolve();
  #restartStartedAt: number | null = null;
  /** What started the handover in progress (health decision, peer, session loss). */
  #handoverReason: string | null = null;
  /** The PeerConnection for which "up" was emitted. */
  #upFor: RTCPeerConnection | null = null;
  #ufragAtRestart: string | null = null;
  #downSince: number | null = null;
  telemetryDropped = 0;
  /** Application-channel messages given up because too many waited for the channel. */
  appDropped = 0;
  #appQueue = new Map<string, Payload[]>();
  backlogRejected = 0;

  constructor(o: LinkOptions) {
    super();
    this.#o = o;
    this.peer = o.peer;
    this.role = o.role;
    this.health = new LinkHealth(o.health, Date.now());
    this.sender = o.sender ?? new ReliableSender();
    this.receiver = o.receiver ?? new ReliableReceiver();
  }

  get session(): string | null {
    return this.#sid;
  }

  get open(): boolean {
    return this.#channels.get("control")?.readyState === "open";
  }

  // --- lifecycle ----------------------------------------------------------------------------

  /** Offerer: create the PeerConnection and offer through the edge. */
  start(): Promise<void> {
    return this.#serial(() => this.#offer());
  }

  #serial(f: () => Promise<void>): Promise<void> {
    const next = this.#busy.then(f, f).catch((e: unknown) => {
      if (!this.#closed) this.#o.log.warn({ peer: this.peer, err: errText(e) }, "link step failed");
    });
    this.#busy = next;
    return next;
  }

  #newPc(): RTCPeerConnection {
    this.#pcId = randomUUID();
    const iceServers = this.#werift(this.#o.iceServers());
    const pc = new RTCPeerConnection({
      iceServers,
      iceUseIpv6: false,
      ...(this.#o.iceAdditionalHostAddresses
        ? { iceAdditionalHostAddresses: this.#o.iceAdditionalHostAddresses }
        : {}),
      ...(this.#o.interfaceAddresses ? { iceInterfaceAddresses: this.#o.interfaceAddresses } : {}),
      ...(this.#o.identity ? { certificates: [this.#o.identity.certificate] } : {}),
    });
    pc.onIceCandidate.subscribe((c) => {
      if (!c || pc !== this.#pc) return;
      const init = c.toJSON();
      if (!init.candidate) return;
      this.#outCandidates.push({
        candidate: init.candidate,
        sdpMid: init.sdpMid ?? "0",
        sdpMLineIndex: init.sdpMLineIndex ?? 0,
      });
      void this.#flushOutCandidates();
    });
    pc.iceConnectionStateChange.subscribe((s) => {
      if (pc !== this.#pc) return;
      this.#o.log.debug({ peer: this.peer, ice: s }, "ice state");
      this.health.onIceState(s, Date.now());
      if (s === "connected" || s === "completed") this.#restartCompleted(Date.now());
      this.#tick();
    });
    pc.onDataChannel.subscribe((dc) => this.#wire(dc));
    return pc;
  }

  #openChannels(pc: RTCPeerConnection): void {
    this.#wire(pc.createDataChannel("control", { ordered: true }));
    this.#wire(pc.createDataChannel("telemetry", { ordered: false, maxRetransmits: 0 }));
  }

  /**
   * Offer, and offer again until a link opens: the health policy has no deadline while
   * connecting or down, and an offer can fail (edge unreachable, peer not there yet) or be
   * answered by nobody (the peer's process died).
   */
  async #offer(): Promise<void> {
    if (this.#reofferTimer) clearTimeout(this.#reofferTimer);
    this.#reofferTimer = null;
    const limit = this.health.config.rebuildTimeoutMs;
    try {
      await this.#offerOnce();
      this.#armReoffer(limit);
    } catch (e) {
      this.#offerFailures++;
      this.#armReoffer(Math.min(500 * 2 ** (this.#offerFailures - 1), limit));
      throw e;
    }
  }

  #armReoffer(ms: number): void {
    if (this.#closed || this.role !== "offerer") return;
    this.#reofferTimer = setTimeout(() => {
      this.#reofferTimer = null;
      const s = this.health.state;
      if (this.#closed || this.#upFor === this.#pc || (s !== "connecting" && s !== "down")) return;
      this.#o.log.warn({ peer: this.peer, failures: this.#offerFailures }, "offering again");
      void this.#serial(() => this.#offer());
    }, ms);
    this.#reofferTimer.unref();
  }

  async #offerOnce(): Promise<void> {
    if (this.#closed) return;
    this.#replacePc();
    const pc = this.#newPc();
    this.#pc = pc;
    this.#openChannels(pc);
    const r = await this.#sendingDescription(async () => {
      await pc.setLocalDescription(await pc.createOffer());
      const sdp = this.#sentSdp(pc);
      return this.#o.client.offer(this.#o.room, this.peer, sdp, { waitS: 10 });
    });
    if (pc !== this.#pc) return;
    this.#sid = r.session;
    this.#etag = r.etag;
    this.#held.keepOnly(r.session);
    this.emit("session", r.session);
    void this.#flushOutCandidates();
    if (r.status === 201 && r.answer) await this.#applyAnswer(pc, r.answer);
    // 202: the answer comes as an `answer` event.
  }

  async #applyAnswer(pc: RTCPeerConnection, sdp: string): Promise<void> {
    if (this.#answerFrom !== null) {
      // A restart must be answered by the PeerConnection we talk to. A new one (the peer had
      // dropped its link) cannot talk to ours: rebuild now rather than after failed retries.
      const same = pcIdOf(sdp) === this.#answerFrom;
      this.#answerFrom = null;
      if (!same) {
        await this.#resumeRefused();
        return;
      }
    }
    if (await this.#refused(sdp, this.#sid)) return;
    await pc.setRemoteDescription({ type: "answer", sdp });
    this.#remotePcId = pcIdOf(sdp);
    await this.#flushHeld();
  }

  /**
   * ICE restart in a new session: the edge closed ours (a party's presence expired) while the
   * PeerConnection lives on. The restart offer names this PeerConnection; the peer's, which
   * knows it, restarts as for a re-POST. Answered by a new PeerConnection instead (the peer had
   * dropped its link), this one cannot carry on: rebuild.
   */
  async #restartInNewSession(pc: RTCPeerConnection, reason: string): Promise<void> {
    this.#o.log.info({ peer: this.peer, reason }, "ICE restart in a new session");
    this.#answerFrom = this.#remotePcId;
    const r = await this.#sendingDescription(async () => {
      await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
      return this.#o.client.offer(this.#o.room, this.peer, this.#sentSdp(pc), { waitS: 10 });
    });
    if (pc !== this.#pc) return;
    this.#sid = r.session;
    this.#etag = r.etag;
    this.#held.keepOnly(r.session);
    this.emit("session", r.session);
    if (r.status === 201 && r.answer) await this.#applyAnswer(pc, r.answer);
    // 202: the answer comes as an `answer` event.
  }

  async #resumeRefused(): Promise<void> {
    this.#o.log.info({ peer: this.peer }, "answered by a new PeerConnection; rebuilding");
    const sid = this.#sid;
    this.#sid = null;
    if (sid) await this.#o.client.closeSession(this.#o.room, sid).catch(() => {});
    await this.#offer();
  }

  /** An `offer` event from the peer: a new session, or an ICE restart of ours. */
  onOffer(ev: OfferEvent): Promise<void> {
    return this.#serial(async () => {
      if (this.#closed || (await this.#refused(ev.sdp, ev.session))) return;
      // A restart of our session, or an ICE restart in a new session by the PeerConnection we
      // already talk to (the edge had closed our session under the live link).
      const from = pcIdOf(ev.sdp);
      const resumed = ev.session !== this.#sid && from !== null && from === this.#remotePcId;
      const restart = this.#pc !== null && (ev.session === this.#sid || resumed);
      this.#answerFrom = null; // we answer theirs: any offer of ours is void
      let pc = this.#pc;
      if (restart && resumed) {
        this.#o.log.info({ peer: this.peer, session: ev.session }, "ICE restart in a new session");
        this.#sid = ev.session;
        this.#held.keepOnly(ev.session);
        this.emit("session", ev.session);
      }
      if (!restart || !pc) {
        this.#replacePc();
        pc = this.#newPc();
        this.#pc = pc;
        this.#sid = ev.session;
        this.#held.keepOnly(ev.session);
        this.emit("session", ev.session);
      } else {
        this.health.onRemoteRestart(Date.now());
        this.#markRestart("peer-restart");
      }
      this.#etag = ev.etag;
      try {
        await pc.setRemoteDescription({ type: "offer", sdp: ev.sdp });
        this.#remotePcId = from;
      } catch (e) {
        // werift has no rollback: after glare with our own pending restart, start afresh.
        this.#o.log.warn({ peer: this.peer, err: errText(e) }, "cannot apply offer; rebuilding");
        this.#replacePc();
        pc = this.#newPc();
        this.#pc = pc;
        await pc.setRemoteDescription({ type: "offer", sdp: ev.sdp });
        this.#remotePcId = from;
      }
      await this.#flushHeld();
      const answering = pc;
      await this.#sendingDescription(async () => {
        await answering.setLocalDescription(await answering.createAnswer());
        await this.#o.client.answer(this.#o.room, ev.session, this.#sentSdp(answering), {
          contentType: "sdp",
          ifMatch: ev.etag,
        });
      });
      this.#tick();
    });
  }

  onAnswer(ev: AnswerEvent): Promise<void> {
    return this.#serial(async () => {
      if (ev.session !== this.#sid || !this.#pc || !("sdp" in ev)) return;
      this.#etag = ev.etag;
      await this.#applyAnswer(this.#pc, ev.sdp);
    });
  }

  onCandidates(ev: CandidatesEvent): Promise<void> {
    return this.#serial(async () => {
      try {
        // Held even for a session not known yet: it may be the one our pending offer creates.
        this.#held.hold(ev.session, fragCandidates(parseSdpFrag(ev.frag)));
      } catch {
        this.#o.log.warn({ peer: this.peer }, "ignoring a malformed candidates fragment");
        return;
      }
      await this.#flushHeld();
    });
  }

  /**
   * A `restart` event: the peer restarted ICE WHIP-style, by PATCH with its new ufrag/pwd.
   * werift takes whole descriptions only, so the current remote description is rewritten with
   * the new credentials and negotiated again (as an offer if it was one; else we make the offer
   * locally and take the rewritten answer). Our new ufrag/pwd/candidates go back as an sdpfrag.
   */
  onRestart(ev: RestartEvent): Promise<void> {
    return this.#serial(async () => {
      const pc = this.#pc;
      const remote = pc?.remoteDescription;
      if (this.#closed || !pc || !remote || ev.session !== this.#sid) {
        this.#o.log.warn({ peer: this.peer, session: ev.session }, "restart for no live session");
        return;
      }
      let frag: SdpFrag;
      try {
        frag = parseSdpFrag(ev.frag);
      } catch (e) {
        this.#o.log.warn({ peer: this.peer, err: errText(e) }, "ignoring a malformed restart");
        return;
      }
      const ufrag = fragUfrag(frag);
      const pwd = fragPwd(frag);
      if (!ufrag || !pwd) {
        this.#o.log.warn({ peer: this.peer }, "ignoring a restart without ice-ufrag/ice-pwd");
        return;
      }
      this.health.onRemoteRestart(Date.now());
      this.#markRestart("peer-restart");
      this.#etag = ev.etag;
      this.#held.hold(ev.session, fragCandidates(frag));
      const sdp = withIceCredentials(remote.sdp, { ufrag, pwd });
      const reply = await this.#sendingDescription(async () => {
        if (remote.type === "offer") {
          await pc.setRemoteDescription({ type: "offer", sdp });
          await pc.setLocalDescription(await pc.createAnswer());
        } else {
          await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
          await pc.setRemoteDescription({ type: "answer", sdp });
        }
        await this.#flushHeld();
        const local = this.#sentSdp(pc);
        const creds = iceCredentials(local);
        if (!creds) throw new Error("werift made a description without ICE credentials");
        const out = buildCandidateFrag({ ...creds, candidates: sdpCandidates(local), end: true });
        await this.#o.client.answer(this.#o.room, ev.session, serializeSdpFrag(out), {
          contentType: "sdpfrag",
          ifMatch: ev.etag,
        });
        return out;
      });
      this.#o.log.info(
        { peer: this.peer, candidates: reply.media.flatMap((m) => m.candidates).length },
        "answered an sdpfrag ICE restart",
      );
      this.#tick();
    });
  }

  /** Apply the held remote candidates that fit the current session and remote description. */
  async #flushHeld(): Promise<void> {
    const pc = this.#pc;
    const remote = pc?.remoteDescription?.sdp;
    if (!pc || !remote || !this.#sid) return;
    const current = /^a=ice-ufrag:(\S+)/m.exec(remote)?.[1];
    for (const c of this.#held.take(this.#sid, current)) {
      await pc
        .addIceCandidate({
          candidate: c.candidate,
          sdpMid: c.sdpMid ?? "0",
          sdpMLineIndex: c.sdpMLineIndex,
        })
        .catch(() => {}); // a duplicate of one in the description, or of a closed generation
    }
  }

  /**
   * A remote description whose DTLS fingerprint is not the one trusted for the peer is never
   * applied: its session is closed and the agent told ("refused"), which drops a link not up.
   */
  async #refused(sdp: string, session: string | null): Promise<boolean> {
    const why = this.#o.identity?.verifyRemote(this.peer, sdp) ?? null;
    if (why === null) return false;
    this.#o.log.warn(
      { peer: this.peer, session, reason: why },
      "link refused: untrusted DTLS fingerprint",
    );
    if (session === this.#sid) this.#sid = null;
    if (session) await this.#o.client.closeSession(this.#o.room, session).catch(() => {});
    this.emit("refused", why);
    return true;
  }

  /** Run a step that makes and sends a local description; trickle what it did not carry after. */
  async #sendingDescription<T>(step: () => Promise<T>): Promise<T> {
    this.#holdTrickle = true;
    try {
      return await step();
    } finally {
      this.#holdTrickle = false;
      void this.#flushOutCandidates();
    }
  }

  /** The local description about to be sent; its candidates need no trickle. */
  #sentSdp(pc: RTCPeerConnection): string {
    const sdp = pc.localDescription?.sdp ?? "";
    for (const c of sdpCandidates(sdp)) this.#sentCandidates.add(c.candidate);
    return withPcId(sdp, this.#pcId);
  }

  async #flushOutCandidates(): Promise<void> {
    const pc = this.#pc;
    if (this.#holdTrickle || !this.#sid || !this.#etag || !pc?.localDescription) return;
    const ufrag = /^a=ice-ufrag:(\S+)/m.exec(pc.localDescription.sdp)?.[1];
    if (!ufrag) return;
    const batch = this.#outCandidates
      .splice(0)
      .filter((c) => !this.#sentCandidates.has(c.candidate));
    if (batch.length === 0) return;
    try {
      await this.#o.client.trickle(
        this.#o.room,
        this.#sid,
        buildCandidateFrag({ ufrag, candidates: batch }),
        {
          ifMatch: this.#etag,
        },
      );
    } catch (e) {
      // A restart moved the ETag on: these candidates belong to the old ICE session anyway.
      this.#o.log.debug({ peer: this.peer, err: errText(e) }, "trickle failed");
    }
  }

  /** The link is up: `control` open on the current PeerConnection and the health monitor agrees. */
  get up(): boolean {
    return this.#upFor !== null && this.#upFor === this.#pc && this.health.state === "up";
  }

  /** Offerer whose link is not up: offer a new session now (the peer is back at the edge). */
  reoffer(): void {
    if (this.#closed || this.role !== "offerer" || this.up) return;
    void this.#serial(() => this.#offer());
  }

  onSessionClosed(session: string, reason = "hangup"): void {
    if (session !== this.#sid) return;
    if (reason === "peer-expired" && this.up) {
      // The edge lost sight of a party (an edge outage, a long poll gap), not the path: keep the
      // PeerConnection. The next handover starts a new session.
      this.#o.log.info(
        { peer: this.peer, session, reason },
        "session closed by the edge; link kept",
      );
      this.#sid = null;
      this.#etag = null;
      return;
    }
    this.#o.log.info({ peer: this.peer, session, reason }, "session closed by peer");
    this.#sid = null;
    this.#linkDown("session-closed");
    if (this.role === "offerer" && !this.#closed) {
      void this.#serial(async () => {
        await sleep(200);
        await this.#offer();
      });
    }
  }

  // --- ICE restart and rebuild ---------------------------------------------------------------

  /** Force an ICE-restart handover now. */
  restart(reason = "manual"): void {
    this.health.requestRestart(Date.now());
    this.#o.log.info({ peer: this.peer, reason }, "restart requested");
    this.#tick();
  }

  /**
   * A handover starts (or goes on: a retry, or the peer's offer after glare). The ufrag is the one
   * from before the first attempt: after glare we answer with the ufrag of our own superseded
   * offer, and that answer's new pair completes the handover.
   */
  #markRestart(reason: string): void {
    if (this.#restartStartedAt !== null) return;
    this.#restartStartedAt = Date.now();
    this.#handoverReason = reason;
    this.#ufragAtRestart = this.#ice()?.localUsername ?? null;
  }

  /** werift's ICE connection (internal API; see docs/werift-patches.md). */
  #ice(): { localUsername: string; nominated?: unknown } | undefined {
    return (
      this.#pc as unknown as {
        iceTransports?: { connection: { localUsername: string; nominated?: unknown } }[];
      } | null
    )?.iceTransports?.[0]?.connection;
  }

  /**
   * The restart is done once the new ICE session has selected a pair. Until then data may still
   * flow over the old pair (make-before-break), which does not count: a lost restart offer must
   * be retried.
   */
  #restartCompleted(now: number): void {
    if (this.health.state !== "restarting" || this.#restartStartedAt === null) return;
    // A new PeerConnection (a rebuild) is done when its channels open, not here.
    if (this.#upFor !== this.#pc) return;
    const ice = this.#ice();
    if (!ice?.nominated || ice.localUsername === this.#ufragAtRestart) return;
    this.health.onRestartDone(now);
    this.#handoverDone(now, "restart");
    this.emit("up", { path: this.path(), firstTime: false });
  }

  async #restartIce(reason: string, attempt: number): Promise<void> {
    const pc = this.#pc;
    const sid = this.#sid;
    if (!pc || this.#closed) return;
    if (!sid) {
      // No session to restart in (the edge closed it under a live link): restart in a new one.
      this.#markRestart(reason);
      if (this.role !== "offerer") return;
      if (this.#remotePcId !== null) await this.#restartInNewSession(pc, reason);
      else await this.#offer();
      return;
    }
    this.#markRestart(reason);
    this.#o.log.info({ peer: this.peer, reason, attempt }, "ICE restart");
    try {
      this.#answerFrom = this.#remotePcId;
      const r = await this.#sendingDescription(async () => {
        await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
        return this.#o.client.restartOffer(this.#o.room, sid, this.#sentSdp(pc), {
          ifMatch: "*",
          waitS: 3,
        });
      });
      if (pc !== this.#pc) return;
      this.#etag = r.etag;
      void this.#flushOutCandidates();
      if (r.status === 200 && r.answer) await this.#applyAnswer(pc, r.answer);
    } catch (e) {
      if (e instanceof ProblemError && e.status === 409) {
        // Glare: the peer's restart offer is pending; we answer it when its event arrives.
        this.#answerFrom = null;
        this.#o.log.info({ peer: this.peer }, "restart glare: answering the peer's offer");
        return;
      }
      if (e instanceof ProblemError && e.status === 404) {
        this.#o.log.warn({ peer: this.peer }, "session gone");
        this.#sid = null;
        if (this.role !== "offerer") return;
        if (this.#remotePcId !== null) await this.#restartInNewSession(pc, reason);
        else await this.#offer();
        return;
      }
      throw e;
    }
  }

  async #rebuild(reason: string, attempt: number): Promise<void> {
    if (this.#closed) return;
    this.#o.log.warn({ peer: this.peer, reason, attempt }, "rebuilding the PeerConnection");
    this.#markRestart(reason);
    const old = this.#sid;
    if (this.role === "offerer") {
      if (old) await this.#o.client.closeSession(this.#o.room, old).catch(() => {});
      this.#sid = null;
      await this.#offer();
    }
    // The answerer waits for the offerer's new offer (a new session).
  }

  #replacePc(): void {
    const old = this.#pc;
    this.#pc = null;
    this.#remotePcId = null;
    this.#answerFrom = null;
    for (const dc of this.#channels.values()) {
      try {
        dc.close();
      } catch {
        // already closed
      }
    }
    this.#channels.clear();
    this.#outCandidates = [];
    this.#sentCandidates.clear();
    if (old) void old.close().catch(() => {});
  }

  // --- health loop -------------------------------------------------------------------------

  #tick(): void {
    if (this.#closed) return;
    const now = Date.now();
    for (const d of this.health.poll(now)) this.#do(d);
    if (this.#timer) clearTimeout(this.#timer);
    const next = this.health.nextDeadline();
    if (next !== undefined)
      this.#timer = setTimeout(() => this.#tick(), Math.max(5, next - Date.now()));
  }

  #do(d: Decision): void {
    switch (d.type) {
      case "probe":
        this.#probe();
        return;
      case "restart":
        this.emit("restarting", d.reason);
        void this.#serial(() => this.#restartIce(d.reason, d.attempt));
        return;
      case "rebuild":
        void this.#serial(() => this.#rebuild(d.reason, d.attempt));
        return;
    }
  }

  #probe(): void {
    const t = this.#channels.get("telemetry");
    if (t?.readyState !== "open") return;
    const id = ++this.#probeSeq;
    this.health.onProbeSent(id, Date.now());
    try {
      t.send(`${PROBE_PREFIX}"ping","i":${id}}`);
    } catch {
      // closing
    }
  }

  /**
   * Fresh ICE server credentials (TURN REST credentials expire). The PeerConnection takes them for
   * its next gathering; a relayed link restarts now, make-before-break, so that its allocation is
   * renewed with valid credentials before the old ones expire.
   */
  updateIceServers(): void {
    const pc = this.#pc;
    if (!pc) return;
    pc.setConfiguration({ iceServers: this.#werift(this.#o.iceServers()) });
    if (this.path() === "relay") this.restart("turn-credentials");
  }

  #werift(servers: IceServer[]) {
    // werift takes one URL per server entry.
    return servers.flatMap((srv) =>
      (Array.isArray(srv.urls) ? srv.urls : [srv.urls]).map((urls) => ({
        urls,
        username: srv.username,
        credential: srv.credential,
      })),
    );
  }

  /** The network under us changed (from the agent's NetWatch). */
  networkChanged(): void {
    this.health.onNetworkChange(Date.now());
    this.#tick();
  }

  // --- channels ------------------------------------------------------------------------------

  #wire(dc: RTCDataChannel): void {
    this.#channels.set(dc.label, dc);
    const onOpen = () => {
      this.#flushApp(dc);
      this.#maybeUp();
    };
    if (dc.readyState === "open") onOpen();
    dc.stateChanged.subscribe((s) => {
      if (s === "open") onOpen();
      if (s === "closed" && this.#channels.get(dc.label) === dc && dc.label === "control")
        this.#linkDown("channel-closed");
    });
    dc.onMessage.subscribe((m) => this.#onMessage(dc, m));
  }

  /** Up once `control` and, when the offer included it, `telemetry` are open (once per PC). */
  #maybeUp(): void {
    const pc = this.#pc;
    const control = this.#channels.get("control");
    const telemetry = this.#channels.get("telemetry");
    if (!pc || this.#upFor === pc || control?.readyState !== "open") return;
    if (telemetry && telemetry.readyState !== "open") return;
    if (!telemetry && this.role === "answerer") {
      // The offerer opens telemetry right after control: give it a moment to arrive.
      setTimeout(() => {
        if (!this.#channels.get("telemetry") && this.#upFor !== pc && this.#pc === pc)
          this.#controlOpen(pc);
      }, 200);
      return;
    }
    this.#controlOpen(pc);
  }

  #controlOpen(pc: RTCPeerConnection): void {
    this.#upFor = pc;
    this.#offerFailures = 0;
    const now = Date.now();
    const first = !this.#everOpen;
    this.#everOpen = true;
    this.health.onOpen(now);
    this.#handoverDone(now, "rebuild");
    const control = this.#channels.get("control");
    if (control && !this.#o.raw) control.send(encodeFrame(this.receiver.hello()));
    for (const label of this.#appQueue.keys()) if (!this.#channels.has(label)) this.#openApp(label);
    this.emit("up", { path: this.path(), firstTime: first });
    this.#tick();
  }

  #handoverDone(now: number, kind: "restart" | "rebuild"): void {
    const started = this.#restartStartedAt ?? this.#downSince;
    if (started !== null && this.#everOpen) {
      const reason = this.#handoverReason ?? kind;
      this.emit("handover", { kind, reason, gapMs: now - started });
    }
    this.#restartStartedAt = null;
    this.#downSince = null;
    this.#handoverReason = null;
  }

  #linkDown(reason: string): void {
    if (this.#downSince === null) {
      this.#downSince = Date.now();
      this.#handoverReason ??= reason;
    }
    this.emit("down", reason);
  }

  #onMessage(dc: RTCDataChannel, m: string | Buffer): void {
    const now = Date.now();
    this.health.onReceive(now);
    this.#restartCompleted(now);
    const text = typeof m === "string" ? m : null;
    if (dc.label === "telemetry" && text?.startsWith(PROBE_PREFIX)) {
      const p = JSON.parse(text) as { rlp: string; i: number };
      if (p.rlp === "ping") dc.send(`${PROBE_PREFIX}"pong","i":${p.i}}`);
      else this.health.onProbeAnswered(p.i, now);
      this.#tick();
      return;
    }
    if (dc.label === "control" && text !== null && !this.#o.raw) {
      let f: ReturnType<typeof decodeFrame>;
      try {
        f = decodeFrame(text);
      } catch (e) {
        this.#o.log.warn({ peer: this.peer, err: errText(e) }, "dropping a broken control frame");
        return;
      }
      if (f) {
        this.#onFrame(dc, f);
        return;
      }
    }
    this.emit("message", { channel: dc.label, data: text ?? new Uint8Array(m as Buffer) });
  }

  #onFrame(dc: RTCDataChannel, f: NonNullable<ReturnType<typeof decodeFrame>>): void {
    switch (f.t) {
      case "d":
        for (const p of this.receiver.onData(f))
          this.emit("message", { channel: "control", data: p });
        this.#scheduleAck(dc);
        return;
      case "a":
        this.sender.onAck(f.n);
        return;
      case "h":
        for (const r of this.sender.resendFrom(f.st === this.sender.stream ? f.n : 0))
          dc.send(encodeFrame(r));
        return;
    }
  }

  #scheduleAck(dc: RTCDataChannel): void {
    if (this.#ackTimer) return;
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = null;
      if (dc.readyState === "open") dc.send(encodeFrame(this.receiver.ack()));
    }, 50);
  }

  /** Send on a channel. `control`: reliable across restarts/rebuilds; `telemetry`: dropped when down. */
  send(channel: string, data: Payload): void {
    this.health.onSend(Date.now());
    const dc = this.#channels.get(channel);
    if (channel === "control" && !this.#o.raw) {
      let frame: ReturnType<ReliableSender["send"]>;
      try {
        frame = this.sender.send(data);
      } catch (e) {
        if (e instanceof BacklogFullError) this.backlogRejected++;
        throw e;
      }
      // Not open: kept, and sent when the channel (re)opens and the peer says hello.
      if (dc?.readyState === "open") dc.send(encodeFrame(frame));
      return;
    }
    if (dc?.readyState !== "open") {
      if (channel === "telemetry" || channel === "control") {
        this.telemetryDropped++;
        return;
      }
      // An application channel: opened on demand; what is sent meanwhile goes once it opens.
      const q = this.#appQueue.get(channel) ?? [];
      q.push(data);
      if (q.length > APP_QUEUE_MAX) {
        q.shift();
        this.appDropped++;
      }
      this.#appQueue.set(channel, q);
      if (!dc || dc.readyState === "closing" || dc.readyState === "closed") this.#openApp(channel);
      return;
    }
    dc.send(typeof data === "string" ? data : Buffer.from(data));
  }

  #openApp(label: string): void {
    const pc = this.#pc;
    if (pc && pc.connectionState !== "closed") {
      this.#wire(pc.createDataChannel(label, { ordered: true }));
    }
  }

  /** Send what waited for an application channel to open. */
  #flushApp(dc: RTCDataChannel): void {
    const q = this.#appQueue.get(dc.label);
    if (!q) return;
    this.#appQueue.delete(dc.label);
    for (const data of q) dc.send(typeof data === "string" ? data : Buffer.from(data));
  }

  /** The selected ICE pair's send counters (werift internals), for benchmarks. */
  selectedPair(): { packetsSent: number; bytesSent: number } | null {
    const conn = (
      this.#pc as unknown as {
        iceTransports?: {
          connection: { nominated?: { packetsSent: number; bytesSent: number } };
        }[];
      } | null
    )?.iceTransports?.[0]?.connection;
    const n = conn?.nominated;
    return n ? { packetsSent: n.packetsSent, bytesSent: n.bytesSent } : null;
  }

  path(): Path {
    const conn = (
      this.#pc as unknown as { iceTransports?: { connection: { nominated?: Nominated } }[] } | null
    )?.iceTransports?.[0]?.connection;
    const type = conn?.nominated?.localCandidate?.type;
    if (!type) return "unknown";
    return type === "relay" ? "relay" : "direct";
  }

  async close(hangUp = true): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#reofferTimer) clearTimeout(this.#reofferTimer);
    if (this.#ackTimer) clearTimeout(this.#ackTimer);
    this.health.onClosed(Date.now());
    const sid = this.#sid;
    if (hangUp && sid) await this.#o.client.closeSession(this.#o.room, sid).catch(() => {});
    this.#replacePc();
  }
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
