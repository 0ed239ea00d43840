/**
 * One WebRTC link between this browser and another peer, negotiated only through the edge's HTTP
 * protocol: POST offer / answer, PATCH trickle, re-POST for ICE restarts, `restart` sdpfrags from
 * the other side. What the link does is decided by the shared health policy (health-loop.ts over
 * shared/link/health.ts); `control` is the shared reliable stream (control-stream.ts), probes are
 * the shared probe wire (probes.ts), and a peer that keeps breaking the protocol is dropped
 * (shared/link/conduct.ts). DOM-free apart from the WebRTC objects; the UI listens through
 * LinkCallbacks.
 */
import { PeerConduct, type Violation } from "../../shared/link/conduct.ts";
import type { Decision, HealthConfig, HealthSnapshot } from "../../shared/link/health.ts";
import { BacklogFullError } from "../../shared/link/reliable.ts";
import {
  iceCredentials,
  sdpAudio,
  sdpCandidates,
  withIceCredentials,
} from "../../shared/link/sdp-edit.ts";
import type { RoomEvent } from "../../shared/protocol.ts";
import {
  buildCandidateFrag,
  fragCandidates,
  fragPwd,
  fragUfrag,
  parseSdpFrag,
  serializeSdpFrag,
} from "../../shared/sdpfrag.ts";
import { type AppMessage, parseMessage } from "./control.ts";
import { ControlStream, type ControlStreams } from "./control-stream.ts";
import { HealthLoop, type LinkState, linkStateOf } from "./health-loop.ts";
import { onTelemetryText, ping } from "./probes.ts";
import type { SignalingClient } from "./signaling.ts";
import { errorStatus, errorText } from "./signaling.ts";
import { type LinkSample, lossBetween, sampleStats } from "./stats.ts";

export type { LinkState } from "./health-loop.ts";
export type VoiceState = "off" | "ringing" | "on" | "muted";

/**
 * Messages sent from this page (type and time), by any of its links: an echo of one comes back
 * on whatever link the peer has then (a new one after the peer restarted).
 */
const SENT_HERE = new Set<string>();
export type ChannelName = "control" | "telemetry";

export interface LinkContext {
  client: SignalingClient;
  room: string;
  self: string;
  rtc: RTCConfiguration;
  /** The peer frames `control` (a roverlink agent, or a console that announced `rl1`). */
  framed: boolean;
  /** `control` stream state of the peer's current process (kept by the room across links). */
  streams: ControlStreams;
  health?: Partial<HealthConfig>;
  getMic(): Promise<MediaStreamTrack>;
  /** How long to wait for ICE gathering before sending what we have (the rest trickles). */
  gatherTimeoutMs?: number;
  /** The peer sends a camera (it announced `meta.video`): our offers ask for it, receive-only. */
  video?: boolean;
}

export interface LinkCallbacks {
  session(link: PeerLink): void;
  state(link: PeerLink): void;
  message(
    link: PeerLink,
    channel: ChannelName,
    msg: AppMessage | { type: "raw"; text: string },
  ): void;
  audio(link: PeerLink, stream: MediaStream | null): void;
  /** The peer's camera arrived on the current PeerConnection (a rebuild brings a new one). */
  video(link: PeerLink, stream: MediaStream): void;
  /** Once a second: getStats figures, loss between samples, and the health policy's view. */
  sample(link: PeerLink, s: LinkSample, loss: number | null, health: HealthSnapshot): void;
  log(link: PeerLink, text: string): void;
  /** The peer has every `control` message below sequence number `below` (chat, commands). */
  delivered(link: PeerLink, below: number): void;
}

const SAMPLE_EVERY_MS = 1000;
/** Channels the peer may open on one PeerConnection; more is a flood. */
const MAX_PEER_CHANNELS = 16;

export class PeerLink {
  readonly peer: string;
  readonly role: "offerer" | "answerer";
  readonly conduct: PeerConduct;
  session: string | null = null;
  etag: string | null = null;
  state: LinkState = "connecting";
  voice: VoiceState = "off";
  /** Handovers started: ICE restarts (ours and the peer's) and rebuilds. */
  restarts = 0;
  /** The next restart renegotiates (voice added): not a handover, not counted in `restarts`. */
  private renegotiating = false;
  lastSample: LinkSample | undefined;

