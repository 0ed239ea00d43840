/**
 * A wall-clock timestamp drawn into each video frame, to measure glass-to-glass latency: ffmpeg
 * stamps the time it took the frame (geq, as black and white 16×16 blocks along the top of the
 * picture), the browser reads the blocks back from the frame it shows. Both ends run on one
 * machine, so one clock: latency = time shown − time stamped.
 *
 * The stamp is the epoch time in ms, mod 2^32 (32 blocks), then 8 check blocks: the stamp mod
 * 251. A frame whose blocks are not clearly black or white, or whose check does not match, is
 * rejected rather than read as a wrong time. Blocks are 16×16 and start at x = 0, y = 0: each is
 * one VP8 macroblock of one colour, which the encoder keeps crisp at any bitrate worth using.
 */

/** Block size (px). */
export const STAMP_BLOCK = 16;
const STAMP_BITS = 32;
const CHECK_BITS = 8;
const CHECK_MOD = 251;
const TOTAL_BITS = STAMP_BITS + CHECK_BITS;
const TWO32 = 2 ** 32;
/** Luma levels read as a clear 0 / 1 (the blocks are drawn at 16 and 235, video range). */
const DARK_BELOW = 80;
const LIGHT_ABOVE = 176;

export interface StampLayout {
  width: number;
  height: number;
  /** Blocks per row. */
  cols: number;
  /** The strip's height (px): rows × STAMP_BLOCK. */
  stripHeight: number;
}

export function stampLayout(width: number, height: number): StampLayout {
  const cols = Math.floor(width / STAMP_BLOCK);
  if (cols < 1) throw new Error(`a ${width} px wide picture has no room for the stamp`);
  const rows = Math.ceil(TOTAL_BITS / cols);
  const stripHeight = rows * STAMP_BLOCK;
  if (stripHeight > height) throw new Error(`a ${width}×${height} picture is too small`);
  return { width, height, cols, stripHeight };
}

/** Where to read each block (its centre), bit 0 first. */
export function blockCentres(l: StampLayout): { x: number; y: number }[] {
  const half = STAMP_BLOCK / 2;
  return Array.from({ length: TOTAL_BITS }, (_, k) => ({
    x: (k % l.cols) * STAMP_BLOCK + half,
    y: Math.floor(k / l.cols) * STAMP_BLOCK + half,
  }));
}

/**
 * ffmpeg's geq luma expression for the strip: block k = floor(X/16) + cols × floor(Y/16) is
 * white when bit k of the stamp (k < 32) or of its check (k - 32) is 1. T is the frame's time in
 * seconds (the caller's filter graph sets it to the wall clock).
 */
export function stampGeq(l: StampLayout): string {
  const k = `(floor(X/${STAMP_BLOCK})+${l.cols}*floor(Y/${STAMP_BLOCK}))`;
  const s = `mod(floor(T*1000+0.5),${TWO32})`;
  const bit = `if(lt(${k},${STAMP_BITS}),mod(floor(${s}/pow(2,${k})),2),if(lt(${k},${TOTAL_BITS}),mod(floor(mod(${s},${CHECK_MOD})/pow(2,${k}-${STAMP_BITS})),2),0))`;
  return `16+219*${bit}`;
}

/**
 * The filter graph (for -filter_complex, input [0:v], output [v]) that stamps each frame with the
 * wall-clock time ffmpeg took it (`at`: a fixed epoch ms instead, for a known frame). The frames
 * leave in a 1/1000 time base (encode with -enc_time_base 1/1000), timed from the first: their
 * RTP timestamps follow the capture clock, as a camera's do. (Regular 1/fps timestamps on frames
 * that came late would tell the browser's jitter buffer the stream runs fast: its delay then
 * grew by ~10 ms a frame to 1.7 s and reset, on a loaded machine.)
 */
export function stampFilter(l: StampLayout, o: { at?: number }): string {
  // RTCTIME is µs; in a 1/1000 time base the pts is the epoch ms, so geq's T is epoch seconds.
  const pts = o.at === undefined ? "RTCTIME/1000" : String(o.at);
  return [
    `[0:v]format=yuv420p,settb=1/1000,setpts=${pts},split=2[bg][st]`,
    `[st]crop=${l.width}:${l.stripHeight}:0:0,geq=lum='${stampGeq(l)}':cb=128:cr=128[stamp]`,
    "[bg][stamp]overlay=0:0,setpts=PTS-STARTPTS,format=yuv420p[v]",
  ].join(";");
}

/** The stamp as drawn: epoch ms mod 2^32. */
export function stampOf(epochMs: number): number {
  return Math.round(epochMs) % TWO32;
}

/**
 * The stamp from the blocks' luma (0-255, bit 0 first), or null when a block is neither clearly
 * dark nor clearly light or the check does not match.
 */
export function decodeStamp(luma: readonly number[]): number | null {
  if (luma.length < TOTAL_BITS) return null;
  const bits: number[] = [];
  for (let k = 0; k < TOTAL_BITS; k++) {
    const v = luma[k] as number;
    if (v < DARK_BELOW) bits.push(0);
    else if (v > LIGHT_ABOVE) bits.push(1);
    else return null;
  }
  let stamp = 0;
  for (let k = 0; k < STAMP_BITS; k++) stamp += (bits[k] as number) * 2 ** k;
  let check = 0;
  for (let k = 0; k < CHECK_BITS; k++) check += (bits[STAMP_BITS + k] as number) * 2 ** k;
  return check === stamp % CHECK_MOD ? stamp : null;
}

/** The blocks' luma for a stamp (what a perfect picture shows): for tests. */
export function encodeStamp(stamp: number): number[] {
  const check = stamp % CHECK_MOD;
  return Array.from({ length: TOTAL_BITS }, (_, k) => {
    const bit =
      k < STAMP_BITS ? Math.floor(stamp / 2 ** k) % 2 : Math.floor(check / 2 ** (k - 32)) % 2;
    return bit ? 235 : 16;
  });
}

/**
 * Milliseconds from the stamp to `epochMs` (one clock), across the 2^32 wrap: signed, so that a
 * time read a little before the stamp (clock granularity) shows as such, not as 49 days.
 */
export function latencyMs(stamp: number, epochMs: number): number {
  const d = (((stampOf(epochMs) - stamp) % TWO32) + TWO32) % TWO32;
  return d >= TWO32 / 2 ? d - TWO32 : d;
}
