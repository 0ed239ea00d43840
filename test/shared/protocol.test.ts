/** shared/protocol.ts: what the agent and the console make of a `peer-left` event. */
import { describe, expect, it } from "vitest";
import { peerGoneReason } from "../../shared/protocol.ts";

describe("peerGoneReason", () => {
  it("folds the extension `cause` into the reason; v1's two reasons pass through", () => {
    expect(peerGoneReason({ reason: "expired", cause: "token-expired" })).toBe("token-expired");
    expect(peerGoneReason({ reason: "expired" })).toBe("expired");
    expect(peerGoneReason({ reason: "left" })).toBe("left");
    // An edge before 2026-12-08 put it in `reason`; an unknown reason is a presence that ended.
    expect(peerGoneReason({ reason: "token-expired" })).toBe("token-expired");
    expect(peerGoneReason({ reason: "evicted" })).toBe("expired");
  });
});