  private readonly ctx: LinkContext;
  private readonly cb: LinkCallbacks;
  private readonly control: ControlStream;
  private readonly loop: HealthLoop;
  private current: RTCPeerConnection;
  private channels = new Map<ChannelName, RTCDataChannel>();
  private peerChannels = 0;
  private gathered: RTCIceCandidateInit[] = [];
  private sentCandidates = new Set<string>();
  private remoteQueue: RTCIceCandidateInit[] = [];
  private mic: MediaStreamTrack | null = null;
  /** An offer of ours is being made and sent (restart or rebuild): one at a time. */
  private offering = false;
  /** While an SDP is being gathered and sent, new candidates go in it, not in a PATCH. */
  private holdTrickle = false;
  /** The PeerConnection whose opening the policy was told about. */
  private upFor: RTCPeerConnection | null = null;
  /** Our ICE ufrag before the restart under way: the restart is done once a newer one carries. */
  private ufragAtRestart: string | null = null;
  private checkingRestart = false;
  private probeSeq = 0;
  private sampler: ReturnType<typeof setInterval> | null = null;
  private closed = false;
  /** The PeerConnection last found closed under the link (told to the policy once). */
  private closedSeen: RTCPeerConnection | null = null;

  constructor(ctx: LinkContext, peer: string, role: "offerer" | "answerer", cb: LinkCallbacks) {
    this.ctx = ctx;
    this.peer = peer;
    this.role = role;
    this.cb = cb;
    this.conduct = new PeerConduct({}, performance.now());
    this.loop = new HealthLoop((d) => this.act(d), ctx.health);
    this.control = new ControlStream({
      ...ctx.streams,
      framed: ctx.framed,
      deliver: (text) => this.onAppText("control", text),
      violation: (kind, detail) => this.violation(kind, detail),
      acked: (below) => this.cb.delivered(this, below),
    });
    this.current = this.newPc();
    this.sampler = setInterval(() => void this.sample(), SAMPLE_EVERY_MS);
  }

  /** The PeerConnection in use (a rebuild replaces it). */
  get pc(): RTCPeerConnection {
    return this.current;
  }

  /** The health policy's figures now. */
  health(): HealthSnapshot {
    return this.loop.health.snapshot(this.loop.now());
  }

  /** When the peer was last heard on this link (wall clock, ms), or null if never. */
  heardAt(): number | null {
    const rx = this.health().lastRxAt;
    return rx === null ? null : Date.now() - (this.loop.now() - rx);
  }

  private newPc(): RTCPeerConnection {
    const pc = new RTCPeerConnection(this.ctx.rtc);
    const mine = () => pc === this.current && !this.closed;
    pc.addEventListener("icecandidate", (ev) => {
      if (mine() && ev.candidate?.candidate) {
        this.gathered.push(ev.candidate.toJSON());
        void this.flushTrickle();
      }
    });
    pc.addEventListener("datachannel", (ev) => {
      if (!mine()) return;
      if (++this.peerChannels > MAX_PEER_CHANNELS) {
        this.violation("channel-flood", `channel "${ev.channel.label.slice(0, 64)}" refused`);
        ev.channel.close();
        return;
      }
      this.wireChannel(ev.channel);
    });
    pc.addEventListener("track", (ev) => {
      if (!mine()) return;
      const stream = ev.streams[0] ?? new MediaStream([ev.track]);
      if (ev.track.kind === "video") this.cb.video(this, new MediaStream([ev.track]));
      else this.cb.audio(this, stream);
    });
    pc.addEventListener("iceconnectionstatechange", () => {
      if (!mine()) return;
      this.loop.feed((h, now) => h.onIceState(pc.iceConnectionState, now));
      void this.checkRestartDone();
    });
    pc.addEventListener("connectionstatechange", () => {
      if (mine()) this.loop.feed((h, now) => h.onConnectionState(pc.connectionState, now));
    });
    pc.addEventListener("signalingstatechange", () => {
      if (!mine() || pc.signalingState !== "stable") return;
      this.watchDtls(pc);
      void this.checkRestartDone();
    });
    return pc;
  }

  /** DTLS `failed` cannot be mended by an ICE restart: the policy rebuilds. */
  private watchDtls(pc: RTCPeerConnection): void {
    const dtls = pc.sctp?.transport;
    if (!dtls || (dtls as { roverlinkWatched?: boolean }).roverlinkWatched) return;
    (dtls as { roverlinkWatched?: boolean }).roverlinkWatched = true;
    dtls.addEventListener("statechange", () => {
      if (pc === this.current) this.loop.feed((h, now) => h.onDtlsState(dtls.state, now));
    });
  }

  // -------------------------------------------------------------------------------------------
  // Negotiation

