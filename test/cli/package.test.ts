/**
 * The published package as a user gets it: `npm pack` (which builds dist/), the tarball installed
 * with npm into an empty directory outside the repository (its dependencies from the registry),
 * then the CLI through `npx roverlink` and the library through `import("roverlink")`, its type
 * declarations through tsc, and the werift it loads carrying roverlink's patches.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { REPO_ROOT } from "../../rover/local-edge.ts";

const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
  version: string;
};
/** The library's public surface: a change here is a change of the package's API. */
const EXPORTS = [
  "Agent",
  "AgentTokenMismatchError",
  "BacklogFullError",
  "ClientInputError",
  "EdgeProtocolError",
  "EdgeUnreachableError",
  "FileReceiveError",
  "FileReceiver",
  "FileTransferError",
  "IdentityError",
  "MessageTooLargeError",
  "NoLinkError",
  "OutboxError",
  "ProblemError",
  "TokenError",
  "createLogger",
  "mintToken",
  "openPeerIdentity",
  "sendFile",
];
const MARKER = "roverlink patch";
let work: string;
let app: string;

/**
 * The environment of a user's shell: this Node first on PATH, and none of the npm_* variables
 * `npm test` sets (npm_config_local_prefix would point npm back at the repository).
 */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!/^npm_/i.test(k) && k !== "INIT_CWD") env[k] = v;
  env.PATH = `${dirname(process.execPath)}:${process.env.PATH ?? ""}`;
  env.npm_config_update_notifier = "false";
  return env;
}

function run(cmd: string, args: string[], cwd: string, timeout = 300_000): string {
  // Output kept (a failure's error carries it), not printed.
  return execFileSync(cmd, args, {
    cwd,
    env: userEnv(),
    encoding: "utf8",
    timeout,
    stdio: ["ignore", "pipe", "pipe"],
  });
}

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "roverlink-pack-"));
  // prepack builds dist/ from rover/ and shared/.
  run("npm", ["pack", "--pack-destination", work], REPO_ROOT);
  const tarball = readdirSync(work).find((f) => f.endsWith(".tgz"));
  if (!tarball) throw new Error("npm pack made no tarball");
  app = join(work, "app");
  run("mkdir", ["-p", app], work);
  writeFileSync(
    join(app, "package.json"),
    `${JSON.stringify({ name: "app", private: true, type: "module" })}\n`,
  );
  const typesNode = (
    JSON.parse(readFileSync(join(REPO_ROOT, "node_modules/@types/node/package.json"), "utf8")) as {
      version: string;
    }
  ).version;
  run(
    "npm",
    ["install", "--no-audit", "--no-fund", join(work, tarball), `@types/node@${typesNode}`],
    app,
  );
}, 600_000);
afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

it("npx roverlink runs the compiled CLI (no TypeScript sources in the package)", () => {
  expect(run("npx", ["roverlink", "--version"], app).trim()).toBe(pkg.version);
  expect(readdirSync(join(app, "node_modules/roverlink")).sort()).toEqual([
    "README.md",
    "bin",
    "dist",
    "node_modules",
    "package.json",
  ]);
  // What needs the repository says so in one line.
  const edge = spawnSync("npx", ["roverlink", "edge"], {
    cwd: app,
    env: userEnv(),
    encoding: "utf8",
  });
  expect(edge.status).toBe(1);
  expect(edge.stderr).toMatch(/^roverlink: the local edge runs from a clone of the repository/m);
  expect(edge.stderr).not.toMatch(/\n\s+at /);
});

