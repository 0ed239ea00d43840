/**
 * One WebRTC link between this browser and another peer, negotiated only through the edge's HTTP
 * protocol: POST offer / answer, PATCH trickle, re-POST for ICE restarts, `restart` sdpfrags from
 * the other side. DOM-free apart from the WebRTC objects; the UI listens through LinkCallbacks.
 */
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
import { hasAudio, iceCredentials, sdpCandidates, withIceCredentials } from "./ice-sdp.ts";
import type { SignalingClient } from "./signaling.ts";
import { errorStatus, errorText } from "./signaling.ts";
import { type LinkSample, lossBetween, sampleStats } from "./stats.ts";
import { type ChannelCodec, rawCodec, type TextPipe } from "./wire.ts";

export type LinkState = "connecting" | "connected" | "reconnecting" | "failed" | "closed";
export type VoiceState = "off" | "ringing" | "on" | "muted";
export type ChannelName = "control" | "telemetry";

export interface LinkContext {
  client: SignalingClient;
  room: string;
  self: string;
  rtc: RTCConfiguration;
  controlCodec: ChannelCodec;
  getMic(): Promise<MediaStreamTrack>;
  /** How long to wait for ICE gathering before sending what we have (the rest trickles). */
  gatherTimeoutMs?: number;
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
  sample(link: PeerLink, s: LinkSample, loss: number | null, pingRttMs: number | null): void;
  log(link: PeerLink, text: string): void;
}

const PING_EVERY_MS = 1000;
const PING_LOST_AFTER_MS = 3000;
/** Consecutive lost pings (with pongs seen before) that count as a degraded link. */
const DEGRADED_PINGS = 4;
const DISCONNECTED_RESTART_MS = 2500;

export class PeerLink {
  readonly peer: string;
  readonly role: "offerer" | "answerer";
  readonly pc: RTCPeerConnection;
  session: string | null = null;
  etag: string | null = null;
  state: LinkState = "connecting";
  voice: VoiceState = "off";
  restarts = 0;
  lastSample: LinkSample | undefined;

  private readonly ctx: LinkContext;
  private readonly cb: LinkCallbacks;
  private pipes = new Map<ChannelName, TextPipe>();
  private channels = new Map<ChannelName, RTCDataChannel>();
  private gathered: RTCIceCandidateInit[] = [];
  private sentCandidates = new Set<string>();
  private remoteQueue: RTCIceCandidateInit[] = [];
  private mic: MediaStreamTrack | null = null;
  private restarting = false;
  /** While an SDP is being gathered and sent, new candidates go in it, not in a PATCH. */
  private holdTrickle = false;
  private disconnectedSince = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private pingSeq = 0;
  private pings = new Map<number, number>();
  private pongsSeen = 0;
  private lostInRow = 0;
  private lastPingRtt: number | null = null;

  constructor(ctx: LinkContext, peer: string, role: "offerer" | "answerer", cb: LinkCallbacks) {
    this.ctx = ctx;
    this.peer = peer;
    this.role = role;
    this.cb = cb;
    this.pc = new RTCPeerConnection(ctx.rtc);
    this.pc.addEventListener("icecandidate", (ev) => {
      if (ev.candidate?.candidate) {
        this.gathered.push(ev.candidate.toJSON());
        void this.flushTrickle();
      }
    });
    this.pc.addEventListener("datachannel", (ev) => this.wireChannel(ev.channel));
    this.pc.addEventListener("track", (ev) => {
      const stream = ev.streams[0] ?? new MediaStream([ev.track]);
      this.cb.audio(this, stream);
    });
    this.pc.addEventListener("iceconnectionstatechange", () => this.onIceState());
    this.timer = setInterval(() => void this.tick(), PING_EVERY_MS);
  }

  // -------------------------------------------------------------------------------------------
  // Negotiation

