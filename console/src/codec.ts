/**
 * The codec used on `control`. Raw text until the rover's reliable-stream framing
 * (rover/reliable.ts) is wired in.
 */
import { rawCodec } from "./wire.ts";

export const controlCodec = rawCodec;