  /** Offer to the peer (POST .../peers/{peer}/sessions). */
  async connect(opts: { voice?: boolean } = {}): Promise<void> {
    if (opts.voice) {
      this.mic = await this.ctx.getMic();
      this.voice = "on";
    }
    await this.offerNewSession();
  }

  /** Open our channels on the current PeerConnection and offer it in a new session. */
  private async offerNewSession(): Promise<void> {
    const pc = this.current;
    this.wireChannel(pc.createDataChannel("control", { ordered: true }));
    this.wireChannel(pc.createDataChannel("telemetry", { ordered: false, maxRetransmits: 0 }));
    if (this.mic) pc.addTransceiver(this.mic, { direction: "sendrecv" });
    // The rover's camera: asked for on every new PeerConnection (a rebuild renegotiates it).
    if (this.ctx.video) pc.addTransceiver("video", { direction: "recvonly" });
    this.holdTrickle = true;
    try {
      await pc.setLocalDescription(await pc.createOffer());
      const sdp = await this.localSdpAfterGathering(pc);
      let res: Awaited<ReturnType<typeof this.ctx.client.offer>>;
      try {
        res = await this.ctx.client.offer(this.ctx.room, this.peer, sdp, { waitS: 10 });
      } catch (err) {
        // The policy offers again after its backoff (the edge unreachable, the peer not there).
        this.loop.feed((h, now) => h.onOfferFailed(now));
        throw err;
      }
      // Unanswered for the policy's rebuild timeout: offered again (as the rover agent does).
      this.loop.feed((h, now) => h.onOfferSent(now));
      if (this.closed) {
        // Closed while the offer was held (the peer restarted meanwhile): hang the session up,
        // or the peer's new process would keep answering a link nobody holds.
        await this.ctx.client.closeSession(this.ctx.room, res.session).catch(() => undefined);
        return;
      }
      if (pc !== this.current) return;
      this.session = res.session;
      this.etag = res.etag;
      this.cb.session(this);
      if (res.answer) await this.applyAnswer(res.answer);
      else this.log(`offer accepted (${res.status}); waiting for ${this.peer} to answer`);
    } finally {
      this.holdTrickle = false;
    }
    await this.flushTrickle();
  }

  /**
   * Answer an `offer` event for a new session: the first one, or the other side's rebuild (a
   * new PeerConnection there; ours is replaced too, the `control` stream carries on).
   */
  async accept(ev: Extract<RoomEvent, { type: "offer" }>): Promise<void> {
    if (this.current.remoteDescription || this.current.localDescription) this.replacePc();
    this.session = ev.session;
    this.etag = ev.etag;
    this.cb.session(this);
    await this.answerOffer(ev.sdp, ev.etag);
  }

  /** Events of this link's session (routed by the room). */
  async handle(ev: RoomEvent): Promise<void> {
    try {
      switch (ev.type) {
        case "answer":
          this.etag = ev.etag;
          // (A `frag` answer answers a PATCH restart, which the console never makes.)
          if ("sdp" in ev && this.current.signalingState === "have-local-offer")
            await this.applyAnswer(ev.sdp);
          break;
        case "candidates":
          await this.addRemoteCandidates(ev.frag);
          break;
        case "offer":
          // A re-offer from the other side: its ICE restart (or voice added).
          this.remoteRestart();
          await this.answerOffer(ev.sdp, ev.etag);
          break;
        case "restart":
          await this.answerRestartFrag(ev.frag, ev.etag);
          break;
        case "session-closed":
          this.shutdown(`session closed by ${ev.by} (${ev.reason})`);
          break;
        default:
          break;
      }
    } catch (err) {
      this.log(`${ev.type} failed: ${errorText(err)}`);
    }
  }

  /** Ask the policy for an ICE restart (operator, or voice added: the re-offer carries audio). */
  restart(reason: string): void {
    if (this.closed) return;
    this.log(`restart requested (${reason})`);
    this.loop.feed((h, now) => h.requestRestart(now));
  }

  /** The browser's network changed (`online`, `navigator.connection` change). */
  networkChanged(): void {
    this.loop.feed((h, now) => h.onNetworkChange(now));
  }

