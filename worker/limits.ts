/** Body size limits from the contract: SDP/sdpfrag 64 KiB, JSON 16 KiB; over -> 413. */
import { bodyLimit } from "hono/body-limit";
import { LIMITS } from "../shared/protocol.ts";
import { problem } from "./problem.ts";

const over = (kind: string, max: number) => () => {
  throw problem(413, "Payload too large", `${kind} bodies are limited to ${max / 1024} KiB`);
};

export const jsonLimit = bodyLimit({
  maxSize: LIMITS.jsonBytes,
  onError: over("JSON", LIMITS.jsonBytes),
});
export const sdpLimit = bodyLimit({
  maxSize: LIMITS.sdpBytes,
  onError: over("SDP and sdpfrag", LIMITS.sdpBytes),
});
