/** The message socket's framing (rover/socket-wire.ts), without sockets. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeClientFrame,
  encodeAgentFrame,
  LineSplitter,
  MAX_CONTROL_BYTES,
  MAX_LINE_BYTES,
  MAX_TELEMETRY_BYTES,
  payloadFields,
  SocketFrameError,
  sizeAgainstLimit,
} from "../../rover/socket-wire.ts";

function codeOf(line: string): string {
  try {
    decodeClientFrame(line);
  } catch (e) {
    expect(e).toBeInstanceOf(SocketFrameError);
    return (e as SocketFrameError).code;
  }
  return "decoded";
}

describe("client frames", () => {
  it("hello with a version, and an optional name", () => {
    expect(decodeClientFrame('{"t":"hello","v":1}')).toEqual({ t: "hello", v: 1 });
    expect(decodeClientFrame('{"t":"hello","v":2,"name":"nav"}')).toEqual({
      t: "hello",
      v: 2,
      name: "nav",
    });
    expect(codeOf('{"t":"hello"}')).toBe("bad-frame");
    expect(codeOf('{"t":"hello","v":"1"}')).toBe("bad-frame");
  });

  it("send: text stays a string, data is base64 bytes; id and ttlMs pass through", () => {
    expect(
      decodeClientFrame(
        '{"t":"send","peer":"base-1","channel":"control","text":"héllo","id":7,"ttlMs":5000}',
      ),
    ).toEqual({
      t: "send",
      peer: "base-1",
      channel: "control",
      payload: "héllo",
      id: 7,
      ttlMs: 5000,
    });
    const f = decodeClientFrame('{"t":"send","peer":"b","channel":"telemetry","data":"AP8Kew=="}');
    expect(f).toMatchObject({ t: "send", channel: "telemetry" });
    expect(f.t === "send" && f.payload).toEqual(new Uint8Array([0, 255, 10, 123]));
  });

  it("position: x and y finite, a map name optional; the id passes through", () => {
    expect(decodeClientFrame('{"t":"position","x":12.5,"y":-40,"map":"yard","id":"p1"}')).toEqual({
      t: "position",
      position: { x: 12.5, y: -40, map: "yard" },
      id: "p1",
    });
    expect(decodeClientFrame('{"t":"position","x":0,"y":0}')).toEqual({
      t: "position",
      position: { x: 0, y: 0 },
    });
    expect(codeOf('{"t":"position","x":1}')).toBe("bad-frame");
    expect(codeOf('{"t":"position","x":"1","y":2}')).toBe("bad-frame");
    expect(codeOf('{"t":"position","x":1e999,"y":2}')).toBe("bad-frame");
    expect(codeOf(`{"t":"position","x":1,"y":2,"map":"${"m".repeat(65)}"}`)).toBe("bad-frame");
  });

  it("refuses what it cannot send, with the caller's id when there is one", () => {
    const bad = [
      "not json",
      "[1,2]",
      '{"t":"nope"}',
      '{"t":"send","peer":"b","channel":"control"}',
      '{"t":"send","peer":"b","channel":"control","text":"x","data":"eA=="}',
      '{"t":"send","peer":"b","channel":"video","text":"x"}',
      '{"t":"send","peer":"bad peer","channel":"control","text":"x"}',
      '{"t":"send","peer":"b","channel":"control","data":"not base64!"}',
      '{"t":"send","peer":"b","channel":"control","data":"eA"}',
      '{"t":"send","peer":"b","channel":"control","text":"x","ttlMs":-1}',
      '{"t":"send","peer":"b","channel":"control","text":"x","id":{"a":1}}',
    ];
    for (const line of bad) expect(codeOf(line), line).toBe("bad-frame");
    try {
      decodeClientFrame('{"t":"send","peer":"b","channel":"video","text":"x","id":"m1"}');
    } catch (e) {
      expect((e as SocketFrameError).id).toBe("m1");
    }
  });
});

describe("agent frames", () => {
  it("one line each; a message's payload as text or base64 data", () => {
    const text = encodeAgentFrame({ t: "message", peer: "a", channel: "control", payload: "hi\n" });
    expect(text.endsWith("\n")).toBe(true);
    expect(text.slice(0, -1)).not.toContain("\n");
    expect(JSON.parse(text)).toEqual({ t: "message", peer: "a", channel: "control", text: "hi\n" });
    const bin = encodeAgentFrame({
      t: "message",
      peer: "a",
      channel: "telemetry",
      payload: new Uint8Array([1, 2, 3]),
    });
    expect(JSON.parse(bin)).toEqual({
      t: "message",
      peer: "a",
      channel: "telemetry",
      data: "AQID",
    });
  });

  it("any payload round-trips: agent frame out, client frame in, same bytes or same string", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary" }), fc.uint8Array()), (p) => {
        const out = JSON.parse(
          encodeAgentFrame({ t: "message", peer: "b", channel: "control", payload: p }),
        ) as Record<string, unknown>;
        // A client sending back what it got: the same fields, t "send".
        const back = decodeClientFrame(
          JSON.stringify({ t: "send", peer: "b", channel: "control", ...payloadFields(p) }),
        );
        expect(back.t === "send" && back.payload).toEqual(p);
        expect("text" in out ? out.text : Buffer.from(out.data as string, "base64")).toEqual(
          typeof p === "string" ? p : Buffer.from(p),
        );
      }),
      { numRuns: 200 },
    );
  });
});

describe("sizeAgainstLimit", () => {
  it("control: up to 1 MiB (the reliable layer fragments it); telemetry: one data-channel message", () => {
    expect(sizeAgainstLimit("control", new Uint8Array(48 * 1024))).toEqual({
      size: 49_152,
      max: MAX_CONTROL_BYTES,
    });
    expect(sizeAgainstLimit("telemetry", "é")).toEqual({ size: 2, max: MAX_TELEMETRY_BYTES });
    expect(MAX_CONTROL_BYTES).toBe(1024 * 1024);
    expect(MAX_TELEMETRY_BYTES).toBeLessThan(64 * 1024);
    // A line holds the largest control message in base64, with its frame around it.
    const line = JSON.stringify({
      t: "send",
      peer: "x".repeat(64),
      channel: "control",
      data: Buffer.alloc(MAX_CONTROL_BYTES).toString("base64"),
      id: "y".repeat(100),
    });
    expect(Buffer.byteLength(line)).toBeLessThanOrEqual(MAX_LINE_BYTES);
  });
});

describe("LineSplitter", () => {
  it("splits on newlines across chunks, keeps multi-byte characters whole, drops CR and blank lines", () => {
    const s = new LineSplitter(100);
    const bytes = Buffer.from('{"a":"é"}\r\n\n{"b":1}\n{"c"');
    const lines: string[] = [];
    for (let i = 0; i < bytes.length; i++) lines.push(...s.push(bytes.subarray(i, i + 1)));
    expect(lines).toEqual(['{"a":"é"}', '{"b":1}']);
    expect(s.push(Buffer.from(":2}\n"))).toEqual(['{"c":2}']);
  });

  it("a line over the bound: the lines before it come out, then it stops", () => {
    const s = new LineSplitter(10);
    expect(s.push(Buffer.from("short\n0123456789A"))).toEqual(["short"]);
    expect(s.overflowed).toBe(true);
    expect(s.push(Buffer.from("\nmore\n"))).toEqual([]);
    // Exactly the bound is fine.
    expect(new LineSplitter(10).push(Buffer.from("0123456789\n"))).toEqual(["0123456789"]);
  });
});
