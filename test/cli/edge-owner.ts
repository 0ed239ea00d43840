/**
 * Fixture for test/cli/local-edge.test.ts: starts a local edge with the secret given as argv[2],
 * prints {pid, port, persistTo} as one JSON line, then dies by SIGKILL (no exit handlers run):
 * itself, or with argv[3] `group` its whole process group (started detached: a group of its own).
 */
import { startLocalEdge } from "../../rover/local-edge.ts";

const edge = await startLocalEdge({ vars: { ROVERLINK_SECRET: process.argv[2] as string } });
process.stdout.write(
  `${JSON.stringify({ pid: edge.pid, port: edge.port, persistTo: edge.persistTo })}\n`,
  () => process.kill(process.argv[3] === "group" ? -process.pid : process.pid, "SIGKILL"),
);