it("import('roverlink') gives the library's exports, and only through the exports map", () => {
  const names = run(
    process.execPath,
    ["-e", "import('roverlink').then((m) => console.log(JSON.stringify(Object.keys(m).sort())))"],
    app,
  );
  expect(JSON.parse(names)).toEqual(EXPORTS);
  const kinds = run(
    process.execPath,
    [
      "-e",
      "import('roverlink').then((m) => console.log(typeof m.Agent, typeof m.Agent.prototype.send, typeof m.mintToken))",
    ],
    app,
  );
  expect(kinds.trim()).toBe("function function function");
  // Every exported error says its own name (logs show `name`; one said plain "Error").
  const errorNames = run(
    process.execPath,
    [
      "-e",
      "import('roverlink').then((m) => console.log(JSON.stringify(Object.keys(m).filter((k) => k.endsWith('Error')).map((k) => { try { return new m[k]('x').name; } catch { return new m[k]({ problem: { status: 400, title: 't', detail: 'd' }, method: 'GET', url: 'http://x' }).name; } }))))",
    ],
    app,
  );
  const errors = EXPORTS.filter((k) => k.endsWith("Error"));
  expect(JSON.parse(errorNames)).toEqual(errors);
  const deep = spawnSync(
    process.execPath,
    ["-e", "import('roverlink/dist/rover/agent.js').catch((e) => console.log(e.code))"],
    { cwd: app, env: userEnv(), encoding: "utf8" },
  );
  expect(deep.stdout.trim()).toBe("ERR_PACKAGE_PATH_NOT_EXPORTED");
});

it("the type declarations describe the API to a TypeScript user", () => {
  writeFileSync(
    join(app, "check.ts"),
    `import {
  Agent,
  type AgentMessage,
  type AgentOptions,
  FileReceiver,
  type FileSent,
  type HandoverInfo,
  mintToken,
  type PeerGoneReason,
  sendFile,
} from "roverlink";
type IsAny<T> = 0 extends 1 & T ? true : false;
const o: AgentOptions = { edge: "http://127.0.0.1:8787", room: "r", id: "a", token: "t" };
const agent = new Agent(o);
const notAny: IsAny<Agent> = false;
const sent: boolean = agent.send("b", "control", "x");
agent.on("message", (m: AgentMessage) => m.peer);
// Events are typed: listeners get their arguments' types without annotations.
agent.on("link-up", (peer, info) => {
  const p: string = peer;
  const path: "direct" | "relay" | "unknown" = info.path;
  void [p, path];
});
agent.on("handover", (h: HandoverInfo) => h.gapMs);
agent.on("peer-left", (peer, reason) => {
  const r: "left" | "expired" | "token-expired" = reason;
  const named: PeerGoneReason = r;
  void [peer, r, named];
});
// @ts-expect-error: no such event
agent.on("linkup", () => {});
// @ts-expect-error: link-up's second argument is an object
agent.on("link-up", (_peer, info: string) => info);
const token: Promise<string> = mintToken({ secret: "s", sub: "a", room: "r", ttlSeconds: 60 });
// @ts-expect-error: not an option
new Agent({ ...o, nonsense: true });
// Files, as docs/rover.md shows them.
const rx = new FileReceiver({ agent, dir: "/tmp", log: console });
rx.on("received", () => {});
const sending: Promise<FileSent> = sendFile(agent, "b", "/tmp/map.pgm", { name: "map.pgm" }).done;
void sending;
void [notAny, sent, token];
`,
  );
  writeFileSync(
    join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        module: "nodenext",
        moduleResolution: "nodenext",
        target: "es2023",
        strict: true,
        noEmit: true,
        // werift's own declarations name an untyped module; ours are checked through their use.
        skipLibCheck: true,
        types: ["node"],
      },
      files: ["check.ts"],
    }),
  );
  const tsc = join(REPO_ROOT, "node_modules/.bin/tsc");
  const r = spawnSync(tsc, ["-p", "tsconfig.json"], { cwd: app, encoding: "utf8" });
  expect(r.stdout + r.stderr).toBe("");
  expect(r.status).toBe(0);
});

it("the installed package loads the patched werift it carries", () => {
  // Resolved from inside the package, as its own imports are.
  const resolved = run(
    process.execPath,
    ["--input-type=module", "-e", "console.log(import.meta.resolve('werift'))"],
    join(app, "node_modules/roverlink/dist/rover"),
  ).trim();
  const file = fileURLToPath(resolved);
  expect(file).toBe(join(app, "node_modules/roverlink/node_modules/werift/lib/index.mjs"));
  const count = (text: string) => text.split(MARKER).length - 1;
  const patched = count(readFileSync(join(REPO_ROOT, "node_modules/werift/lib/index.mjs"), "utf8"));
  expect(patched).toBeGreaterThan(0);
  expect(count(readFileSync(file, "utf8"))).toBe(patched);
});