  /** Carry out a decision of the health policy. */
  private act(d: Decision): void {
    switch (d.type) {
      case "probe":
        this.probe();
        return;
      case "restart": {
        // Adding voice renegotiates (by an ICE restart): said as such, and not a handover.
        const why = this.renegotiating ? "adding voice" : `${d.reason}, attempt ${d.attempt}`;
        if (this.renegotiating) this.renegotiating = false;
        else this.restarts++;
        this.ufragAtRestart ??= this.localUfrag();
        void this.restartIce(why);
        return;
      }
      case "rebuild":
        this.restarts++;
        void this.rebuild(`${d.reason}, attempt ${d.attempt}`);
        return;
      case "offer":
        // The offer went unanswered, or failed: a new one (it stayed "connecting" for good).
        void this.offerAgain(`${d.reason}, attempt ${d.attempt}`);
        return;
      case "state":
        this.setState(linkStateOf(d.state));
        return;
    }
  }

  /** ICE restart by re-POST of a full offer (which also carries a newly added audio track). */
  private async restartIce(reason: string): Promise<void> {
    const pc = this.current;
    if (this.offering || this.closed) return;
    if (!this.session || !this.etag || pc.signalingState !== "stable") {
      // Nothing to restart in (session gone), or a negotiation under way: the policy retries
      // with backoff and rebuilds after enough failures.
      this.log(`ICE restart (${reason}) not possible now`);
      this.loop.feed((h, now) => h.onRestartFailed(now));
      return;
    }
    this.offering = true;
    this.holdTrickle = true;
    this.log(`ICE restart (${reason})`);
    try {
      await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
      const sdp = await this.localSdpAfterGathering(pc);
      this.loop.feed((h, now) => h.onRestartBegun(now));
      const res = await this.ctx.client.restartOffer(this.ctx.room, this.session, sdp, {
        ifMatch: this.etag,
      });
      if (pc !== this.current) return;
      this.etag = res.etag;
      if (res.answer) await this.applyAnswer(res.answer);
      this.holdTrickle = false;
      await this.flushTrickle();
    } catch (err) {
      if (pc !== this.current) return; // rebuilt meanwhile
      const status = errorStatus(err);
      this.log(`restart: ${errorText(err)}`);
      if ((pc.signalingState as RTCSignalingState) === "have-local-offer") {
        // Glare (409) or refused: drop our offer; the other side's offer wins.
        await pc.setLocalDescription({ type: "rollback" }).catch(() => undefined);
      }
      // 409: the other side's restart is under way (its offer arrives as an event).
      if (status !== 409) this.loop.feed((h, now) => h.onRestartFailed(now));
      if (status === 404) this.session = null;
    } finally {
      this.holdTrickle = false;
      this.offering = false;
    }
  }

  /**
   * A new PeerConnection: the old session is hung up; the offerer offers anew, the answerer
   * waits for the other side's new offer (routed here by the room, see `accept`).
   */
  private async rebuild(reason: string): Promise<void> {
    if (this.closed) return;
    await this.freshSession(`rebuilding the PeerConnection (${reason})`, "rebuild");
  }

  /** The policy's new offer (the last one failed, or nobody answered it). */
  private async offerAgain(why: string): Promise<void> {
    if (this.closed || this.role !== "offerer" || this.offering) return;
    await this.freshSession(`offering again (${why})`, "offer");
  }

  /** A new PeerConnection in a new session, the old one hung up; the offerer offers it. */
  private async freshSession(said: string, failedAs: string): Promise<void> {
    this.log(said);
    const old = this.session;
    this.session = null;
    this.etag = null;
    this.replacePc();
    try {
      // Hanging up makes an answering rover agent wait for, and an offering one send, a new offer.
      if (old) await this.ctx.client.closeSession(this.ctx.room, old).catch(() => undefined);
      if (this.role === "offerer") await this.offerNewSession();
    } catch (err) {
      // Closed meanwhile (the peer left or restarted): nothing failed that anyone waits for.
      if (this.closed) return;
      // The policy tries again (its rebuild timeout, its offer backoff).
      this.log(`${failedAs}: ${errorText(err)}`);
    }
  }

  private replacePc(): void {
    const old = this.current;
    for (const dc of this.channels.values()) dc.close();
    this.channels.clear();
    this.peerChannels = 0;
    this.gathered = [];
    this.sentCandidates.clear();
    this.remoteQueue = [];
    this.upFor = null;
    this.current = this.newPc();
    old.close();
  }

  /** The other side restarts ICE (re-offer or sdpfrag): we answer and start none of our own. */
  private remoteRestart(): void {
    this.restarts++;
    this.ufragAtRestart ??= this.localUfrag();
    this.loop.feed((h, now) => h.onRemoteRestart(now));
  }

