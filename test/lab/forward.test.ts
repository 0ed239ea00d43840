// A TCP port forward in the carrier-NAT lab (docs/lab.md): rover A (wifi + cell) forwards a local
// port to an echo server behind rover B, through TURN; wifi goes down mid-stream. The program on A
// must not notice: the same connection carries on, byte-identical both ways, no reset.
import { describe, expect, it } from "vitest";
import { labGate, labWithEdge } from "./gate.ts";
import { jsonLines, logLines } from "./json-lines.ts";
import { fault, nodeIn, stopChild } from "./lab.ts";
import { sleep } from "./scenario.ts";

const { unavailable, note } = labGate();

const CLI = "rover/cli.ts";
const STREAM = "test/lab/tcp-stream.ts";
let edgeUrl = "";

describe.skipIf(unavailable !== undefined)(`port forwarding in the lab${note}`, () => {
  labWithEdge((url) => {
    edgeUrl = url;
  });

  it("a TCP forward through TURN survives wifi going down without the connection noticing", async () => {
    const room = `lab-fwd-${process.pid}`;
    const echo = jsonLines(nodeIn("b", STREAM, ["echo", "7000"]), "echo");
    await echo.next((l) => l.listening === 7000, 10_000, "echo listening");
    const common = ["--edge", edgeUrl, "--room", room, "--in-memory", "--log-level", "info"];
    const b = nodeIn("b", CLI, ["rover", ...common, "--id", "b", "--allow-forward", "tcp:7000"]);
    const bLog = logLines(b);
    await sleep(1500);
    const a = nodeIn("a", CLI, [
      "rover",
      ...common,
      "--id",
      "a",
      "--connect",
      "b",
      "--forward",
      "tcp:7001:b:7000",
    ]);
    const aLog = logLines(a);
    const tail = () =>
      [...aLog.slice(-20), ...bLog.slice(-10)].map((l) => JSON.stringify(l)).join("\n");
    try {
      const end = Date.now() + 20_000;
      while (!aLog.some((l) => l.msg === "link up") && Date.now() < end) await sleep(200);
      expect(
        aLog.some((l) => l.msg === "link up"),
        tail(),
      ).toBe(true);
      // 25 s at 256 KiB/s, echoed: wifi goes down 6 s in.
      const client = jsonLines(nodeIn("a", STREAM, ["client", "7001", "25", "256"]), "client");
      await client.next((l) => typeof l.progress === "number" && l.progress > 0, 20_000, "data");
      await sleep(5_000);
      const before = (client.seen.at(-1)?.progress as number) ?? 0;
      fault.wifiDown();
      const r = await client.next((l) => "identical" in l, 90_000, "the stream's end");
      console.info(
        `lab forward: ${r.sent} bytes each way, ${(before / 2 ** 20).toFixed(1)} MiB back before wifi went down, identical ${r.identical}, longest stall ${r.maxStallMs} ms`,
      );
      expect(r, tail()).toMatchObject({ identical: true, error: null });
      expect(r.sent as number).toBeGreaterThan(5 * 2 ** 20);
      // The premise: wifi went down mid-stream and the link handed over on the same
      // PeerConnection (a switch to a backup path or an ICE restart, never a rebuild).
      expect(before).toBeGreaterThan(0);
      expect(before).toBeLessThan(r.received as number);
      const handovers = aLog.filter((l) => l.msg === "handover done");
      expect(handovers.length, tail()).toBeGreaterThanOrEqual(1);
      expect(
        handovers.every((h) => h.kind === "restart" || h.kind === "switch"),
        tail(),
      ).toBe(true);
      // One connection, ended cleanly on both sides.
      await sleep(1_000);
      expect(aLog.filter((l) => l.msg === "forward open")).toHaveLength(1);
      expect(aLog.filter((l) => l.msg === "forward ended")).toMatchObject([{ clean: true }]);
      expect(bLog.filter((l) => l.msg === "forward ended")).toMatchObject([{ clean: true }]);
    } finally {
      fault.heal();
      await stopChild(a);
      await stopChild(b);
    }
  }, 180_000);
});
