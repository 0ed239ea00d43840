/**
 * One link to one remote peer: a werift RTCPeerConnection and its negotiation through the edge
 * (offer/answer, ICE restart by re-POST, answering PATCH restarts, rebuilds), carrying out what
 * the health policy (shared/link/health.ts) decides: the only place that decides. Every event the
 * policy defines is fed from here. The pieces around it:
 *   link-channels.ts       data channels, the reliable `control` stream, probes, peer conduct
 *   candidate-exchange.ts  trickle ICE, both ways
 *   backup-paths.ts        backup pairs on every uplink, switching without signaling
 *   werift-internals.ts    the werift internals handover needs (selected pair, ufrag)
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { type RTCDataChannel, RTCPeerConnection } from "werift";
import type { RoverlinkClient } from "../shared/client.ts";
import { errorMessage, ProblemError } from "../shared/errors.ts";
import { isFileLabel } from "../shared/file-wire.ts";
import { isForwardLabel } from "../shared/forward-wire.ts";
import type { ConductConfig, PeerConduct, Violation } from "../shared/link/conduct.ts";
import {
  DEFAULT_HEALTH,
  type Decision,
  type HealthConfig,
  type HealthState,
  LinkHealth,
} from "../shared/link/health.ts";
import {
  type Payload,
  ReliableReceiver,
  ReliableSender,
  type SendOptions,
} from "../shared/link/reliable.ts";
import {
  iceCredentials,
  pcIdOf,
  sdpCandidates,
  withCandidatesCapped,
  withIceCredentials,
  withPcId,
} from "../shared/link/sdp-edit.ts";
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
import { BackupPaths } from "./backup-paths.ts";
import {
  CandidateExchange,
  type ExchangeTarget,
  MAX_REMOTE_CANDIDATES,
} from "./candidate-exchange.ts";
import type { PeerIdentity } from "./identity.ts";
import { LinkChannels } from "./link-channels.ts";
import { LinkVideo, type LinkVideoStats } from "./link-video.ts";
import type { VideoSource } from "./video-source.ts";
import {
  disableSctpHeartbeat,
  followConsent,
  iceConnection,
  type Path,
  resendOutstanding,
  selectedPairCounters,
  selectedPath,
} from "./werift-internals.ts";

export type Role = "offerer" | "answerer";
export type { Path };

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
  /** What the remote peer may get away with before the link is dropped. */
  conduct?: Partial<ConductConfig>;
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
  /** The camera to send on this link (the agent gives it for console peers only). */
  video?: VideoSource;
  /** Interval between checks of each backup pair (ms; backup-paths.ts). */
  backupCheckMs?: number;
}

type OfferEvent = Extract<RoomEvent, { type: "offer" }>;
type AnswerEvent = Extract<RoomEvent, { type: "answer" }>;
type CandidatesEvent = Extract<RoomEvent, { type: "candidates" }>;
type RestartEvent = Extract<RoomEvent, { type: "restart" }>;

/** How long an offer or a re-POST restart waits for the answer in the same request (s). */
const OFFER_WAIT_S = 10;
const RESTART_WAIT_S = 3;
/** The answerer waits this long for the offerer's `telemetry` after `control` opened (ms). */
const TELEMETRY_GRACE_MS = 200;
/** Background probe interval on a link to a browser (raw `control`: no acks to go by) (ms). */
const RAW_PROBE_MS = 1_000;

/** What a Link tells its agent (rover/agent.ts turns these into the agent's events). */
export interface LinkEvents {
  up: [info: { path: Path; firstTime: boolean }];
  down: [reason: string];
  state: [state: HealthState, prev: HealthState];
  handover: [info: { kind: "switch" | "restart" | "rebuild"; reason: string; gapMs: number }];
  restarting: [reason: string];
  "restart-failed": [error: string];
  switching: [reason: string];
  refused: [reason: string];
  /** The session this link signals on (new after an offer or a rebuild). */
  session: [session: string];
  message: [message: { channel: string; data: Payload }];
  drain: [];
  violation: [kind: Violation];
  misbehaving: [counts: Partial<Record<Violation, number>>];
  channel: [channel: RTCDataChannel];
  "file-channel": [channel: RTCDataChannel];
}