  /** Offer to the peer (POST .../peers/{peer}/sessions). */
  async connect(opts: { voice?: boolean } = {}): Promise<void> {
    this.wireChannel(this.pc.createDataChannel("control", { ordered: true }));
    this.wireChannel(this.pc.createDataChannel("telemetry", { ordered: false, maxRetransmits: 0 }));
    if (opts.voice) await this.addMicTransceiver();
    this.holdTrickle = true;
    try {
      await this.pc.setLocalDescription(await this.pc.createOffer());
      const sdp = await this.localSdpAfterGathering();
      const res = await this.ctx.client.offer(this.ctx.room, this.peer, sdp, { waitS: 10 });
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

  /** Answer an `offer` event for a new session. */
  async accept(ev: Extract<RoomEvent, { type: "offer" }>): Promise<void> {
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
          if (this.pc.signalingState === "have-local-offer") await this.applyAnswer(ev.sdp);
          break;
        case "candidates":
          await this.addRemoteCandidates(ev.frag);
          break;
        case "offer":
          // A re-offer from the other side (ICE restart or adding voice).
          await this.answerOffer(ev.sdp, ev.etag);
          break;
        case "restart":
          await this.answerRestartFrag(ev.frag, ev.etag);
          break;
        case "session-closed":
          this.log(`session closed by ${ev.by} (${ev.reason})`);
          this.shutdown();
          break;
        default:
          break;
      }
    } catch (err) {
      this.log(`${ev.type} failed: ${errorText(err)}`);
    }
  }

  /** ICE restart by re-POST of a full offer (also how voice is added to a running link). */
  async restartIce(reason: string): Promise<void> {
    if (this.restarting || !this.session || !this.etag || this.state === "closed") return;
    if (this.pc.signalingState !== "stable") return;
    this.restarting = true;
    this.holdTrickle = true;
    this.restarts++;
    this.setState("reconnecting");
    this.log(`ICE restart (${reason})`);
    try {
      await this.pc.setLocalDescription(await this.pc.createOffer({ iceRestart: true }));
      const sdp = await this.localSdpAfterGathering();
      const res = await this.ctx.client.restartOffer(this.ctx.room, this.session, sdp, {
        ifMatch: this.etag,
      });
      this.etag = res.etag;
      if (res.answer) await this.applyAnswer(res.answer);
      this.holdTrickle = false;
      await this.flushTrickle();
    } catch (err) {
      const status = errorStatus(err);
      this.log(`restart: ${errorText(err)}`);
      if ((this.pc.signalingState as RTCSignalingState) === "have-local-offer") {
        // Glare (409) or refused: drop our offer; the other side's offer wins.
        await this.pc.setLocalDescription({ type: "rollback" }).catch(() => undefined);
      }
      if (status === 404) this.shutdown();
    } finally {
      this.holdTrickle = false;
      this.restarting = false;
    }
  }

  private async applyAnswer(sdp: string): Promise<void> {
    await this.pc.setRemoteDescription({ type: "answer", sdp });
    await this.drainRemote();
  }

