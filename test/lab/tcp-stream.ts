// A TCP stream for the lab's forward test, run inside a namespace; JSON lines on stdout.
//   echo <port>                        listen on 127.0.0.1:<port>, send back what arrives, half-close
//                                      when the client does. Prints {"listening": port}.
//   client <port> <seconds> <KiB/s>    connect to 127.0.0.1:<port>, send random bytes at this rate
//                                      for this long while reading the echo, half-close, read to the
//                                      end; prints {"progress": bytes back} each second, then
//                                      {"sent", "received", "identical", "error", "maxStallMs"}.
import { createHash, randomBytes } from "node:crypto";
import { connect, createServer } from "node:net";

const out = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
const [mode, portArg, secondsArg, rateArg] = process.argv.slice(2);
const port = Number(portArg);

if (mode === "echo") {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => {});
    s.pipe(s);
  });
  server.listen(port, "127.0.0.1", () => out({ listening: port }));
} else if (mode === "client") {
  const seconds = Number(secondsArg);
  const perTick = Math.round((Number(rateArg) * 1024) / 20); // 20 writes a second
  const sentHash = createHash("sha256");
  const backHash = createHash("sha256");
  let sent = 0;
  let received = 0;
  let lastData = Date.now();
  let maxStallMs = 0;
  let error: string | null = null;
  const s = connect({ host: "127.0.0.1", port, allowHalfOpen: true });
  s.on("data", (c: Buffer) => {
    backHash.update(c);
    received += c.length;
    const now = Date.now();
    maxStallMs = Math.max(maxStallMs, now - lastData);
    lastData = now;
  });
  s.on("error", (e: NodeJS.ErrnoException) => {
    error = e.code ?? e.message;
  });
  const progress = setInterval(() => out({ progress: received }), 1000);
  s.once("connect", () => {
    const end = Date.now() + seconds * 1000;
    const tick = setInterval(() => {
      if (Date.now() >= end || s.destroyed) {
        clearInterval(tick);
        s.end();
        return;
      }
      const c = randomBytes(perTick);
      sentHash.update(c);
      sent += c.length;
      s.write(c);
    }, 50);
  });
  s.on("close", () => {
    clearInterval(progress);
    const identical =
      error === null && received === sent && sentHash.digest("hex") === backHash.digest("hex");
    out({ sent, received, identical, error, maxStallMs });
  });
} else {
  process.stderr.write("tcp-stream: echo <port> | client <port> <seconds> <KiB/s>\n");
  process.exit(2);
}