export class Link extends EventEmitter<LinkEvents> {
  readonly peer: string;
  readonly role: Role;
  readonly health: LinkHealth;
  readonly sender: ReliableSender;
  readonly receiver: ReliableReceiver;
  #o: LinkOptions;
  #pc: RTCPeerConnection | null = null;
  readonly #channels: LinkChannels;
  readonly #candidates: CandidateExchange;
  readonly #backup: BackupPaths;
  #sid: string | null = null;
  #etag: string | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** Our PeerConnection's id (in every SDP we send) and the remote one's (from theirs). */
  #pcId = "";
  #remotePcId: string | null = null;
  /** The remote PeerConnection that must answer our pending restart offer (null: any). */
  #answerFrom: string | null = null;
  #closed = false;
  #everOpen = false;
  #probeSeq = 0;
  #tickQueued = false;
  #busy: Promise<void> = Promise.resolve();
  #restartStartedAt: number | null = null;
  /** What started the handover in progress (health decision, peer, session loss). */
  #handoverReason: string | null = null;
  /** Causes `down` was emitted for since the link was last up (each said once per outage). */
  #downSaid = new Set<string>();
  /** The PeerConnection for which "up" was emitted. */
  #upFor: RTCPeerConnection | null = null;
  #ufragAtRestart: string | null = null;
  #downSince: number | null = null;
  #switchStartedAt: number | null = null;
  #switchReason: string | null = null;
  /** DTLS transports whose state is followed already. */
  #dtlsFollowed = new WeakSet<object>();
  /** The camera track on each PeerConnection of this link (null: no video on it). */
  readonly #video: LinkVideo | null;

