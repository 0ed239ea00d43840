/**
 * shared/link/reliable.ts binary data frames: encodeWire / decodeBinaryFrame, and bytes kept as
 * bytes by the sender (docs/reliability.md, "Binary frames"). Pure.
 */
import { expect, it } from "vitest";
import {
  decodeBinaryFrame,
  decodeFrame,
  encodeFrame,
  encodeWire,
  type Frame,
  FrameError,
  ReliableReceiver,
  ReliableSender,
} from "../../../shared/link/reliable.ts";

const bytes = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 7) & 0xff);

it("round-trips a data frame holding bytes, fragment fields included", () => {
  const f: Frame = { rl: 1, t: "d", st: "s1", s: 41, p: bytes(300), b: 1, m: 1, z: 900 };
  const w = encodeWire(f, true);
  expect(w).toBeInstanceOf(Uint8Array);
  expect((w as Uint8Array).byteLength).toBeLessThan(300 + 64);
  expect(decodeBinaryFrame(w as Uint8Array)).toEqual(f);
});

it("writes JSON when the peer does not read binary frames, for text, and for acks and hellos", () => {
  const d: Frame = { rl: 1, t: "d", st: "s", s: 0, p: bytes(30), b: 1 };
  const json = encodeWire(d, false) as string;
  expect(typeof json).toBe("string");
  expect(decodeFrame(json)).toEqual({ ...d, p: Buffer.from(bytes(30)).toString("base64") });
  expect(typeof encodeWire({ rl: 1, t: "d", st: "s", s: 0, p: "hi" }, true)).toBe("string");
  expect(typeof encodeWire({ rl: 1, t: "a", n: 3 }, true)).toBe("string");
  expect(typeof encodeWire({ rl: 1, t: "h", st: "s", n: 3, bf: 1 }, true)).toBe("string");
});

it("writes a frame kept as base64 (from a durable outbox written before) as a binary frame", () => {
  const b64 = Buffer.from(bytes(50)).toString("base64");
  const w = encodeWire({ rl: 1, t: "d", st: "s", s: 2, p: b64, b: 1 }, true) as Uint8Array;
  const back = decodeBinaryFrame(w) as Frame & { t: "d" };
  expect(Buffer.from(back.p as Uint8Array)).toEqual(Buffer.from(bytes(50)));
});

it("says null for bytes that are not a frame, and throws on a broken one", () => {
  expect(decodeBinaryFrame(new Uint8Array([1, 2, 3, 4, 5, 6, 7]))).toBeNull();
  expect(decodeBinaryFrame(new Uint8Array([0, 0x72, 0x6c]))).toBeNull();
  const head = (json: string, extra: number[] = []) => {
    const h = new TextEncoder().encode(json);
    return new Uint8Array([
      0,
      0x72,
      0x6c,
      1,
      h.byteLength >> 8,
      h.byteLength & 0xff,
      ...h,
      ...extra,
    ]);
  };
  const broken = [
    new Uint8Array([0, 0x72, 0x6c, 1, 0, 40, 0x7b]), // header past the end
    head("{not json"),
    head("[1,2]"),
    head('{"rl":1,"t":"a","n":1}'), // only data travels as bytes
    head('{"rl":1,"t":"d","st":"s","s":0}'), // no b
    head('{"rl":1,"t":"d","st":"s","s":0,"b":1,"p":"x"}'), // payload in the header
    head('{"rl":2,"t":"d","st":"s","s":0,"b":1}'),
    head('{"rl":1,"t":"d","st":"s","s":-1,"b":1}'),
    head('{"rl":1,"t":"d","st":"s","s":0,"b":1,"m":2}'),
    // A header past 512 bytes: the payload, a view into the message, would hold it (a hostile
    // peer's 60 KB headers on empty fragments were kept at no counted cost).
    head(`{"rl":1,"t":"d","st":"s","s":0,"b":1,"x":"${"j".repeat(600)}"}`),
  ];
  for (const u of broken) expect(() => decodeBinaryFrame(u), String(u)).toThrow(FrameError);
});

it("a data frame keeps only the fields we know: a peer's extra ones are not held with it", () => {
  const junk = "j".repeat(60_000);
  expect(decodeFrame(`{"rl":1,"t":"d","st":"s","s":1,"p":"","x":"${junk}","m":1}`)).toEqual({
    rl: 1,
    t: "d",
    st: "s",
    s: 1,
    p: "",
    m: 1,
  });
  expect(() => decodeFrame('{"rl":1,"t":"d","st":"s","s":1,"p":"","b":2}')).toThrow(FrameError);
  expect(() => decodeFrame('{"rl":1,"t":"d","st":"s","s":1,"p":"","e":true}')).toThrow(FrameError);
});

it("checks the hello's bf field", () => {
  expect(decodeFrame('{"rl":1,"t":"h","st":"s","n":0,"bf":1}')).toEqual({
    rl: 1,
    t: "h",
    st: "s",
    n: 0,
    bf: 1,
  });
  expect(() => decodeFrame('{"rl":1,"t":"h","st":"s","n":0,"bf":"yes"}')).toThrow(FrameError);
});

it("keeps bytes as a copy of what was sent: the caller may reuse its buffer", () => {
  const s = new ReliableSender({ stream: "s" });
  const buf = bytes(100);
  const f = s.send(buf);
  buf.fill(0);
  const r = new ReliableReceiver();
  const w = encodeWire(f, true) as Uint8Array;
  const [got] = r.onData(decodeBinaryFrame(w) as Frame & { t: "d" });
  expect(Buffer.from(got as Uint8Array)).toEqual(Buffer.from(bytes(100)));
  // And the same frame as JSON, as a console gets it.
  const [viaJson] = new ReliableReceiver().onData(
    decodeFrame(encodeFrame(f)) as Frame & { t: "d" },
  );
  expect(Buffer.from(viaJson as Uint8Array)).toEqual(Buffer.from(bytes(100)));
});

it("reassembles a large message from binary fragments", () => {
  const s = new ReliableSender({ stream: "s" });
  s.maxFrameBytes = 4096;
  const big = bytes(20_000);
  const frames = s.sendFrames(big);
  expect(frames.length).toBeGreaterThan(4);
  const r = new ReliableReceiver();
  const out = frames.flatMap((f) =>
    r.onData(decodeBinaryFrame(encodeWire(f, true) as Uint8Array) as Frame & { t: "d" }),
  );
  expect(out).toHaveLength(1);
  expect(Buffer.from(out[0] as Uint8Array)).toEqual(Buffer.from(big));
});
