/**
 * A werift stand-in for the console's camera view, for tests, the bench and the lab (no browser
 * in a namespace): joins a room as kind `browser`, answers every offer the rover agent makes
 * (new sessions and ICE-restart re-offers), answers its health pings, and counts the complete
 * VP8/H.264 frames of the video it receives: a frame is complete when the packets from the one
 * after the previous frame's last (marker) packet to its own marker came without a gap.
 *
 * As a program (`node test/integration/video-watcher.ts <edge> <room> <id> <token>`), it prints
 * JSON lines: {"type":"frame","t":<epoch ms>} per complete frame, {"type":"session"} per offer
 * answered, and every 2 s {"type":"stats",...} (diagnostics(): where packets stop when frames
 * do); it echoes `control` (the agent's --probe measures the RTT).
 */
import { type RTCIceServer, RTCPeerConnection } from "werift";
import { RoverlinkClient } from "../../shared/client.ts";
import { decodeProbe, encodeProbe, isProbe } from "../../shared/link/probe-wire.ts";
import type { RoomEvent } from "../../shared/protocol.ts";
import { fragCandidates, parseSdpFrag } from "../../shared/sdpfrag.ts";

export interface WatcherOptions {
  edge: string;
  room: string;
  id: string;
  token: string | (() => Promise<string>);
  iceServers?: RTCIceServer[];
  onFrame?: (t: number) => void;
  onSession?: (session: string, restart: boolean) => void;
  /** Send every `control` message back (the agent's --probe measures control RTT with it). */
  echoControl?: boolean;
}

export class VideoWatcher {
  readonly frames: number[] = [];
  /** Frames with a gap in their packets (not counted as complete). */
  incomplete = 0;
  /** RTP packets that reached the video track (after SRTP and werift's routing). */
  trackPackets = 0;
  /** Offers answered (new sessions and restarts). */
  sessions = 0;
  #o: WatcherOptions;
  #client: RoverlinkClient;
  #pc: RTCPeerConnection | null = null;
  #session: string | null = null;
  #abort = new AbortController();
  #iceServers: RTCIceServer[] = [];
  #busy: Promise<void> = Promise.resolve();

  constructor(o: WatcherOptions) {
    this.#o = o;
    this.#client = new RoverlinkClient({ baseUrl: o.edge, token: o.token, timeoutMs: 5000 });
  }

