/**
 * `npm start`: runs the local edge (the Worker on workerd via `wrangler dev`, Durable Object state
 * on local disk under .wrangler/) until Ctrl-C.
 *
 * Work in progress: the demo rovers (two agents linking, live RTT/loss, a forced ICE-restart
 * handover) join this script once the rover agent lands (issue 3/5).
 */
import { spawn } from "node:child_process";

const port = process.env.PORT ?? "8787";
const env = {
  ...process.env,
  // Loopback only: no Request.cf download, no metrics.
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_SEND_METRICS: "false",
};
const args = ["dev", "--ip", "127.0.0.1", "--port", port];
if (!process.env.ROVERLINK_SECRET) {
  console.log(
    "roverlink: ROVERLINK_SECRET is not set; using a development secret (never in production)",
  );
  args.push("--var", "ROVERLINK_SECRET:roverlink-development-secret");
}
console.log(
  `roverlink: local edge on http://127.0.0.1:${port}  (try: curl http://127.0.0.1:${port}/healthz)`,
);
const child = spawn("wrangler", args, { stdio: "inherit", env });
const stop = () => child.kill("SIGINT");
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
child.on("exit", (code) => process.exit(code ?? 0));
