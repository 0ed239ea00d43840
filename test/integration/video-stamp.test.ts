// The glass-to-glass stamp (test/browser/video-stamp.ts): its reader on its own, and on frames
// ffmpeg stamped with a known time and passed through the live source's VP8 encoder.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { stampedFrame } from "../browser/video-feed.ts";
import {
  blockCentres,
  decodeStamp,
  encodeStamp,
  latencyMs,
  STAMP_BLOCK,
  stampLayout,
  stampOf,
} from "../browser/video-stamp.ts";

describe("video stamp", () => {
  it("reads back what it draws, across the whole 32-bit range", () => {
    for (const s of [0, 1, 250, 251, 0x7fffffff, 0x80000000, 2 ** 32 - 1, stampOf(1765432109876)])
      expect(decodeStamp(encodeStamp(s))).toBe(s);
  });

  it("rejects blocks that are not clearly black or white, a wrong check, or too few blocks", () => {
    const good = encodeStamp(123456789);
    const grey = [...good];
    grey[5] = 128;
    expect(decodeStamp(grey)).toBeNull();
    // One stamp block flipped: the check (stamp mod 251) no longer matches.
    const flipped = [...good];
    flipped[3] = flipped[3] === 16 ? 235 : 16;
    expect(decodeStamp(flipped)).toBeNull();
    expect(decodeStamp(good.slice(0, 39))).toBeNull();
    // Blurred but clear levels still read.
    expect(decodeStamp(good.map((v) => (v > 128 ? 200 : 50)))).toBe(123456789);
  });

  it("measures latency across the 2^32 wrap", () => {
    const t = 2 ** 32 * 410 + 5; // 5 ms past a wrap
    expect(latencyMs(stampOf(t - 30), t)).toBe(30);
    expect(latencyMs(stampOf(1765432109876), 1765432109876 + 120)).toBe(120);
    // A time read just before the stamp (clock granularity) is a small negative, not 49 days.
    expect(latencyMs(stampOf(t + 1), t)).toBe(-1);
  });

  it("lays the blocks out in one row at 640 px and two at 320 px", () => {
    expect(stampLayout(640, 480)).toMatchObject({ cols: 40, stripHeight: STAMP_BLOCK });
    expect(stampLayout(320, 240)).toMatchObject({ cols: 20, stripHeight: 2 * STAMP_BLOCK });
    const c = blockCentres(stampLayout(320, 240));
    expect(c[0]).toEqual({ x: 8, y: 8 });
    expect(c[39]).toEqual({ x: 19 * 16 + 8, y: 24 });
    expect(() => stampLayout(8, 8)).toThrow(/no room/);
  });

  for (const size of ["640x480", "320x240"]) {
    it(`ffmpeg draws a known time that reads back after VP8 (${size})`, async () => {
      const dir = mkdtempSync(join(tmpdir(), "rl-stamp-"));
      const at = 1765432109876;
      const f = await stampedFrame({
        at,
        size,
        webm: join(dir, "known.webm"),
        png: join(dir, "known.png"),
      });
      expect(f.luma.length).toBe(f.width * f.height);
      // The same reading as the bench's page: the mean of a 4×4 patch at each block's centre.
      const luma = blockCentres(stampLayout(f.width, f.height)).map(({ x, y }) => {
        let sum = 0;
        for (let dy = -2; dy < 2; dy++)
          for (let dx = -2; dx < 2; dx++) sum += f.luma[(y + dy) * f.width + x + dx] as number;
        return sum / 16;
      });
      expect(decodeStamp(luma)).toBe(stampOf(at));
    }, 30_000);
  }
});
