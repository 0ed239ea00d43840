/** The file-transfer wire's pure decisions (shared/file-wire.ts) and progress formatting. */
import { describe, expect, it } from "vitest";
import { formatBar, formatBytes, plainStep } from "../../rover/progress.ts";
import {
  badFileName,
  DEFAULT_RECEIVE_LIMITS,
  decodeFileMessage,
  encodeFileMessage,
  FileWireError,
  parseFileLabel,
  parseFileSize,
  partName,
  refuseOffer,
} from "../../shared/file-wire.ts";

describe("file names", () => {
  it("only a bare, visible name without control characters is accepted", () => {
    for (const ok of ["map.pgm", "bag 2026-12-05.mcap", "ü€.bin", "a..b"])
      expect(badFileName(ok)).toBeNull();
    const bad: [string, RegExp][] = [
      ["", /empty/],
      [".", /not a file/],
      ["..", /not a file/],
      ["../x", /path separator/],
      ["/etc/passwd", /path separator/],
      ["a\\b", /path separator/],
      ["x\u0000y", /control characters/],
      ["x\ny", /control characters/],
      [".bashrc", /starts with a dot/],
      ["é".repeat(128), /longer than 255 bytes/],
    ];
    for (const [name, re] of bad) expect(badFileName(name)).toMatch(re);
  });

  it("temp names are hidden and per peer", () => {
    expect(partName("b", "abc")).toBe(".rlpart-b-abc");
    expect(badFileName(partName("b", "abc"))).not.toBeNull(); // no offer can name one
  });
});

describe("offers", () => {
  const ctx = { limits: DEFAULT_RECEIVE_LIMITS, active: 0, exists: false, freeBytes: 1e12 };
  it("refused before anything is written: name, size, busy, exists, disk", () => {
    expect(refuseOffer({ name: "a", size: 1 }, ctx)).toBeNull();
    expect(refuseOffer({ name: "../a", size: 1 }, ctx)).toMatch(/path separator/);
    expect(refuseOffer({ name: "a", size: 5 * 1024 ** 3 }, ctx)).toMatch(/larger than the limit/);
    expect(refuseOffer({ name: "a", size: 1 }, { ...ctx, active: 4 })).toMatch(
      /in progress already/,
    );
    expect(refuseOffer({ name: "a", size: 1 }, { ...ctx, exists: true })).toMatch(/exists already/);
    expect(refuseOffer({ name: "a", size: 10 }, { ...ctx, freeBytes: 5 })).toMatch(/free space/);
  });

  it("frames decode strictly", () => {
    const sha = "a".repeat(64);
    expect(
      decodeFileMessage(encodeFileMessage({ t: "offer", name: "x", size: 3, sha256: sha })),
    ).toEqual({ t: "offer", name: "x", size: 3, sha256: sha });
    for (const raw of [
      "{",
      "[]",
      `{"t":"offer","name":"x","size":-1,"sha256":"${sha}"}`,
      `{"t":"offer","name":"x","size":1e300,"sha256":"${sha}"}`,
      '{"t":"offer","name":"x","size":1,"sha256":"XYZ"}',
      '{"t":"accept","offset":"0"}',
      '{"t":"nope"}',
    ])
      expect(() => decodeFileMessage(raw)).toThrow(FileWireError);
    const long = decodeFileMessage(JSON.stringify({ t: "refuse", reason: "x".repeat(1000) }));
    expect(long.t === "refuse" && long.reason.length).toBe(200);
  });

  it("labels carry a short lowercase id", () => {
    expect(parseFileLabel("rlfile/abc123")).toBe("abc123");
    expect(parseFileLabel("rlfile/../x")).toBeNull();
    expect(parseFileLabel(`rlfile/${"a".repeat(17)}`)).toBeNull();
    expect(parseFileLabel("control")).toBeNull();
  });

  it("sizes as people write them", () => {
    expect(parseFileSize("500M")).toBe(500 * 1024 ** 2);
    expect(parseFileSize("4G")).toBe(4 * 1024 ** 3);
    expect(parseFileSize("1.5KiB")).toBe(1536);
    expect(parseFileSize("123")).toBe(123);
    for (const bad of ["", "lots", "-1", "0", "5X"]) expect(parseFileSize(bad)).toBeNull();
  });
});

describe("progress", () => {
  it("a bar on a terminal, a plain line per 10 % otherwise", () => {
    expect(formatBytes(5 * 1024 * 1024)).toBe("5.0 MiB");
    expect(formatBar("m", 50, 100, 1000, 10)).toBe("m  50% [#####.....] 50 B / 100 B 0.0 MB/s");
    expect(plainStep(5, 100, -1)).toBe(0);
    expect(plainStep(9, 100, 0)).toBeNull();
    expect(plainStep(25, 100, 0)).toBe(20);
    expect(plainStep(100, 100, 90)).toBe(100);
  });
});