  private async applyAnswer(sdp: string): Promise<void> {
    await this.current.setRemoteDescription({ type: "answer", sdp });
    await this.drainRemote();
    // A peer with no use for audio (a rover agent) declines it: no call, rather than "Voice: on"
    // with the microphone going nowhere.
    const audio = sdpAudio(sdp);
    if (this.voice !== "off" && audio && !audio.sends && !audio.takes) {
      this.log("takes no voice (no call)");
      await this.endVoice(false);
    }
  }

  private async answerOffer(sdp: string, etag: string): Promise<void> {
    const pc = this.current;
    this.holdTrickle = true;
    try {
      if (pc.signalingState === "have-local-offer") {
        // Glare: the edge serialized the other side's offer first; ours is void.
        await pc.setLocalDescription({ type: "rollback" });
      }
      await pc.setRemoteDescription({ type: "offer", sdp });
      // A call only when the offer sends audio: a rover that declined voice keeps its audio
      // section `inactive` in its own later offers (it rang as "calling" before).
      if (sdpAudio(sdp)?.sends) this.prepareAudioAnswer();
      await pc.setLocalDescription(await pc.createAnswer());
      const answer = await this.localSdpAfterGathering(pc);
      await this.ctx.client.answer(this.ctx.room, this.sessionId(), answer, {
        contentType: "sdp",
        ifMatch: etag,
      });
      this.etag = etag;
      await this.drainRemote();
    } finally {
      this.holdTrickle = false;
    }
    await this.flushTrickle();
  }

  /** A `restart` sdpfrag (PATCH ICE restart by the other side): apply it, answer with ours. */
  private async answerRestartFrag(fragText: string, etag: string): Promise<void> {
    const pc = this.current;
    const frag = parseSdpFrag(fragText);
    const ufrag = fragUfrag(frag);
    const pwd = fragPwd(frag);
    const remote = pc.remoteDescription;
    if (!ufrag || !pwd || !remote) throw new Error("restart without ufrag/pwd or before any offer");
    this.remoteRestart();
    this.holdTrickle = true;
    try {
      const munged = withIceCredentials(remote.sdp, { ufrag, pwd });
      if (remote.type === "offer") {
        await pc.setRemoteDescription({ type: "offer", sdp: munged });
        await pc.setLocalDescription(await pc.createAnswer());
      } else {
        await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
        await pc.setRemoteDescription({ type: "answer", sdp: munged });
      }
      for (const c of fragCandidates(frag)) await this.addCandidate(c);
      const local = await this.localSdpAfterGathering(pc);
      const creds = iceCredentials(local);
      if (!creds) throw new Error("local description has no ICE credentials");
      const reply = buildCandidateFrag({
        ...creds,
        candidates: sdpCandidates(local),
        end: pc.iceGatheringState === "complete",
      });
      await this.ctx.client.answer(this.ctx.room, this.sessionId(), serializeSdpFrag(reply), {
        contentType: "sdpfrag",
        ifMatch: etag,
      });
      this.etag = etag;
    } finally {
      this.holdTrickle = false;
    }
    await this.flushTrickle();
  }

  private localUfrag(): string | null {
    return iceCredentials(this.current.localDescription?.sdp ?? "")?.ufrag ?? null;
  }

  /**
   * A restart is done once the new ICE generation carries the data: the selected pair's local
   * candidate has the ufrag of our current description, not the one from before the restart.
   * (Chromium may stay `connected` throughout, and data may flow on the old pair meanwhile:
   * neither the ICE state nor a received message says the restart worked.)
   */
  private async checkRestartDone(): Promise<void> {
    const pc = this.current;
    if (this.loop.health.state !== "restarting" || this.checkingRestart) return;
    if (pc.signalingState !== "stable") return;
    if (pc.iceConnectionState !== "connected" && pc.iceConnectionState !== "completed") return;
    const ufrag = this.localUfrag();
    if (!ufrag || ufrag === this.ufragAtRestart) return;
    this.checkingRestart = true;
    let s: LinkSample;
    try {
      s = sampleStats(await pc.getStats(), Date.now());
    } finally {
      this.checkingRestart = false;
    }
    if (pc !== this.current || s.localUfrag !== ufrag) return;
    this.ufragAtRestart = null;
    this.log(`ICE restart done (${s.path})`);
    this.loop.feed((h, now) => h.onRestartDone(now, s.path));
  }

  // -------------------------------------------------------------------------------------------
  // Candidates

