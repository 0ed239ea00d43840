// A 100 MiB file through TURN in the carrier-NAT lab (docs/lab.md) with wifi going down in the
// middle: `roverlink send` in rover A's namespace (wifi + cell), `roverlink rover --receive-dir` in
// B's. It must arrive byte-identical, verified by sha256, without the transfer starting over
// (a resume, if any, from an offset > 0); the stall of the handover is printed next to the link's
// own gap. Run as root, under `flock /tmp/rl-lab.lock` (the lab is shared).
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { labGate, labWithEdge } from "./gate.ts";
import { fault, nodeIn, stopChild } from "./lab.ts";
import { sleep } from "./scenario.ts";

const { unavailable, note } = labGate();

const CLI = "rover/cli.ts";
const MiB = 1024 * 1024;
const SIZE = 100 * MiB;

/** A file of random bytes, written in 1 MiB pieces; its sha256. */
async function randomFile(path: string, bytes: number): Promise<string> {
  const h = createHash("sha256");
  const out = createWriteStream(path);
  for (let at = 0; at < bytes; at += MiB) {
    const chunk = randomBytes(Math.min(MiB, bytes - at));
    h.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((r) => out.end(() => r()));
  return h.digest("hex");
}

describe.skipIf(unavailable !== undefined)(`a file through a handover in the lab${note}`, () => {
  let edgeUrl = "";
  labWithEdge((url) => {
    edgeUrl = url;
  });

  it("100 MiB through TURN, wifi down in the middle: byte-identical, sha256 verified, never started over", async () => {
    const work = mkdtempSync(join(tmpdir(), "rl-lab-file-"));
    const dir = mkdtempSync(join(tmpdir(), "rl-lab-receive-"));
    const file = join(work, "map.bin");
    const sha = await randomFile(file, SIZE);
    const room = `lab-file-${process.pid}`;
    const b = nodeIn("b", CLI, [
      "rover",
      ...["--edge", edgeUrl, "--room", room, "--id", "b", "--in-memory"],
      ...["--receive-dir", dir, "--log-level", "info"],
    ]);
    let bLog = "";
    b.stderr?.on("data", (d: Buffer) => (bLog = (bLog + d.toString()).slice(-20_000)));
    await sleep(1500);
    const stats = join(work, "send.json");
    const a = nodeIn("a", CLI, [
      "send",
      file,
      ...["--to", "b", "--room", room, "--edge", edgeUrl, "--id", "a"],
      ...["--stats-json", stats, "--log-level", "info", "--link-timeout", "30"],
    ]);
    let aErr = "";
    let aOut = "";
    a.stdout?.on("data", (d: Buffer) => (aOut += d.toString()));
    a.stderr?.on("data", (d: Buffer) => (aErr = (aErr + d.toString()).slice(-40_000)));
    const exited = new Promise<number | null>((r) => a.once("exit", (code) => r(code)));
    const logs = () => `rover A (send):\n${aErr.slice(-6000)}\nrover B:\n${bLog.slice(-6000)}`;
    try {
      // Wifi goes down once a fifth has arrived (the plain progress lines of `send`).
      const end = Date.now() + 120_000;
      while (!/map\.bin: [2-9]0% /.test(aErr) && Date.now() < end) await sleep(100);
      expect(aErr, logs()).toMatch(/map\.bin: [2-9]0% /);
      const faultAt = /map\.bin: (\d+)% /g;
      let pct = 0;
      for (const m of aErr.matchAll(faultAt)) pct = Number(m[1]);
      fault.wifiDown();
      const code = await Promise.race([exited, sleep(300_000).then(() => "timeout")]);
      expect(code, logs()).toBe(0);
      expect(aOut).toMatch(new RegExp(`sha256 ${sha} verified`));
      const r = JSON.parse(readFileSync(stats, "utf8")) as {
        bytes: number;
        ms: number;
        resumedFrom: number[];
        sentBytes: number;
        maxStallMs: number;
        cpuMs: number;
      };
      // Never started over: no resume from 0 (a resume after a rebuild starts past what arrived).
      for (const offset of r.resumedFrom) expect(offset).toBeGreaterThan(0);
      expect(r.sentBytes - SIZE).toBeLessThan(8 * MiB);
      // The premise: the fault struck mid-transfer and the link handed over.
      expect(pct).toBeLessThan(100);
      const handovers = aErr
        .split("\n")
        .filter((l) => l.includes('"msg":"handover done"'))
        .map((l) => (JSON.parse(l) as { gapMs: number; reason: string }).gapMs);
      expect(handovers.length, logs()).toBeGreaterThanOrEqual(1);
      // Byte-identical under its name, nothing else left in the directory.
      expect(readdirSync(dir)).toEqual(["map.bin"]);
      const got = createHash("sha256")
        .update(readFileSync(join(dir, "map.bin")))
        .digest("hex");
      expect(got).toBe(sha);
      console.info(
        `lab file-handover: 100 MiB in ${(r.ms / 1000).toFixed(1)} s (${(SIZE / 1e6 / (r.ms / 1000)).toFixed(1)} MB/s) through TURN, wifi down at ${pct}%, link handover gap ${handovers.join(", ")} ms, longest transfer stall ${r.maxStallMs} ms, resumed at [${r.resumedFrom.join(", ")}], resent ${r.sentBytes - SIZE} bytes, sender CPU ${r.cpuMs} ms`,
      );
    } finally {
      fault.heal();
      await stopChild(a);
      await stopChild(b);
    }
  }, 420_000);
});
