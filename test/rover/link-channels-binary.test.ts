/**
 * Binary data frames on `control` (shared/link/reliable.ts encodeWire, rover/link-channels.ts):
 * bytes go as they are to a peer whose hello said it reads them (`bf`), as base64 JSON to one that
 * did not (the console, an older agent); either way they arrive byte-identical; a broken binary
 * frame is a protocol violation, not a crash. Two real werift PeerConnections on loopback UDP.
 */
import { randomBytes } from "node:crypto";
import { afterEach, expect, it } from "vitest";
import type { RTCDataChannel } from "werift";
import type { LinkChannels } from "../../rover/link-channels.ts";
import { encodeFrame, type Payload, ReliableReceiver } from "../../shared/link/reliable.ts";
import { channels, cleanup, linked, until } from "./link-channels-pair.ts";

afterEach(cleanup);

const isBinaryFrame = (d: unknown) =>
  d instanceof Uint8Array && d[0] === 0x00 && d[1] === 0x72 && d[2] === 0x6c && d[3] === 0x01;

/** Everything a's `control` hands to werift, and how many bytes that was. */
function tap(dc: RTCDataChannel) {
  const seen = { binary: 0, text: 0, bytes: 0 };
  const send = dc.send.bind(dc);
  dc.send = (d) => {
    if (isBinaryFrame(d)) seen.binary++;
    else seen.text++;
    seen.bytes += typeof d === "string" ? d.length : d.byteLength;
    return send(d);
  };
  return seen;
}

/** Sends `messages()` from a, waits for all of them at b (`got`): byte-identical, in order. */
async function sendAll(ca: LinkChannels, got: Payload[]) {
  const seen = tap(ca.get("control") as RTCDataChannel);
  const sent = messages();
  for (const m of sent) ca.send("control", m);
  expect(await until(() => got.length === sent.length, 10_000)).toBe(true);
  const comparable = (d: Payload) => (typeof d === "string" ? d : Buffer.from(d));
  expect(got.map(comparable)).toEqual(sent.map(comparable));
  return seen;
}

const messages = (): Payload[] => [
  randomBytes(100 * 1024), // past the 64 KiB frame: three fragments
  randomBytes(1000),
  "text stays text",
  new Uint8Array(0),
];

it("sends bytes as binary frames to a peer that reads them, and they arrive byte-identical", async () => {
  const got: Payload[] = [];
  const [ca, cb] = await linked(
    (a) => channels(a, {}),
    (b) => channels(b, { message: (ch, d) => ch === "control" && got.push(d) }),
  );
  ca.hello();
  cb.hello();
  expect(await until(() => ca.controlResumed() && cb.controlResumed(), 10_000)).toBe(true);
  const seen = await sendAll(ca, got);
  expect(seen.binary).toBe(5); // 3 fragments, the 1000 bytes, the empty message
  expect(seen.text).toBe(1);
  // Payload plus headers: base64 would be a third more (137 KB for these 101 KiB).
  expect(seen.bytes).toBeLessThan(101 * 1024 + 1024);
});

it("sends base64 JSON to a peer whose hello did not say it reads binary frames", async () => {
  const got: Payload[] = [];
  const receiver = new ReliableReceiver();
  const [ca, cb] = await linked(
    (a) => channels(a, {}),
    (b) =>
      channels(b, { message: (ch, d) => ch === "control" && got.push(d) }, {}, undefined, receiver),
  );
  ca.hello();
  // b speaks as a console does: a hello without `bf`.
  (cb.get("control") as RTCDataChannel).send(encodeFrame(receiver.hello()));
  expect(await until(() => ca.controlResumed(), 10_000)).toBe(true);
  const seen = await sendAll(ca, got);
  expect(seen.binary).toBe(0);
  expect(seen.text).toBe(6);
});

it("counts a broken binary frame and raw bytes on control as violations, and goes on", async () => {
  const got: Payload[] = [];
  const violations: string[] = [];
  const [ca, cb] = await linked(
    (a) =>
      channels(a, {
        message: (ch, d) => ch === "control" && got.push(d),
        violation: (kind) => violations.push(kind),
      }),
    (b) => channels(b, {}),
  );
  ca.hello();
  cb.hello();
  expect(await until(() => ca.controlResumed() && cb.controlResumed(), 10_000)).toBe(true);
  const control = cb.get("control") as RTCDataChannel;
  // A header length past the end, a header that is not JSON, an ack in a binary frame, raw bytes.
  control.send(Buffer.from([0x00, 0x72, 0x6c, 0x01, 0xff, 0xff, 0x7b]));
  control.send(Buffer.from([0x00, 0x72, 0x6c, 0x01, 0x00, 0x02, 0x7b, 0x7b, 1, 2]));
  control.send(
    Buffer.concat([Buffer.from([0, 0x72, 0x6c, 1, 0, 18]), Buffer.from('{"rl":1,"t":"a","n":0}')]),
  );
  control.send(Buffer.from([1, 2, 3]));
  cb.send("control", randomBytes(10));
  expect(await until(() => got.length === 1, 10_000)).toBe(true);
  expect(violations).toEqual([
    "malformed-frame",
    "malformed-frame",
    "malformed-frame",
    "unexpected-message",
  ]);
});
