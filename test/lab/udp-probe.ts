// Tiny UDP tool for the lab, run inside a namespace; prints JSON lines on stdout.
//   listen <ip> <port>...   answer every datagram from the socket it arrived on ({"echo": port}) and, to test
//                           filtering, also from every other listening socket ({"cross": port}).
//                           Prints {"listening": [...]} when ready, then {"port", "from"} per datagram.
//   send <ip> <port>[,<port>...] [count] [intervalMs] [waitMs]
//                           from ONE socket, send `count` datagrams to each port, wait for replies, then print
//                           {"local", "sent", "replies": [{"from", "data"}]} and exit.
import { createSocket, type Socket } from "node:dgram";

function fail(message: string): never {
  process.stderr.write(`udp-probe: ${message}\n`);
  process.exit(2);
}

function port(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 65535) fail(`bad port '${text}'`);
  return n;
}

function bind(socket: Socket, address: string, p: number): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(p, address, () => resolve());
  });
}

async function listen(ip: string, ports: number[]): Promise<void> {
  const sockets = ports.map(() => createSocket("udp4"));
  await Promise.all(sockets.map((s, i) => bind(s, ip, ports[i] ?? 0)));
  sockets.forEach((socket, i) => {
    socket.on("message", (_data, from) => {
      console.log(JSON.stringify({ port: ports[i], from: `${from.address}:${from.port}` }));
      socket.send(JSON.stringify({ echo: ports[i] }), from.port, from.address);
      sockets.forEach((other, j) => {
        if (j !== i) other.send(JSON.stringify({ cross: ports[j] }), from.port, from.address);
      });
    });
  });
  console.log(JSON.stringify({ listening: ports }));
}

async function send(
  ip: string,
  ports: number[],
  count: number,
  intervalMs: number,
  waitMs: number,
) {
  const socket = createSocket("udp4");
  const replies: { from: string; data: string }[] = [];
  socket.on("message", (data, from) => {
    replies.push({ from: `${from.address}:${from.port}`, data: data.toString() });
  });
  await bind(socket, "0.0.0.0", 0);
  let sent = 0;
  for (let n = 0; n < count; n++) {
    for (const p of ports) {
      socket.send(String(n), p, ip);
      sent++;
    }
    if (intervalMs > 0) await new Promise((r) => setTimeout(r, intervalMs));
  }
  await new Promise((r) => setTimeout(r, waitMs));
  const local = socket.address();
  console.log(JSON.stringify({ local: `${local.address}:${local.port}`, sent, replies }));
  socket.close();
}

const [mode, ip, portList, ...rest] = process.argv.slice(2);
if (!ip || !portList)
  fail("usage: listen <ip> <port>... | send <ip> <port>[,<port>...] [count] [intervalMs] [waitMs]");
if (mode === "listen") {
  await listen(ip, [portList, ...rest].map(port));
} else if (mode === "send") {
  const [count = "1", intervalMs = "0", waitMs = "500"] = rest;
  await send(ip, portList.split(",").map(port), Number(count), Number(intervalMs), Number(waitMs));
} else {
  fail(`unknown mode '${mode}' (listen, send)`);
}