  private async answerOffer(sdp: string, etag: string): Promise<void> {
    this.holdTrickle = true;
    try {
      if (this.pc.signalingState === "have-local-offer") {
        // Glare: the edge serialized the other side's offer first; ours is void.
        await this.pc.setLocalDescription({ type: "rollback" });
      }
      await this.pc.setRemoteDescription({ type: "offer", sdp });
      if (hasAudio(sdp)) this.prepareAudioAnswer();
      await this.pc.setLocalDescription(await this.pc.createAnswer());
      const answer = await this.localSdpAfterGathering();
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
    const frag = parseSdpFrag(fragText);
    const ufrag = fragUfrag(frag);
    const pwd = fragPwd(frag);
    const remote = this.pc.remoteDescription;
    if (!ufrag || !pwd || !remote) throw new Error("restart without ufrag/pwd or before any offer");
    this.restarts++;
    this.setState("reconnecting");
    this.holdTrickle = true;
    try {
      await this.applyRestartFrag(frag, ufrag, pwd, remote, etag);
    } finally {
      this.holdTrickle = false;
    }
    await this.flushTrickle();
  }

  private async applyRestartFrag(
    frag: ReturnType<typeof parseSdpFrag>,
    ufrag: string,
    pwd: string,
    remote: RTCSessionDescription,
    etag: string,
  ): Promise<void> {
    const munged = withIceCredentials(remote.sdp, { ufrag, pwd });
    if (remote.type === "offer") {
      await this.pc.setRemoteDescription({ type: "offer", sdp: munged });
      await this.pc.setLocalDescription(await this.pc.createAnswer());
    } else {
      await this.pc.setLocalDescription(await this.pc.createOffer({ iceRestart: true }));
      await this.pc.setRemoteDescription({ type: "answer", sdp: munged });
    }
    for (const c of fragCandidates(frag)) await this.addCandidate(c);
    const local = await this.localSdpAfterGathering();
    const creds = iceCredentials(local);
    if (!creds) throw new Error("local description has no ICE credentials");
    const reply = buildCandidateFrag({
      ufrag: creds.ufrag,
      pwd: creds.pwd,
      candidates: sdpCandidates(local).map((c) => ({ candidate: c.candidate, sdpMid: c.mid })),
      end: this.pc.iceGatheringState === "complete",
    });
    await this.ctx.client.answer(this.ctx.room, this.sessionId(), serializeSdpFrag(reply), {
      contentType: "sdpfrag",
      ifMatch: etag,
    });
    this.etag = etag;
  }

  // -------------------------------------------------------------------------------------------
  // Candidates

  /** Wait for gathering (host candidates on a LAN take milliseconds), then snapshot the SDP. */
  private async localSdpAfterGathering(): Promise<string> {
    const timeout = this.ctx.gatherTimeoutMs ?? 1500;
    if (this.pc.iceGatheringState !== "complete") {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(t);
          this.pc.removeEventListener("icegatheringstatechange", check);
          resolve();
        };
        const check = () => {
          if (this.pc.iceGatheringState === "complete") done();
        };
        const t = setTimeout(done, timeout);
        this.pc.addEventListener("icegatheringstatechange", check);
      });
    }
    const sdp = this.pc.localDescription?.sdp ?? "";
    this.sentCandidates = new Set(sdpCandidates(sdp).map((c) => c.candidate));
    this.gathered = this.gathered.filter((c) => !this.sentCandidates.has(c.candidate ?? ""));
    return sdp;
  }

  /** Trickle candidates gathered after the SDP went out (PATCH, If-Match: current ETag). */
  private async flushTrickle(): Promise<void> {
    if (this.holdTrickle || !this.session || !this.etag || !this.pc.remoteDescription) return;
    const fresh = this.gathered.filter((c) => !this.sentCandidates.has(c.candidate ?? ""));
    if (fresh.length === 0) return;
    const creds = iceCredentials(this.pc.localDescription?.sdp ?? "");
    if (!creds) return;
    for (const c of fresh) this.sentCandidates.add(c.candidate ?? "");
    this.gathered = [];
    const frag = buildCandidateFrag({
      ufrag: creds.ufrag,
      pwd: creds.pwd,
      candidates: fresh.map((c) => ({ candidate: c.candidate ?? "", sdpMid: c.sdpMid ?? null })),
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
    if (!this.pc.remoteDescription) {
      this.remoteQueue.push(c);
      return;
    }
    const init: RTCIceCandidateInit = { ...c };
    if (init.sdpMid === undefined && init.sdpMLineIndex === undefined) init.sdpMLineIndex = 0;
    await this.pc.addIceCandidate(init).catch((err: unknown) => {
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
      this.log(`ignoring channel ${dc.label}`);
      return;
    }
    const codec = name === "control" ? this.ctx.controlCodec : rawCodec;
    const pipe = codec.attach(dc, (text) => this.onText(name, text));
    this.pipes.set(name, pipe);
    this.channels.set(name, dc);
    dc.addEventListener("open", () => this.onIceState());
    dc.addEventListener("close", () => this.onIceState());
    // An announced channel may already be open when `datachannel` fires.
    if (dc.readyState === "open") queueMicrotask(() => this.onIceState());
  }

  private onText(channel: ChannelName, text: string): void {
    const msg = parseMessage(text);
    if (msg.type === "ping") {
      if (msg.from === this.ctx.self)
        this.onPong(msg.seq); // an echoing rover sends it back
      else this.sendRaw(channel, { type: "pong", from: this.ctx.self, seq: msg.seq, t: msg.t });
      return;
    }
    if (msg.type === "pong") {
      this.onPong(msg.seq);
      return;
    }
    if (msg.type === "voice" && msg.from !== this.ctx.self) {
      this.log(`${this.peer} ${msg.state === "on" ? "is talking" : "hung up"}`);
      // A call is over for both sides when either hangs up.
      if (msg.state === "off" && this.voice !== "off") void this.endVoice(false);
    }
    this.cb.message(this, channel, msg);
  }

  private onPong(seq: number): void {
    const sentAt = this.pings.get(seq);
    if (sentAt === undefined) return;
    this.pings.delete(seq);
    this.pongsSeen++;
    this.lostInRow = 0;
    this.lastPingRtt = Math.round((performance.now() - sentAt) * 10) / 10;
  }

  private sendRaw(channel: ChannelName, msg: AppMessage): void {
    this.pipes.get(channel)?.send(JSON.stringify(msg));
  }

  /** True when the channel is open. */
  isOpen(channel: ChannelName): boolean {
    const dc = this.channel(channel);
    return dc?.readyState === "open";
  }

  private channel(name: ChannelName): RTCDataChannel | undefined {
    return this.channels.get(name);
  }

  chat(text: string): void {
    this.sendRaw("control", { type: "chat", from: this.ctx.self, text, at: Date.now() });
  }

  command(name: string, args?: unknown): void {
    const msg: AppMessage = { type: "cmd", from: this.ctx.self, name, at: Date.now() };
    if (args !== undefined) msg.args = args;
    this.sendRaw("control", msg);
  }

  // -------------------------------------------------------------------------------------------
  // Voice

  private audioTransceiver(): RTCRtpTransceiver | undefined {
    return this.pc
      .getTransceivers()
      .find((t) => t.receiver.track.kind === "audio" && t.currentDirection !== "stopped");
  }

  private async addMicTransceiver(): Promise<void> {
    this.mic = await this.ctx.getMic();
    this.pc.addTransceiver(this.mic, { direction: "sendrecv" });
    this.voice = "on";
  }

  /** Answer audio as sendrecv without a track: nothing is sent until the user accepts. */
  private prepareAudioAnswer(): void {
    const t = this.audioTransceiver();
    if (!t) return;
    t.direction = "sendrecv";
    if (this.voice === "off") {
      this.voice = "ringing";
      this.log(`${this.peer} is calling`);
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
        this.pc.addTransceiver(this.mic, { direction: "sendrecv" });
      }
      this.voice = "on";
      await this.restartIce("voice");
    }
    this.voice = "on";
    this.sendRaw("control", { type: "voice", from: this.ctx.self, state: "on" });
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
    if (tellPeer) this.sendRaw("control", { type: "voice", from: this.ctx.self, state: "off" });
    this.cb.audio(this, null);
    this.cb.state(this);
  }

  // -------------------------------------------------------------------------------------------
  // Health

  private onIceState(fromTick = false): void {
    if (this.state === "closed") return;
    const ice = this.pc.iceConnectionState;
    const controlOpen = this.channels.get("control")?.readyState === "open";
    if ((ice === "connected" || ice === "completed") && controlOpen) {
      this.disconnectedSince = 0;
      this.setState("connected");
    } else if (ice === "failed") {
      // Restart at once on the event; tick() retries every DISCONNECTED_RESTART_MS after that.
      if (!this.disconnectedSince) this.disconnectedSince = performance.now();
      this.setState("failed");
      if (!fromTick) void this.restartIce("ICE failed");
    } else if (ice === "disconnected") {
      if (!this.disconnectedSince) this.disconnectedSince = performance.now();
      this.setState("reconnecting");
    }
  }

  private async tick(): Promise<void> {
    if (this.state === "closed") return;
    const now = performance.now();
    for (const [seq, at] of this.pings) {
      if (now - at > PING_LOST_AFTER_MS) {
        this.pings.delete(seq);
        if (this.pongsSeen > 0) this.lostInRow++;
      }
    }
    if (this.isOpen("telemetry")) {
      const seq = ++this.pingSeq;
      this.pings.set(seq, now);
      this.sendRaw("telemetry", { type: "ping", from: this.ctx.self, seq, t: Date.now() });
    }
    // After an ICE restart the connection state may never leave "connected", so re-evaluate.
    this.onIceState(true);
    const report = await this.pc.getStats();
    const s = sampleStats(report, Date.now());
    const loss = lossBetween(this.lastSample, s);
    this.lastSample = s;
    this.cb.sample(this, s, loss, this.lastPingRtt);
    // Degraded: disconnected for a while, or pings stopped coming back. The offerer restarts
    // first; the answerer waits twice as long so both rarely restart at once (glare).
    const patience = this.role === "offerer" ? 1 : 2;
    if (
      this.disconnectedSince &&
      now - this.disconnectedSince > DISCONNECTED_RESTART_MS * patience
    ) {
      this.disconnectedSince = now;
      void this.restartIce("link disconnected");
    } else if (this.lostInRow >= DEGRADED_PINGS * patience) {
      this.lostInRow = 0;
      void this.restartIce("pings lost");
    }
  }

  // -------------------------------------------------------------------------------------------

  /** Hang up the session (DELETE) and close the connection. */
  async close(): Promise<void> {
    const sid = this.session;
    this.shutdown();
    if (sid) await this.ctx.client.closeSession(this.ctx.room, sid).catch(() => undefined);
  }

  /** Close locally (the session is already gone). */
  shutdown(): void {
    if (this.state === "closed") return;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const p of this.pipes.values()) p.close();
    this.mic?.stop();
    this.pc.close();
    this.setState("closed");
  }

  private setState(s: LinkState): void {
    if (this.state === s || this.state === "closed") return;
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
