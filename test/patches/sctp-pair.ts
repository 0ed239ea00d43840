/**
 * Two werift PeerConnections linked on loopback UDP (SDP exchanged in memory), for the SCTP patch
 * tests, and typed access to werift's SCTP internals those tests observe (internal API, see
 * docs/werift-patches.md).
 */
import { type RTCDataChannel, RTCPeerConnection } from "werift";

const config = { iceServers: [], iceUseIpv6: false, iceAdditionalHostAddresses: ["127.0.0.1"] };

/** The parts of werift's SCTP association the tests look at. */
export interface Sctp {
  flush: { event: { stack: unknown[] } };
  outboundQueue: { length: number };
  lastReceivedTsn: number;
  sackMisOrdered: Set<number>;
  sackNeeded: boolean;
  handleData(buf: Buffer): Promise<void>;
  sendChunk(chunk: {
    type: number;
    gaps?: [number, number][];
    cumulativeTsn?: number;
  }): Promise<void>;
  markReceived(tsn: number): boolean;
  sendSack(): Promise<void>;
  send(streamId: number, ppId: number, data: Buffer): Promise<void>;
}

export const sctpOf = (pc: RTCPeerConnection): Sctp =>
  (pc as unknown as { sctpTransport: { sctp: Sctp } }).sctpTransport.sctp;

export interface Linked {
  a: RTCPeerConnection;
  b: RTCPeerConnection;
  /** a's `control`; b's end records what arrives in `received`. */
  dc: RTCDataChannel;
  /** b's end of `control` (it opens before a's does). */
  remote: RTCDataChannel;
  received: string[];
  close(): Promise<void>;
}

/** Two linked PeerConnections; `a` offers (ICE-controlling). Extra configuration per end. */
export async function linkedPair(
  extra: {
    a?: Record<string, unknown>;
    b?: Record<string, unknown>;
    /** b's PeerConnection class: werift-unpatched's for a stock peer. */
    bClass?: typeof RTCPeerConnection;
  } = {},
): Promise<Linked> {
  const a = new RTCPeerConnection({ ...config, ...extra.a });
  const b = new (extra.bClass ?? RTCPeerConnection)({ ...config, ...extra.b });
  // A candidate that reaches an already closed peer at clean-up has nowhere to go.
  a.onIceCandidate.subscribe((c) => void (c && b.addIceCandidate(c).catch(() => {})));
  b.onIceCandidate.subscribe((c) => void (c && a.addIceCandidate(c).catch(() => {})));
  const dc = a.createDataChannel("control");
  const received: string[] = [];
  let remote: RTCDataChannel | undefined;
  b.onDataChannel.subscribe((ch: RTCDataChannel) => {
    remote = ch;
    ch.onMessage.subscribe((m) => received.push(String(m)));
  });
  await a.setLocalDescription(await a.createOffer());
  await b.setRemoteDescription(a.localDescription as NonNullable<typeof a.localDescription>);
  await b.setLocalDescription(await b.createAnswer());
  await a.setRemoteDescription(b.localDescription as NonNullable<typeof b.localDescription>);
  await new Promise<void>((resolve) => {
    if (dc.readyState === "open") resolve();
    dc.stateChanged.subscribe((s) => s === "open" && resolve());
  });
  if (!remote) throw new Error("b's channel did not arrive before a's opened");
  return {
    a,
    b,
    dc,
    remote,
    received,
    close: async () => void (await Promise.all([a.close(), b.close()])),
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Neither end has a stream reset (RFC 6525 RE-CONFIG) outstanding or queued. */
export function resetsSettled(p: Linked): boolean {
  return [p.a, p.b].every((pc) => {
    const s = sctpOf(pc) as Sctp & { reconfigRequest?: object; reconfigQueue: number[] };
    return !s.reconfigRequest && s.reconfigQueue.length === 0;
  });
}

/** Polls until `f` holds or `ms` pass; whether it held. */
export async function until(f: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) return false;
    await sleep(10);
  }
  return true;
}

/** `n` distinct messages of `bytes` each, numbered so that order can be checked. */
export function messages(n: number, bytes: number): string[] {
  const pad = "x".repeat(Math.max(0, bytes - 8));
  return Array.from({ length: n }, (_, i) => `${String(i).padStart(8, "0")}${pad}`);
}

/** A DATA chunk in werift's sent queue (the fields the tests read). */
export interface SentChunk {
  type: number;
  tsn: number;
  bookSize: number;
  acked: boolean;
  retransmit: boolean;
}

/** werift's SCTP association as a sender, with the internals the path-change tests drive. */
export type SctpSender = Sctp & {
  cwnd: number;
  ssthresh: number;
  rto: number;
  mtu: number;
  maxPayloadSize: number;
  localTsn: number;
  remotePort: number;
  associationState: number;
  sentQueue: SentChunk[];
  flightSize: number;
  pathChanged(): void;
  transmit(): Promise<void>;
  timer3Cancel(): void;
  updateRto(seconds: number): void;
  receiveSackChunk(sack: {
    cumulativeTsn: number;
    advertisedRwnd: number;
    gaps: [number, number][];
    duplicates: number[];
  }): Promise<void>;
};

/**
 * A werift SCTP association detached from any network: its packets go nowhere and `sent` lists
 * the TSN of every DATA chunk it sends; the peer's SACKs are written by hand. Built from a linked
 * pair's class (closed with the pair).
 */
export async function detachedSender(
  pairs: Linked[],
): Promise<{ sctp: SctpSender; sent: number[] }> {
  const p = await linkedPair();
  pairs.push(p);
  const Ctor = sctpOf(p.a).constructor as new (t: object) => SctpSender;
  const sctp = new Ctor({ send: async () => {} });
  const sent: number[] = [];
  sctp.remotePort = 5000;
  sctp.sendChunk = async (c) => {
    for (const x of (Array.isArray(c) ? c : [c]) as SentChunk[]) if (x.type === 0) sent.push(x.tsn);
  };
  return { sctp, sent };
}

/** `n` full-size DATA chunks sent and in flight (the window opened wide); the first one's TSN. */
export async function fillFlight(sctp: SctpSender, sent: number[], n: number): Promise<number> {
  sctp.cwnd = 1 << 20;
  const first = sctp.localTsn;
  const data = Buffer.alloc(sctp.maxPayloadSize);
  const queued = Promise.all(Array.from({ length: n }, () => sctp.send(1, 53, data)));
  // A transmit pass sends at most 4 chunks more than are in flight (werift's burst limit).
  while (sent.length < n) await sctp.transmit();
  await queued;
  return first;
}

/** CRC-32c (Castagnoli), bitwise: independent of werift's table-driven one. */
/**
 * An SCTP packet to port 5000 carrying `chunks`, with verification tag `tag` and a correct
 * CRC-32c: what the peer's stack would hand the DTLS transport.
 */
export function sctpPacket(tag: number, ...chunks: Buffer[]): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(5000, 0);
  head.writeUInt16BE(5000, 2);
  head.writeUInt32BE(tag, 4);
  const p = Buffer.concat([head, ...chunks]);
  p.writeUInt32LE(crc32c(p), 8);
  return p;
}

export function crc32c(buf: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of buf) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