  constructor(o: LinkOptions) {
    super();
    this.#o = o;
    this.peer = o.peer;
    this.role = o.role;
    // The answering side is ICE-controlled: on silence it waits longer before moving to a
    // backup, so that the controlling side's renomination (which it follows) usually comes first
    // and the two do not pick different backups.
    const controlled =
      o.role === "answerer" ? { backupSilenceMs: 2 * DEFAULT_HEALTH.backupSilenceMs } : {};
    // A browser's raw `control` has no acknowledgements to drive liveness: it keeps probing.
    const raw = o.raw ? { probeIdleMs: RAW_PROBE_MS } : {};
    this.health = new LinkHealth({ ...controlled, ...raw, ...o.health }, Date.now());
    this.sender = o.sender ?? new ReliableSender();
    this.receiver = o.receiver ?? new ReliableReceiver();
    this.#candidates = new CandidateExchange({
      ...o,
      excess: (n) =>
        this.#channels.violation(
          "candidate-flood",
          `${n} remote candidates past ${MAX_REMOTE_CANDIDATES} for one ICE session`,
        ),
    });
    this.#video = o.video ? new LinkVideo(o.video) : null;
    this.#backup = new BackupPaths({
      health: this.health,
      peer: o.peer,
      log: o.log,
      ...(o.backupCheckMs !== undefined ? { checkEveryMs: o.backupCheckMs } : {}),
      tick: () => this.#tick(),
      switched: (reason, path) => this.#switched(reason, path),
    });
    this.#channels = new LinkChannels({
      peer: o.peer,
      raw: o.raw,
      sender: this.sender,
      receiver: this.receiver,
      ...(o.conduct ? { conduct: o.conduct } : {}),
      log: o.log,
      hooks: {
        opened: () => this.#maybeUp(),
        controlClosed: () => {
          this.#linkDown("channel-closed");
          // Our own closes drop the PeerConnection first: this one was closed by the peer (an
          // SCTP ABORT from its pc.close()), and what it carried is gone for good.
          if (this.#pc === null || this.#closed) return;
          this.health.onPeerClosed(Date.now());
          this.#tick();
        },
        received: (now) => this.#received(now),
        probeAnswered: (id, now) => {
          this.health.onProbeAnswered(id, now);
          this.#tick();
        },
        // Acknowledgements of `control` are the probes while the application sends.
        reliableSent: (seq, now) => {
          this.health.onReliableSent(seq, now);
          this.#tickSoon();
        },
        reliableResent: (seqs, now) => {
          this.health.onReliableResent(seqs, now);
          this.#tick();
        },
        reliableAcked: (next, now, ackDelayMs) => {
          this.health.onReliableAcked(next, now, ackDelayMs);
          this.#tickSoon();
        },
        message: (channel, data) => this.emit("message", { channel, data }),
        drained: () => this.emit("drain"),
        violation: (kind, drop) => {
          this.emit("violation", kind);
          if (drop) this.emit("misbehaving", this.conduct.counts());
        },
        create: (label, opts) => {
          const pc = this.#pc;
          return pc && pc.connectionState !== "closed" ? pc.createDataChannel(label, opts) : null;
        },
      },
    });
  }

  get session(): string | null {
    return this.#sid;
  }

  get open(): boolean {
    return this.#channels.isOpen("control");
  }

  /** The remote peer's record of protocol violations on this link. */
  get conduct(): PeerConduct {
    return this.#channels.conduct;
  }

  /** Telemetry sent while down (dropped, not queued: stale telemetry is worthless). */
  get telemetryDropped(): number {
    return this.#channels.telemetryDropped;
  }

  /** Application-channel messages given up because too many waited for the channel. */
  get appDropped(): number {
    return this.#channels.appDropped;
  }

  /** `control` messages refused because the backlog was full. */
  get backlogRejected(): number {
    return this.#channels.backlogRejected;
  }

  // --- lifecycle ----------------------------------------------------------------------------

  /** Offerer: create the PeerConnection and offer through the edge. */
  start(): Promise<void> {
    return this.#serial(() => this.#offer());
  }

  #serial(f: () => Promise<void>): Promise<void> {
    const next = this.#busy.then(f, f).catch((e: unknown) => {
      if (!this.#closed)
        this.#o.log.warn({ peer: this.peer, err: errorMessage(e) }, "link step failed");
    });
    this.#busy = next;
    return next;
  }

  /** A new PeerConnection; `offer`: we offer it (the video section is ours to add). */
  #newPc(offer = false): RTCPeerConnection {
    this.#pcId = randomUUID();
    this.#channels.conduct.restartsSettled();
    const iceServers = this.#werift(this.#o.iceServers());
    const pc = new RTCPeerConnection({
      iceServers,
      iceUseIpv6: false,
      // The link's one keepalive: ICE consent checks by the controlling end (the offerer) for
      // both, at the profile's cadence (werift patch 18; docs/link-health.md).
      iceConsentInterval: this.health.config.keepaliveMs / 1000,
      iceConsentFromRemoteChecks: true,
      ...(this.#o.iceAdditionalHostAddresses
        ? { iceAdditionalHostAddresses: this.#o.iceAdditionalHostAddresses }
        : {}),
      ...(this.#o.interfaceAddresses ? { iceInterfaceAddresses: this.#o.interfaceAddresses } : {}),
      ...(this.#o.identity ? { certificates: [this.#o.identity.certificate] } : {}),
      ...(this.#video ? this.#video.pcConfig() : {}),
    });
    this.#video?.attach(pc, offer);
    pc.onIceCandidate.subscribe((c) => {
      if (!c || pc !== this.#pc) return;
      const init = c.toJSON();
      if (!init.candidate) return;
      this.#candidates.gathered({
        candidate: init.candidate,
        sdpMid: init.sdpMid ?? "0",
        sdpMLineIndex: init.sdpMLineIndex ?? 0,
      });
      void this.#candidates.flush(this.#target());
    });
    pc.iceConnectionStateChange.subscribe((s) => {
      if (pc !== this.#pc) return;
      this.#o.log.debug({ peer: this.peer, ice: s }, "ice state");
      followConsent(pc, (outcome, rttMs) => {
        if (pc !== this.#pc) return;
        this.health.onKeepalive(outcome, Date.now(), rttMs);
        this.#tick();
      });
      this.health.onIceState(s, Date.now());
      if (s === "connected" || s === "completed") this.#restartCompleted(Date.now());
      this.#tick();
    });
    pc.connectionStateChange.subscribe((s) => {
      if (pc !== this.#pc) return;
      this.#followDtls(pc);
      this.health.onConnectionState(s, Date.now());
      this.#tick();
    });
    pc.onDataChannel.subscribe((dc) => {
      if (pc !== this.#pc) return;
      // Forward channels are the forwarder's own (rover/forward.ts): outside LinkChannels' cap,
      // queue and `message` delivery.
      if (isForwardLabel(dc.label)) this.emit("channel", dc);
      // File transfers likewise (rover/file-transfer.ts).
      else if (isFileLabel(dc.label)) this.emit("file-channel", this.#heard(dc));
      else this.#channels.accept(dc);
    });
    return pc;
  }

  /** Feed DTLS transport states to the policy (the transports exist once descriptions apply). */
  #followDtls(pc: RTCPeerConnection): void {
    for (const t of pc.dtlsTransports) {
      if (this.#dtlsFollowed.has(t)) continue;
      this.#dtlsFollowed.add(t);
      t.onStateChange.subscribe((s) => {
        if (pc !== this.#pc) return;
        this.#o.log.debug({ peer: this.peer, dtls: s }, "dtls state");
        this.health.onDtlsState(s, Date.now());
        this.#tick();
      });
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
    if (session) await this.#dropSession(session);
    this.emit("refused", why);
    return true;
  }

  /** Where trickled candidates go now. */
  #target(): ExchangeTarget {
    return { pc: this.#pc, session: this.#sid, etag: this.#etag };
  }

  /** Make and send a local description; its candidates travel in it, the rest trickle after. */
  #describing<T>(step: () => Promise<T>): Promise<T> {
    return this.#candidates.describing(step, () => {
      void this.#candidates.flush(this.#target());
    });
  }

  /** The local description about to be sent, named with our PeerConnection's id. */
  #sentSdp(pc: RTCPeerConnection): string {
    const sdp = pc.localDescription?.sdp ?? "";
    this.#candidates.carried(sdp);
    return withPcId(sdp, this.#pcId);
  }

  /**
   * Offer a new session. When no link opens, the policy says when to offer again: the peer may
   * not be there yet, the edge unreachable, or the answering process dead.
   */
  async #offer(): Promise<void> {
    try {
      await this.#offerOnce();
      this.health.onOfferSent(Date.now());
    } catch (e) {
      this.health.onOfferFailed(Date.now());
      throw e;
    } finally {
      this.#tick();
    }
  }

  async #offerOnce(): Promise<void> {
    if (this.#closed) return;
    this.#replacePc();
    const pc = this.#newPc(true);
    this.#pc = pc;
    this.#channels.openStandard();
    const r = await this.#describing(async () => {
      await pc.setLocalDescription(await pc.createOffer());
      return this.#o.client.offer(this.#o.room, this.peer, this.#sentSdp(pc), {
        waitS: OFFER_WAIT_S,
      });
    });
    if (pc !== this.#pc) return;
    this.#sid = r.session;
    this.#etag = r.etag;
    this.#candidates.keepOnly(r.session);
    this.emit("session", r.session);
    void this.#candidates.flush(this.#target());
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
    await pc.setRemoteDescription({ type: "answer", sdp: this.#capped(sdp) });
    this.#remotePcId = pcIdOf(sdp);
    await this.#candidates.apply(this.#target());
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
    const r = await this.#describing(async () => {
      await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
      return this.#o.client.offer(this.#o.room, this.peer, this.#sentSdp(pc), {
        waitS: OFFER_WAIT_S,
      });
    });
    if (pc !== this.#pc) return;
    this.#sid = r.session;
    this.#etag = r.etag;
    this.#candidates.keepOnly(r.session);
    this.emit("session", r.session);
    if (r.status === 201 && r.answer) await this.#applyAnswer(pc, r.answer);
    // 202: the answer comes as an `answer` event.
  }

  async #resumeRefused(): Promise<void> {
    this.#o.log.info({ peer: this.peer }, "answered by a new PeerConnection; rebuilding");
    const sid = this.#sid;
    this.#sid = null;
    if (sid) await this.#dropSession(sid);
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
        this.#candidates.keepOnly(ev.session);
        this.emit("session", ev.session);
      }
      if (!restart || !pc) {
        this.#replacePc();
        pc = this.#newPc();
        this.#pc = pc;
        this.#sid = ev.session;
        this.#candidates.keepOnly(ev.session);
        this.emit("session", ev.session);
      } else {
        if (!this.#restartAllowed("re-POST")) return;
        this.health.onRemoteRestart(Date.now());
        this.#markRestart("peer-restart");
      }
      this.#etag = ev.etag;
      const offer = this.#capped(ev.sdp);
      try {
        await pc.setRemoteDescription({ type: "offer", sdp: offer });
        this.#remotePcId = from;
      } catch (e) {
        // werift has no rollback: after glare with our own pending restart, start afresh.
        this.#o.log.warn(
          { peer: this.peer, err: errorMessage(e) },
          "cannot apply offer; rebuilding",
        );
        this.#replacePc();
        pc = this.#newPc();
        this.#pc = pc;
        await pc.setRemoteDescription({ type: "offer", sdp: offer });
        this.#remotePcId = from;
      }
      await this.#candidates.apply(this.#target());
      const answering = pc;
      await this.#describing(async () => {
        declineAudio(answering);
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
        this.#candidates.hold(ev.session, fragCandidates(parseSdpFrag(ev.frag)));
      } catch {
        this.#o.log.warn({ peer: this.peer }, "ignoring a malformed candidates fragment");
        return;
      }
      await this.#candidates.apply(this.#target());
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
        this.#o.log.warn({ peer: this.peer, err: errorMessage(e) }, "ignoring a malformed restart");
        return;
      }
      const ufrag = fragUfrag(frag);
      const pwd = fragPwd(frag);
      if (!ufrag || !pwd) {
        this.#o.log.warn({ peer: this.peer }, "ignoring a restart without ice-ufrag/ice-pwd");
        return;
      }
      if (!this.#restartAllowed("PATCH")) return;
      this.health.onRemoteRestart(Date.now());
      this.#markRestart("peer-restart");
      this.#etag = ev.etag;
      this.#candidates.hold(ev.session, fragCandidates(frag));
      const sdp = withIceCredentials(remote.sdp, { ufrag, pwd });
      const reply = await this.#describing(async () => {
        if (remote.type === "offer") {
          await pc.setRemoteDescription({ type: "offer", sdp });
          declineAudio(pc);
          await pc.setLocalDescription(await pc.createAnswer());
        } else {
          await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
          await pc.setRemoteDescription({ type: "answer", sdp });
        }
        await this.#candidates.apply(this.#target());
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

  /** A remote description with no more candidates than one ICE session may bring. */
  #capped(sdp: string): string {
    const r = withCandidatesCapped(sdp, MAX_REMOTE_CANDIDATES);
    if (r.dropped > 0) {
      this.#channels.violation(
        "candidate-flood",
        `${r.dropped} candidates in a description past ${MAX_REMOTE_CANDIDATES}`,
      );
    }
    return r.sdp;
  }

  /**
   * Whether to carry out the peer's ICE restart (the conduct decides: its rate, and how many did
   * not complete on this PeerConnection). A refused one is not answered (its request times out at
   * the edge) and counts as a `restart-flood`.
   */
  #restartAllowed(how: string): boolean {
    const why = this.#channels.conduct.restartRefusal(Date.now());
    if (why === null) return true;
    this.#channels.violation("restart-flood", `ICE restart by ${how} ${why}`);
    return false;
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
    // Our own new offer replaced it at the edge; the new session is on its way.
    if (reason === "superseded" && this.role === "offerer") return;
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
    // The policy has the offerer offer a new session shortly.
    this.health.onSessionClosed(Date.now(), this.role === "offerer");
    this.#tick();
  }

  // --- ICE restart and rebuild ---------------------------------------------------------------

  /**
   * Force an ICE-restart handover now. `reason`: `turn-credentials` is the handover's reason; any
   * other label (an operator's) is logged, and the handover's reason is `manual`.
   */
  restart(reason = "manual"): void {
    this.health.requestRestart(Date.now(), reason === "turn-credentials" ? reason : "manual");
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
    this.#ufragAtRestart = iceConnection(this.#pc)?.localUsername ?? null;
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
    const ice = iceConnection(this.#pc);
    if (!ice?.nominated || ice.localUsername === this.#ufragAtRestart) return;
    const path = this.path();
    // The new pair is ours now: what SCTP holds goes out on it at once, whichever side we are
    // (werift's own hook runs only once its ICE check list completes, which can be later).
    resendOutstanding(this.#pc);
    this.health.onPath(path);
    this.health.onRestartDone(now, path);
    this.#backup.sync();
    this.#handoverDone(now, "restart");
    this.#upAgain({ path, firstTime: false });
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
      const r = await this.#describing(async () => {
        await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
        this.health.onRestartBegun(Date.now());
        return this.#o.client.restartOffer(this.#o.room, sid, this.#sentSdp(pc), {
          ifMatch: "*",
          waitS: RESTART_WAIT_S,
        });
      });
      if (pc !== this.#pc) return;
      this.#etag = r.etag;
      void this.#candidates.flush(this.#target());
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
      // Refused or unreachable: the policy retries per its backoff, not after the timeout. The
      // HTTP connection may sit on a dead uplink: the agent starts fresh ones.
      // An attempt that never got an answer from the edge (no ProblemError) is retried at once.
      this.health.onRestartFailed(Date.now(), !(e instanceof ProblemError));
      this.emit("restart-failed", errorMessage(e));
      this.#tick();
      throw e;
    }
  }

  async #rebuild(reason: string, attempt: number): Promise<void> {
    if (this.#closed) return;
    this.#o.log.warn({ peer: this.peer, reason, attempt }, "rebuilding the PeerConnection");
    this.#markRestart(reason);
    const old = this.#sid;
    if (this.role === "offerer") {
      if (old) await this.#dropSession(old);
      this.#sid = null;
      await this.#offer();
    }
    // The answerer waits for the offerer's new offer (a new session).
  }

  #replacePc(): void {
    const old = this.#pc;
    this.#pc = null;
    this.#backup.detach();
    this.#remotePcId = null;
    this.#answerFrom = null;
    this.#channels.closeAll();
    this.#candidates.reset();
    // A PeerConnection that fails to close is being dropped anyway: nothing is left to undo.
    if (old) void old.close().catch(() => {});
  }

  /**
   * Close a session on the edge, best effort: one the edge cannot be told about is superseded by
   * the next offer to the same peer or ends with the peers' presence, so a failure is only logged.
   */
  async #dropSession(sid: string): Promise<void> {
    await this.#o.client.closeSession(this.#o.room, sid).catch((e: unknown) => {
      this.#o.log.debug({ peer: this.peer, err: errorMessage(e) }, "session close not confirmed");
    });
  }

  // --- carrying out the policy's decisions ---------------------------------------------------

  /**
   * A tick for per-message events (50 msg/s and more): they rarely change a decision, and a
   * deadline already armed covers them, so the policy is polled at most once per event loop turn.
   */
  #tickSoon(): void {
    if (this.#tickQueued || this.#closed) return;
    this.#tickQueued = true;
    setImmediate(() => {
      this.#tickQueued = false;
      this.#tick();
    });
  }

  #tick(): void {
    if (this.#closed) return;
    const now = Date.now();
    for (const d of this.health.poll(now)) this.#do(d);
    if (this.#timer) clearTimeout(this.#timer);
    const next = this.health.nextDeadline();
    if (next !== undefined)
      this.#timer = setTimeout(() => this.#tick(), Math.max(5, next - Date.now()));
    this.#backup.schedule(); // traffic that began may want backups checked sooner
  }

  #do(d: Decision): void {
    switch (d.type) {
      case "probe": {
        const id = ++this.#probeSeq;
        // Counted as sent either way: a probe that could not go out is a probe not answered.
        this.health.onProbeSent(id, Date.now());
        this.#channels.ping(id);
        return;
      }
      case "restart":
        this.emit("restarting", d.reason);
        void this.#serial(() => this.#restartIce(d.reason, d.attempt));
        return;
      case "rebuild":
        void this.#serial(() => this.#rebuild(d.reason, d.attempt));
        return;
      case "switch":
        // No edge, no signaling: both ends move to a validated backup pair (renomination).
        this.#o.log.info({ peer: this.peer, reason: d.reason }, "switching to a backup path");
        this.#switchStartedAt = Date.now();
        this.#switchReason = d.reason;
        this.emit("switching", d.reason);
        // Gone meanwhile: the policy forgets it, and its verify window falls back to a restart.
        if (!this.#backup.switchTo(d.to, d.reason === "preferred"))
          this.health.onBackup(Date.now(), d.to, "", false);
        return;
      case "offer":
        if (this.role !== "offerer") return;
        this.#o.log.warn(
          { peer: this.peer, reason: d.reason, attempt: d.attempt },
          "offering again",
        );
        void this.#serial(() => this.#offer());
        return;
      case "state":
        this.#o.log.debug({ peer: this.peer, state: d.state, prev: d.prev }, "link state");
        this.emit("state", d.state, d.prev);
        return;
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
    // Uplinks first (gone, new, preferred): the policy's answer to the change depends on them.
    this.#backup.sync();
    this.health.onNetworkChange(Date.now());
    this.#tick();
  }

  // --- up and down ---------------------------------------------------------------------------

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
      }, TELEMETRY_GRACE_MS);
      return;
    }
    this.#controlOpen(pc);
  }

  #controlOpen(pc: RTCPeerConnection): void {
    this.#upFor = pc;
    // ICE consent is the keepalive: SCTP's own heartbeat would double an idle link's packets.
    disableSctpHeartbeat(pc);
    const now = Date.now();
    const first = !this.#everOpen;
    this.#everOpen = true;
    const path = this.path();
    this.health.onPath(path);
    this.health.onOpen(now, path);
    this.#backup.attach(pc);
    this.#handoverDone(now, "rebuild");
    this.#channels.hello();
    this.#channels.reopenQueued();
    this.#upAgain({ path, firstTime: first });
    this.#tick();
  }

  /**
   * The selected pair moved without a restart (our switch, or werift following the peer's
   * renomination): what SCTP holds goes out on the new pair now, not after its timer.
   */
  #switched(reason: string, path: Path | string): void {
    resendOutstanding(this.#pc);
    this.health.onPath(path);
    const now = Date.now();
    const started = this.#switchStartedAt ?? now;
    const why = reason === "remote-nomination" ? "peer-switch" : (this.#switchReason ?? reason);
    this.#switchStartedAt = null;
    this.#switchReason = null;
    this.#o.log.info({ peer: this.peer, reason: why, path }, "switched path");
    this.emit("handover", { kind: "switch", reason: why, gapMs: now - started });
  }

  /** The uplink address this link rides when the routing table prefers another (backup-paths.ts). */
  escapeAddress(): string | null {
    return this.#backup.escapeAddress();
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
    this.#channels.conduct.restartsSettled();
  }

  #linkDown(reason: string): void {
    if (this.#downSince === null) {
      this.#downSince = Date.now();
      this.#handoverReason ??= reason;
    }
    // Once per cause until the link is up again: each failed rebuild attempt closes its own
    // `control`, which said `channel-closed` again for the same outage.
    if (this.#downSaid.has(reason)) return;
    this.#downSaid.add(reason);
    this.emit("down", reason);
  }

  /** Up again: the next outage reports its causes afresh. */
  #upAgain(info: { path: Path; firstTime: boolean }): void {
    this.#downSaid.clear();
    this.emit("up", info);
  }

  /** Bytes werift holds for `channel`, not yet on the wire (0 when it is not open). */
  buffered(channel: string): number {
    return this.#channels.buffered(channel);
  }

  /** Send on a channel. `control`: reliable across restarts/rebuilds; `telemetry`: dropped when down. */
  send(channel: string, data: Payload, opts?: SendOptions): boolean {
    this.health.onSend(Date.now(), this.#channels.acknowledged(channel));
    return this.#channels.send(channel, data, opts);
  }

  /**
   * A channel on the current PeerConnection that the caller handles itself (port forwarding);
   * null when there is no PeerConnection. It lives as long as the PeerConnection: through ICE
   * restarts, not through a rebuild.
   */
  openChannel(
    label: string,
    opts: { ordered: boolean; maxRetransmits?: number },
  ): RTCDataChannel | null {
    const pc = this.#pc;
    if (!pc || pc.connectionState === "closed") return null;
    const dc = pc.createDataChannel(label, opts);
    return isFileLabel(label) ? this.#heard(dc) : dc;
  }

  /**
   * What arrives on a channel outside LinkChannels tells the health policy the path works, as
   * `control` does: a bulk transfer queues the probes behind its data, and the receiving side
   * would otherwise take the late probes for silence and restart a link that is carrying data.
   */
  #heard(dc: RTCDataChannel): RTCDataChannel {
    dc.onMessage.subscribe(() => this.#received(Date.now()));
    return dc;
  }

  #received(now: number): void {
    this.health.onReceive(now);
    this.#restartCompleted(now);
  }

  /** A breach of a protocol carried outside LinkChannels (file transfers): counted the same way. */
  violation(kind: Violation, detail: string): void {
    this.#channels.violation(kind, detail);
  }

  /** The selected ICE pair's send counters, for benchmarks. */
  selectedPair(): { packetsSent: number; bytesSent: number } | null {
    return selectedPairCounters(this.#pc);
  }

  path(): Path {
    return selectedPath(this.#pc);
  }

  /** The camera track's figures on this link (null: no video on it). */
  videoStats(): LinkVideoStats | null {
    return this.#video?.stats() ?? null;
  }

  async close(hangUp = true): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.health.onClosed(Date.now());
    this.#backup.close();
    const sid = this.#sid;
    if (hangUp && sid) await this.#dropSession(sid);
    this.#channels.dispose();
    this.#video?.detach();
    this.#replacePc();
  }
}

/**
 * An agent has no audio to send or play: a console's call is answered `inactive`, so the console
 * says so instead of sending a microphone nowhere (werift would answer `recvonly`).
 */
function declineAudio(pc: RTCPeerConnection): void {
  for (const t of pc.getTransceivers())
    if (t.kind === "audio" && t.direction !== "inactive") t.setDirection("inactive");
}