  /** Wait for gathering (host candidates on a LAN take milliseconds), then snapshot the SDP. */
  private async localSdpAfterGathering(pc: RTCPeerConnection): Promise<string> {
    const timeout = this.ctx.gatherTimeoutMs ?? 1500;
    if (pc.iceGatheringState !== "complete") {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          pc.removeEventListener("icegatheringstatechange", check);
          resolve();
        };
        const check = () => {
          if (pc.iceGatheringState === "complete") done();
        };
        const t = setTimeout(done, timeout);
        pc.addEventListener("icegatheringstatechange", check);
      });
    }
    const sdp = pc.localDescription?.sdp ?? "";
    this.sentCandidates = new Set(sdpCandidates(sdp).map((c) => c.candidate));
    this.gathered = this.gathered.filter((c) => !this.sentCandidates.has(c.candidate ?? ""));
    return sdp;
  }

  /** Trickle candidates gathered after the SDP went out (PATCH, If-Match: current ETag). */
  private async flushTrickle(): Promise<void> {
    const pc = this.current;
    if (this.holdTrickle || !this.session || !this.etag || !pc.remoteDescription) return;
    const fresh = this.gathered.filter((c) => !this.sentCandidates.has(c.candidate ?? ""));
    if (fresh.length === 0) return;
    const creds = iceCredentials(pc.localDescription?.sdp ?? "");
    if (!creds) return;
    for (const c of fresh) this.sentCandidates.add(c.candidate ?? "");
    this.gathered = [];
    const frag = buildCandidateFrag({
      ufrag: creds.ufrag,
      pwd: creds.pwd,
      candidates: fresh.map((c) => ({
        candidate: c.candidate ?? "",
        ...(c.sdpMid != null ? { sdpMid: c.sdpMid } : {}),
      })),
    });
    try {
      await this.ctx.client.trickle(this.ctx.room, this.session, serializeSdpFrag(frag), {
        ifMatch: this.etag,
      });
    } catch (err) {
      this.log(`trickle: ${errorText(err)}`);
    }
  }

  private async addRemoteCandidates(fragText: string): Promise<void> {
    for (const c of fragCandidates(parseSdpFrag(fragText))) await this.addCandidate(c);
  }

  private async addCandidate(c: RTCIceCandidateInit): Promise<void> {
    if (!this.current.remoteDescription) {
      this.remoteQueue.push(c);
      return;
    }
    const init: RTCIceCandidateInit = { ...c };
    if (init.sdpMid === undefined && init.sdpMLineIndex === undefined) init.sdpMLineIndex = 0;
    await this.current.addIceCandidate(init).catch((err: unknown) => {
      // Candidates of an old ICE generation are expected to be refused after a restart.
      this.log(`candidate ignored: ${errorText(err)}`);
    });
  }

  private async drainRemote(): Promise<void> {
    const queued = this.remoteQueue;
    this.remoteQueue = [];
    for (const c of queued) await this.addCandidate(c);
  }

  // -------------------------------------------------------------------------------------------
  // Channels and messages

  private wireChannel(dc: RTCDataChannel): void {
    const name = dc.label === "control" || dc.label === "telemetry" ? dc.label : null;
    if (!name) {
      this.log(`ignoring channel ${dc.label.slice(0, 64)}`);
      return;
    }
    const pc = this.current;
    this.channels.set(name, dc);
    dc.binaryType = "arraybuffer";
    const decoder = new TextDecoder();
    dc.addEventListener("message", (ev: MessageEvent) => {
      if (pc !== this.current || this.closed) return;
      const d = ev.data as unknown;
      const text = typeof d === "string" ? d : decoder.decode(d as ArrayBuffer);
      this.loop.note((h, now) => h.onReceive(now));
      if (name === "control") this.control.receive(dc, text);
      else this.onTelemetry(dc, text);
      void this.checkRestartDone();
    });
    let opened = false;
    const onOpen = () => {
      if (opened || pc !== this.current || this.closed) return;
      // Once per channel: an announced channel can be open when `datachannel` fires with its
      // `open` event still queued, and a second hello on one channel is a protocol violation.
      opened = true;
      if (name === "control") this.control.opened(dc);
      this.maybeUp(pc);
    };
    dc.addEventListener("open", onOpen);
    // An announced channel may already be open when `datachannel` fires.
    if (dc.readyState === "open") queueMicrotask(onOpen);
    // We replace our PeerConnection before closing it: `control` closing on the one in use was
    // the peer's doing (an SCTP ABORT from its close()). Nothing else would tell the policy on an
    // idle link before the keepalive misses (~25 s).
    dc.addEventListener("close", () => {
      if (name !== "control" || pc !== this.current || this.closed) return;
      if (this.channels.get("control") !== dc) return;
      // Closed here, not by the peer: told as such at once, not at the next sample.
      if (pc.signalingState === "closed") return this.closedUnderUs(pc);
      this.log("the peer closed the PeerConnection");
      this.loop.feed((h, now) => h.onPeerClosed(now));
    });
  }

  /** The link carries data once `control` is open on this PeerConnection: tell the policy. */
  private maybeUp(pc: RTCPeerConnection): void {
    if (this.upFor === pc || this.channels.get("control")?.readyState !== "open") return;
    this.upFor = pc;
    this.ufragAtRestart = null;
    this.loop.feed((h, now) => h.onOpen(now));
  }

  private onTelemetry(dc: RTCDataChannel, text: string): void {
    const a = onTelemetryText(text, this.loop.now(), this.conduct);
    if (!a) {
      this.onAppText("telemetry", text);
      return;
    }
    switch (a.type) {
      case "reply":
        if (dc.readyState === "open") dc.send(a.text);
        return;
      case "answered":
        this.loop.feed((h, now) => h.onProbeAnswered(a.id, now));
        return;
      case "violation":
        this.violation(a.kind, a.detail);
        return;
    }
  }

  private probe(): void {
    const dc = this.channels.get("telemetry");
    if (dc?.readyState !== "open") return;
    const id = ++this.probeSeq;
    this.loop.note((h, now) => h.onProbeSent(id, now));
    try {
      dc.send(ping(id));
    } catch {
      // closing: the probe counts as lost
    }
    void this.checkRestartDone();
  }

  private onAppText(channel: ChannelName, text: string): void {
    const msg = parseMessage(text);
    if (msg.type === "voice") {
      // Call signaling, not a message: logged, never listed (a rover echoes ours back: ignored).
      if (msg.from === this.ctx.self) return;
      this.log(msg.state === "on" ? "talking" : "hung up");
      // A call is over for both sides when either hangs up.
      if (msg.state === "off" && this.voice !== "off") void this.endVoice(false);
      return;
    }
    this.cb.message(this, channel, msg);
  }

  /**
   * The peer broke the link protocol: counted; past the conduct budget the link is dropped (hung
   * up), as the rover agent drops a misbehaving peer's link.
   */
  violation(kind: Violation, detail: string): void {
    if (this.closed) return;
    const first = (this.conduct.counts()[kind] ?? 0) === 0;
    const verdict = this.conduct.onViolation(kind, this.loop.now());
    if (first) this.log(`protocol violation (${kind}): ${detail}`);
    if (verdict === "drop") {
      this.log(`dropping the link: ${this.peer} keeps breaking the protocol`);
      void this.close();
    }
  }

  /** Send on `control`: its sequence number (see `delivered`), or null (raw, or not taken). */
  /** Whether `msg` (one that names us as its sender) was sent from this page: an echo. */
  sentFromHere(msg: AppMessage): boolean {
    return "at" in msg && SENT_HERE.has(`${msg.type}|${msg.at}`);
  }

  private sendControl(msg: AppMessage): number | null {
    // Only framed control is acknowledged (a browser that does not frame sends no acks).
    this.loop.note((h, now) => h.onSend(now, this.ctx.framed));
    if ("at" in msg) {
      SENT_HERE.add(`${msg.type}|${msg.at}`);
      // The last 1000 are enough to know an echo (it comes back within seconds, or once the
      // peer's next process has it).
      if (SENT_HERE.size > 1000) {
        const first = SENT_HERE.values().next().value;
        if (first !== undefined) SENT_HERE.delete(first);
      }
    }
    try {
      return this.control.send(JSON.stringify(msg));
    } catch (err) {
      if (!(err instanceof BacklogFullError)) throw err;
      this.log(`not sent: ${err.message}`);
      return null;
    }
  }

  /** True when the channel is open. */
  isOpen(channel: ChannelName): boolean {
    return this.channels.get(channel)?.readyState === "open";
  }

  /** Send a chat line: its sequence number for `delivered`, or null when nothing will say. */
  chat(text: string): number | null {
    return this.sendControl({ type: "chat", from: this.ctx.self, text, at: Date.now() });
  }

  command(name: string, args?: unknown): number | null {
    const msg: AppMessage = { type: "cmd", from: this.ctx.self, name, at: Date.now() };
    if (args !== undefined) msg.args = args;
    return this.sendControl(msg);
  }

  // -------------------------------------------------------------------------------------------
  // Voice

  private audioTransceiver(): RTCRtpTransceiver | undefined {
    return this.current
      .getTransceivers()
      .find((t) => t.receiver.track.kind === "audio" && t.currentDirection !== "stopped");
  }

  /** Answer audio as sendrecv without a track: nothing is sent until the user accepts. */
  private prepareAudioAnswer(): void {
    const t = this.audioTransceiver();
    if (!t) return;
    t.direction = "sendrecv";
    if (this.mic && this.voice !== "off") {
      // A rebuilt PeerConnection during a call: the microphone goes on the new one.
      void t.sender.replaceTrack(this.mic);
      return;
    }
    if (this.voice === "off") {
      this.voice = "ringing";
      this.log("calling");
      this.cb.state(this);
    }
  }

  /** Start talking: answer a ringing call, or add voice to the link (renegotiates). */
  async startVoice(): Promise<void> {
    const t = this.audioTransceiver();
    if (t && t.direction === "sendrecv") {
      this.mic = this.mic ?? (await this.ctx.getMic());
      this.mic.enabled = true;
      await t.sender.replaceTrack(this.mic);
    } else {
      this.mic = await this.ctx.getMic();
      if (t) {
        t.direction = "sendrecv";
        await t.sender.replaceTrack(this.mic);
      } else {
        this.current.addTransceiver(this.mic, { direction: "sendrecv" });
      }
      this.voice = "on";
      this.renegotiating = true;
      this.loop.feed((h, now) => h.requestRestart(now));
    }
    this.voice = "on";
    this.sendControl({ type: "voice", from: this.ctx.self, state: "on" });
    this.cb.state(this);
  }

  setMuted(muted: boolean): void {
    if (!this.mic || this.voice === "off" || this.voice === "ringing") return;
    this.mic.enabled = !muted;
    this.voice = muted ? "muted" : "on";
    this.cb.state(this);
  }

  async hangUp(): Promise<void> {
    await this.endVoice(true);
  }

  private async endVoice(tellPeer: boolean): Promise<void> {
    const t = this.audioTransceiver();
    if (t) await t.sender.replaceTrack(null);
    this.mic?.stop();
    this.mic = null;
    this.voice = "off";
    if (tellPeer) this.sendControl({ type: "voice", from: this.ctx.self, state: "off" });
    this.cb.audio(this, null);
    this.cb.state(this);
  }

  // -------------------------------------------------------------------------------------------
  // Figures

  private async sample(): Promise<void> {
    if (this.closed) return;
    const pc = this.current;
    if (pc.signalingState === "closed") {
      this.closedUnderUs(pc);
      return;
    }
    const s = sampleStats(await pc.getStats(), Date.now());
    if (pc !== this.current || this.closed) return;
    const loss = lossBetween(this.lastSample, s);
    this.lastSample = s;
    if (s.path !== "unknown") this.loop.health.onPath(s.path);
    this.cb.sample(this, s, loss, this.health());
  }

  /**
   * The PeerConnection in use was closed, not by us (we replace ours before closing them).
   * close() fires no event, and its closed channels send no probes, so nothing else would ever
   * tell the policy: the link would wait for the peer's keepalive to fail (~25 s). Its DTLS
   * transport is closed for good, which only a rebuild mends, as DTLS `failed`.
   */
  private closedUnderUs(pc: RTCPeerConnection): void {
    if (this.closedSeen === pc) return;
    this.closedSeen = pc;
    this.log("the PeerConnection was closed under the link");
    this.loop.feed((h, now) => h.onDtlsState("failed", now));
  }

  // -------------------------------------------------------------------------------------------

  /** Hang up the session (DELETE) and close the connection; the room log says `why`. */
  async close(why = "disconnected"): Promise<void> {
    const sid = this.session;
    this.shutdown(why);
    if (sid) await this.ctx.client.closeSession(this.ctx.room, sid).catch(() => undefined);
  }

  /** Close locally (the session is already gone); the room log says why. */
  shutdown(why: string): void {
    if (this.closed) return;
    this.closed = true;
    this.log(`link closed: ${why}`);
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = null;
    this.loop.stop();
    this.control.close();
    this.mic?.stop();
    this.current.close();
    this.state = "closed";
    this.cb.state(this);
  }

  private setState(s: LinkState): void {
    if (this.state === s || this.closed) return;
    this.state = s;
    this.cb.state(this);
  }

  private sessionId(): string {
    if (!this.session) throw new Error("no session yet");
    return this.session;
  }

  private log(text: string): void {
    this.cb.log(this, text);
  }
}