  async start(): Promise<void> {
    const j = await this.#client.join(this.#o.room, { kind: "browser", meta: {} });
    this.#iceServers =
      this.#o.iceServers ??
      j.iceServers.flatMap((s) =>
        (Array.isArray(s.urls) ? s.urls : [s.urls]).map((urls) => ({
          urls,
          ...(s.username ? { username: s.username } : {}),
          ...(s.credential ? { credential: s.credential } : {}),
        })),
      );
    let cursor = j.cursor;
    void (async () => {
      while (!this.#abort.signal.aborted) {
        try {
          const r = await this.#client.poll(this.#o.room, this.#o.id, {
            after: cursor,
            wait: 5,
            signal: this.#abort.signal,
          });
          cursor = r.cursor;
          for (const ev of r.events) this.#busy = this.#busy.then(() => this.#onEvent(ev));
        } catch {
          if (!this.#abort.signal.aborted) await new Promise((r) => setTimeout(r, 200));
        }
      }
    })();
  }

  async #onEvent(ev: RoomEvent): Promise<void> {
    try {
      if (ev.type === "offer") await this.#answer(ev.session, ev.sdp, ev.etag);
      else if (ev.type === "candidates" && ev.session === this.#session && this.#pc)
        for (const c of fragCandidates(parseSdpFrag(ev.frag)))
          await this.#pc.addIceCandidate(c).catch(() => undefined);
    } catch (e) {
      process.stderr.write(`watcher: ${ev.type}: ${(e as Error).message}\n`);
    }
  }

  async #answer(session: string, sdp: string, etag: string): Promise<void> {
    const restart = session === this.#session && this.#pc !== null;
    if (!restart) {
      void this.#pc?.close();
      this.#pc = this.#newPc();
      this.#session = session;
    }
    const pc = this.#pc as RTCPeerConnection;
    await pc.setRemoteDescription({ type: "offer", sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    if (pc.iceGatheringState !== "complete")
      await pc.iceGatheringStateChange.watch((s) => s === "complete");
    await this.#client.answer(this.#o.room, session, pc.localDescription?.sdp ?? "", {
      contentType: "sdp",
      ifMatch: etag,
    });
    this.sessions++;
    this.#o.onSession?.(session, restart);
  }

  /**
   * Where the video stands: SRTP/SRTCP packets the PeerConnection's transport took in (before
   * decryption) against RTP packets that reached the track, complete and incomplete frames, the
   * connection's state and the video section's direction. Transport packets without track
   * packets: lost in SRTP or routing; neither: the sender sent nothing here.
   */
  diagnostics(): {
    frames: number;
    incomplete: number;
    trackPackets: number;
    transportMediaPackets: number;
    sessions: number;
    pc: string | null;
    video: string | null;
  } {
    const pc = this.#pc;
    const t = pc?.getTransceivers().find((x) => x.kind === "video");
    return {
      frames: this.frames.length,
      incomplete: this.incomplete,
      trackPackets: this.trackPackets,
      transportMediaPackets: (pc?.dtlsTransports ?? []).reduce((n, d) => n + d.packetsReceived, 0),
      sessions: this.sessions,
      pc: pc?.connectionState ?? null,
      video: t ? `${t.currentDirection ?? t.direction}` : null,
    };
  }

  #newPc(): RTCPeerConnection {
    const pc = new RTCPeerConnection({
      iceServers: this.#iceServers,
      iceUseIpv6: false,
      bundlePolicy: "max-bundle", // see rover/link-video.ts
    });
    pc.onDataChannel.subscribe((dc) => {
      dc.onMessage.subscribe((data) => {
        const text = data.toString();
        if (dc.label === "control" && this.#o.echoControl) dc.send(text);
        // The agent's health pings: answered, or it would restart the link over and over.
        if (dc.label === "telemetry" && isProbe(text)) {
          const p = decodeProbe(text);
          if (p.rlp === "ping") dc.send(encodeProbe({ rlp: "pong", i: p.i }));
        }
      });
    });
    pc.onTrack.subscribe((track) => {
      if (track.kind !== "video") return;
      {
        let expected: number | null = null;
        let gap = false;
        track.onReceiveRtp.subscribe((rtp) => {
          this.trackPackets++;
          const seq = rtp.header.sequenceNumber;
          if (expected !== null && seq !== expected) gap = true;
          expected = (seq + 1) & 0xffff;
          if (!rtp.header.marker) return;
          if (gap) this.incomplete++;
          else {
            const t = Date.now();
            this.frames.push(t);
            this.#o.onFrame?.(t);
          }
          gap = false;
        });
      }
    });
    return pc;
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#pc?.close();
    await this.#client.leave(this.#o.room, this.#o.id).catch(() => undefined);
  }
}

if (import.meta.main) {
  const [edge, room, id, token] = process.argv.slice(2);
  if (!edge || !room || !id || !token) {
    process.stderr.write("usage: video-watcher.ts <edge> <room> <id> <token>\n");
    process.exit(2);
  }
  const out = (m: object) => process.stdout.write(`${JSON.stringify(m)}\n`);
  const w = new VideoWatcher({
    edge,
    room,
    id,
    token,
    onFrame: (t) => out({ type: "frame", t }),
    onSession: (session, restart) => out({ type: "session", session, restart }),
    echoControl: true,
  });
  await w.start();
  out({ type: "joined" });
  setInterval(() => out({ type: "stats", ...w.diagnostics() }), 2000).unref();
  const stop = () => void w.stop().then(() => process.exit(0));
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
