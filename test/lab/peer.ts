// A stock werift peer for lab tests and the handover bench's anchor rows, run inside a namespace
// (`ip netns exec rl-a node test/lab/peer.ts '<json>'`). Stock means werift 0.25.2 as published:
// the `werift-unpatched` npm alias, which patch-package leaves alone.
// Config (argv[2], JSON): {"role": "offer"|"answer", "iceServers": [...], "iceTransportPolicy"?: "all"|"relay"}.
// Speaks JSON lines. Out: {"type":"offer"|"answer","sdp"} (complete SDP, no trickle), {"type":"ice","state"},
// {"type":"pc","state"}, {"type":"open"}, {"type":"pair","local","remote"} (selected candidates),
// {"type":"message","data"}, {"type":"pairs","pairs":[{"local","remote","state"}]} (ICE check list).
// In: {"type":"offer"|"answer","sdp"}, {"type":"send","data"}, {"type":"pairs"}.
// The answerer echoes every data channel message; the offerer opens the channel "lab".
import { createInterface } from "node:readline";
import { type RTCDataChannel, type RTCIceServer, RTCPeerConnection } from "werift-unpatched";

interface PeerConfig {
  role: "offer" | "answer";
  iceServers: RTCIceServer[];
  iceTransportPolicy?: "all" | "relay";
}

function out(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function parseConfig(text: string | undefined): PeerConfig {
  try {
    const config = JSON.parse(text ?? "") as PeerConfig;
    if (config.role !== "offer" && config.role !== "answer") throw new Error("role");
    if (!Array.isArray(config.iceServers)) throw new Error("iceServers");
    return config;
  } catch {
    process.stderr.write(
      'peer: usage: peer.ts \'{"role":"offer"|"answer","iceServers":[...],"iceTransportPolicy":"all"|"relay"}\'\n',
    );
    process.exit(2);
  }
}

const config = parseConfig(process.argv[2]);
// iceServers is always explicit: werift's default names a public STUN server.
const pc = new RTCPeerConnection({
  iceServers: config.iceServers,
  iceTransportPolicy: config.iceTransportPolicy ?? "all",
});
let channel: RTCDataChannel | undefined;

const PAIR_STATES = ["frozen", "waiting", "in-progress", "succeeded", "failed"];

// Note: werift reports iceConnectionState "completed" when gathering ends, before any check; "pc" is the
// state to watch. It also never reports "failed" when every pair fails (it keeps waiting for candidates),
// hence the "pairs" query.
pc.iceConnectionStateChange.subscribe((state) => out({ type: "ice", state }));
pc.connectionStateChange.subscribe((state) => {
  out({ type: "pc", state });
  const pair = pc.iceTransports[0]?.connection.nominated;
  if (state === "connected" && pair) {
    out({ type: "pair", local: pair.localCandidate.type, remote: pair.remoteCandidate.type });
  }
});

function pairs(): { local: string; remote: string; state: string }[] {
  return (pc.iceTransports[0]?.connection.checkList ?? []).map((pair) => ({
    local: `${pair.localCandidate.type} ${pair.localCandidate.host}`,
    remote: `${pair.remoteCandidate.type} ${pair.remoteCandidate.host}`,
    state: PAIR_STATES[pair.state] ?? String(pair.state),
  }));
}

function useChannel(dc: RTCDataChannel): void {
  channel = dc;
  dc.stateChanged.subscribe((state) => {
    if (state === "open") out({ type: "open" });
  });
  dc.onMessage.subscribe((data) => {
    const text = data.toString();
    out({ type: "message", data: text });
    if (config.role === "answer") dc.send(text);
  });
}

async function localSdp(): Promise<string> {
  if (pc.iceGatheringState !== "complete") {
    await pc.iceGatheringStateChange.watch((state) => state === "complete");
  }
  const sdp = pc.localDescription?.sdp;
  if (!sdp) throw new Error("no local description");
  return sdp;
}

if (config.role === "offer") {
  useChannel(pc.createDataChannel("lab"));
  await pc.setLocalDescription(await pc.createOffer());
  out({ type: "offer", sdp: await localSdp() });
} else {
  pc.onDataChannel.subscribe(useChannel);
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const message = JSON.parse(line) as { type: string; sdp?: string; data?: string };
  if (message.type === "offer" && message.sdp) {
    await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    out({ type: "answer", sdp: await localSdp() });
  } else if (message.type === "answer" && message.sdp) {
    await pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
  } else if (message.type === "send" && message.data !== undefined) {
    channel?.send(message.data);
  } else if (message.type === "pairs") {
    out({ type: "pairs", pairs: pairs() });
  }
}
// stdin closed: the test is done with us.
await pc.close();
process.exit(0);
