#!/usr/bin/env node
/**
 * `roverlink`: the command line (contract: ../shared/rover-cli.md, docs/cli.md).
 * Every failure is one line on stderr and a non-zero exit, never a stack trace.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import type { TokenSource } from "../shared/client.ts";
import { EdgeProtocolError, EdgeUnreachableError, ProblemError } from "../shared/errors.ts";
import { parseFileSize } from "../shared/file-wire.ts";
import {
  type AllowedTarget,
  type ForwardSpec,
  parseAllowList,
  parseForwardSpec,
} from "../shared/forward-wire.ts";
import { LINK_PROFILES, type LinkProfile } from "../shared/link/profile.ts";
import { ID_PATTERN, type Position } from "../shared/protocol.ts";
import { positionProblem } from "../shared/schemas.ts";
import { mintToken, parseTtl, TokenError } from "../shared/token.ts";
import { looksSecret, MIN_SECRET_BYTES, SECRET_VARS } from "./edge-vars.ts";
import { errnoText } from "./errno.ts";
import { IdentityError } from "./identity.ts";
import { DEV_SECRET, edgeVars, LocalEdgeError, REPO_ROOT, startLocalEdge } from "./local-edge.ts";
import { LOG_LEVELS, type LogLevel } from "./log.ts";
import { plainHttpWarning } from "./plain-http.ts";
import { masterSecretWarning, selfMintedToken } from "./self-token.ts";
import { onStopSignal } from "./stop-signals.ts";
import { VERSION } from "./version.ts";
import {
  type VideoConfig,
  VideoConfigError,
  type VideoFlags,
  videoConfig,
} from "./video-config.ts";

class UsageError extends Error {}

function id(what: string) {
  return (v: string) => {
    if (!ID_PATTERN.test(v))
      throw new InvalidArgumentError(`${what} must match [A-Za-z0-9._-]{1,64}`);
    return v;
  };
}

function positiveNumber(what: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0)
      throw new InvalidArgumentError(`${what} must be a positive number`);
    return n;
  };
}

/** The longest timer Node keeps: past 2^31 - 1 ms it fires after 1 ms (with a warning). */
const MAX_TIMER_S = Math.floor((2 ** 31 - 1) / 1000);

/** Seconds for a timer: positive, and at most MAX_TIMER_S (24.8 days). */
function timerSeconds(what: string, longer: string) {
  return (v: string) => {
    const n = positiveNumber(what)(v);
    if (n > MAX_TIMER_S)
      throw new InvalidArgumentError(
        `${what} must be at most ${MAX_TIMER_S} s (24.8 days); ${longer}`,
      );
    return n;
  };
}

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new InvalidArgumentError("must be a port number 1..65535");
  return n;
}

function position(v: string): Position {
  const parts = v.split(",");
  const x = Number(parts[0]);
  const y = Number(parts[1]);
  if (
    parts.length < 2 ||
    parts.length > 3 ||
    !Number.isFinite(x) ||
    !Number.isFinite(y) ||
    parts[0] === "" ||
    parts[1] === ""
  ) {
    throw new InvalidArgumentError('must be "x,y" or "x,y,map"');
  }
  const p: Position = parts[2] ? { x, y, map: parts[2] } : { x, y };
  // Said here, naming the flag, rather than by the edge as a 400 at join.
  const problem = positionProblem(p);
  if (problem) throw new InvalidArgumentError(problem.replace(/^position\./, ""));
  return p;
}

function fileSize(v: string): number {
  const n = parseFileSize(v);
  if (n === null)
    throw new InvalidArgumentError("must be a size such as 500M, 4G or a number of bytes");
  return n;
}

/**
 * A secret to sign tokens with. Every edge refuses to run with one under MIN_SECRET_BYTES, so a
 * token signed with it could never be accepted: refused here, at once.
 */
function signingSecret(secret: string, from: string): string {
  const n = Buffer.byteLength(secret, "utf8");
  if (n < MIN_SECRET_BYTES)
    throw new UsageError(
      `${from} is ${n} bytes: no edge runs with a secret under ${MIN_SECRET_BYTES} bytes, so none would take this token (use the edge's ROVERLINK_SECRET)`,
    );
  return secret;
}

/** The peer id a token acts as (its `sub`), read without checking it (the edge does). */
function tokenSubject(token: string): string | null {
  try {
    const payload = token.split(".")[1] ?? "";
    const sub = (
      JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { sub?: unknown }
    ).sub;
    return typeof sub === "string" && ID_PATTERN.test(sub) ? sub : null;
  } catch {
    return null;
  }
}

/** A repeatable peer id option. */
function collectIds(what: string) {
  const check = id(what);
  return (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), check(v)];
}

function forwardSpec(v: string, prev: ForwardSpec[] | undefined): ForwardSpec[] {
  try {
    return [...(prev ?? []), parseForwardSpec(v)];
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

function allowList(v: string, prev: AllowedTarget[] | undefined): AllowedTarget[] {
  try {
    return [...(prev ?? []), ...parseAllowList(v)];
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

function varPair(v: string, prev: Record<string, string> | undefined): Record<string, string> {
  const i = v.indexOf(":");
  if (i <= 0) throw new InvalidArgumentError("must be NAME:VALUE");
  return { ...prev, [v.slice(0, i)]: v.slice(i + 1) };
}

/**
 * The edge's URL from --edge or $ROVERLINK_EDGE. A bad one from the environment is a UsageError
 * naming it: thrown as commander's InvalidArgumentError, it exited 1 silently (commander prints
 * those only for the options it parses).
 */
function edgeFrom(flag: string | undefined): string {
  if (flag) return flag; // checked by commander (edgeUrl)
  const env = process.env.ROVERLINK_EDGE;
  if (!env) throw new UsageError("no edge: pass --edge <url> or set ROVERLINK_EDGE");
  try {
    return edgeUrl(env);
  } catch (e) {
    throw new UsageError(`ROVERLINK_EDGE ${JSON.stringify(env)} ${(e as Error).message}`);
  }
}

function edgeUrl(v: string): string {
  try {
    const u = new URL(v);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
    return v;
  } catch {
    throw new InvalidArgumentError("must be an http(s) URL, e.g. http://127.0.0.1:8787");
  }
}

const program = new Command("roverlink")
  .description("Peer-to-peer links for mobile robots: edge, tokens and the rover agent.")
  .version(VERSION)
  .exitOverride()
  .configureOutput({
    writeErr: (s) => process.stderr.write(s.startsWith("error:") ? `roverlink: ${s}` : s),
  });

program
  .command("edge")
  .description("run the edge locally on workerd (Durable Object state on local disk)")
  .option("--ip <ip>", "address to listen on", "127.0.0.1")
  .option("--port <port>", "port to listen on", port, 8787)
  .option("--var <NAME:VALUE>", "a variable for the worker (repeatable)", varPair)
  .option(
    "--persist-to <dir>",
    "where Durable Object state is kept (default: .wrangler/state in the checkout)",
  )
  .action(
    async (opts: {
      ip: string;
      port: number;
      var?: Record<string, string>;
      persistTo?: string;
    }) => {
      const given = opts.var ?? {};
      // The worker's secrets come from the environment (passed on in a private file).
      const fromEnv: Record<string, string> = {};
      for (const name of SECRET_VARS) {
        const value = process.env[name];
        if (value) fromEnv[name] = value;
      }
      const configured = { ...fromEnv, ...given };
      // Refused (no secret beyond loopback, a short secret) before anything is printed or started.
      const { vars, devSecret } = edgeVars(opts.ip, configured);
      // A secret on our own command line is in every local user's `ps`: say so, once per name.
      for (const name of Object.keys(given).filter(looksSecret)) {
        process.stderr.write(
          `roverlink: --var ${name} puts a secret in the process list; set ${name} in the environment instead\n`,
        );
      }
      // Ctrl-C at any time, even while wrangler is still starting, stops the edge cleanly.
      const stop = new AbortController();
      onStopSignal(() => stop.abort());
      const edge = await startLocalEdge({
        ip: opts.ip,
        port: opts.port,
        vars,
        // A path given here is from where roverlink runs; the default, the checkout's.
        persistTo: opts.persistTo ?? join(REPO_ROOT, ".wrangler", "state"),
        signal: stop.signal,
      });
      // Said once the edge is up: an edge that fails to start says only why, in one line.
      if (devSecret) {
        const why = configured.ROVERLINK_SECRET
          ? "ROVERLINK_SECRET is the public development secret"
          : "ROVERLINK_SECRET is not set: using a development secret";
        process.stderr.write(`roverlink: ${why} (loopback only, never in production)\n`);
      }
      const mint = devSecret
        ? `npx roverlink token --room demo --peer me --secret ${DEV_SECRET}`
        : "npx roverlink token --room demo --peer me";
      process.stdout.write(
        [
          `roverlink edge listening on ${edge.url} (state in ${edge.persistTo}; Ctrl-C stops it)`,
          `  try: curl ${edge.url}/healthz`,
          `       curl -H "Authorization: Bearer $(${mint})" ${edge.url}/v1/rooms/demo/peers`,
          "",
        ].join("\n"),
      );
      const unexpected = await Promise.race([
        new Promise<false>((resolve) =>
          stop.signal.addEventListener("abort", () => resolve(false), { once: true }),
        ),
        edge.exited.then((code) => code ?? -1),
      ]);
      await edge.stop();
      if (unexpected !== false)
        throw new LocalEdgeError(
          `the edge stopped unexpectedly (wrangler exited with ${unexpected})`,
        );
    },
  );

program
  .command("token")
  .description("mint a peer token (HS256 JWT signed with ROVERLINK_SECRET or --secret)")
  .requiredOption("--room <room>", 'room id, or "*" for every room', (v: string) =>
    v === "*" ? v : id("room")(v),
  )
  .requiredOption("--peer <id>", "peer id the token acts as", id("peer id"))
  .option("--ttl <ttl>", "lifetime: 30s, 10m, 1h, 7d", "1h")
  .addOption(
    new Option("--role <role>", "peer or admin").choices(["peer", "admin"]).default("peer"),
  )
  .option("--secret <secret>", "signing secret (default: $ROVERLINK_SECRET)")
  .option("--cnf <fingerprint|file>", "bind to this DTLS certificate (RFC 7800; docs/rover.md)")
  .action(
    async (opts: {
      room: string;
      peer: string;
      ttl: string;
      role: "peer" | "admin";
      secret?: string;
      cnf?: string;
    }) => {
      // The flags first: a bad --ttl is the thing to fix even before a secret is set.
      const ttlSeconds = parseTtl(opts.ttl);
      const raw = opts.secret ?? process.env.ROVERLINK_SECRET;
      if (!raw) throw new UsageError("no secret: set ROVERLINK_SECRET or pass --secret");
      const secret = signingSecret(raw, opts.secret ? "--secret" : "ROVERLINK_SECRET");
      const token = await mintToken({
        secret,
        sub: opts.peer,
        room: opts.room,
        role: opts.role,
        ttlSeconds,
        ...(opts.cnf ? { cnf: (await import("./identity.ts")).cnfFingerprint(opts.cnf) } : {}),
      });
      process.stdout.write(`${token}\n`);
    },
  );

/** The `rover` command's flags, as commander parses them. */
type RoverFlags = {
  edge?: string;
  room: string;
  id: string;
  token?: string;
  kind: string;
  connect?: string[];
  connectNearby?: boolean;
  position?: Position;
  echo?: boolean;
  probe?: number;
  duration?: number;
  statsJson?: string;
  metricsPort?: number;
  manageRoutes?: boolean;
  backupCheckMs?: number;
  linkProfile: LinkProfile;
  events: "poll" | "sse";
  logLevel: LogLevel;
  identity?: string;
  trust?: string;
  forward?: ForwardSpec[];
  allowForward?: AllowedTarget[];
  stateDir?: string;
  inMemory?: boolean;
  receiveDir?: string;
  maxFileSize?: number;
  socket?: string | true;
} & VideoFlags;

program
  .command("rover")
  .description(
    "run a rover agent: join a room, answer offers, link to peers, survive network changes",
  )
  .option("--edge <url>", "edge URL (default: $ROVERLINK_EDGE)", edgeUrl)
  .requiredOption("--room <room>", "room id", id("room"))
  .requiredOption("--id <id>", "this rover's peer id", id("peer id"))
  .option(
    "--token <jwt>",
    "token (default: $ROVERLINK_TOKEN, or a 1 h peer token minted with $ROVERLINK_SECRET)",
  )
  .option("--kind <kind>", "peer kind shown to others", "rover")
  .option("--connect <peer>", "link to this peer (repeatable; we offer)", collectIds("--connect"))
  .option("--connect-nearby", "link to every peer the edge reports as nearby")
  .option("--position <x,y[,map]>", "publish a position", position)
  .option("--echo", "send every received message back on the same channel")
  .option(
    "--probe <hz>",
    "send numbered probes on control at this rate (at most 1000)",
    (v: string) => {
      const hz = positiveNumber("--probe")(v);
      if (hz > 1000) throw new InvalidArgumentError("--probe is at most 1000 (a timer's 1 ms)");
      if (1 / hz > MAX_TIMER_S)
        throw new InvalidArgumentError(`--probe is at least 1/${MAX_TIMER_S} (one in 24.8 days)`);
      return hz;
    },
  )
  .option(
    "--duration <s>",
    "stop after this many seconds",
    timerSeconds("--duration", "to run longer, give none"),
  )
  .option("--stats-json <file>", "write the probe figures as JSON on exit")
  .option("--metrics-port <port>", "Prometheus metrics on 127.0.0.1:<port>/metrics", port)
  .option("--identity <file>", "DTLS certificate and key (created 0600 if missing; docs/rover.md)")
  .option("--trust <file>", "pinned peer fingerprints: links to others are refused (docs/rover.md)")
  .option(
    "--forward <proto:local:peer:remote>",
    "carry 127.0.0.1:<local> to <peer>'s 127.0.0.1:<remote>, tcp or udp (repeatable; docs/rover.md)",
    forwardSpec,
  )
  .option(
    "--allow-forward <proto:port,...>",
    "local targets peers' forwards may reach, e.g. tcp:22,udp:14550 (repeatable; default none)",
    allowList,
  )
  .option(
    "--socket [path]",
    "local message socket for programs (default: <dir>/<room>/<id>.sock in $RUNTIME_DIRECTORY, else $XDG_RUNTIME_DIR/roverlink, else <state dir>/run; docs/socket.md)",
  )
  .option(
    "--state-dir <dir>",
    "where durable control streams are kept (default: $STATE_DIRECTORY or $XDG_STATE_HOME/roverlink)",
  )
  .option("--in-memory", "keep control streams in memory only: lost when the process ends")
  .option(
    "--receive-dir <dir>",
    "take the files peers send (roverlink send) into this directory (docs/rover.md)",
  )
  .option(
    "--max-file-size <size>",
    "largest file --receive-dir takes, e.g. 500M (default 4G)",
    fileSize,
  )
  .option(
    "--video <rtp://host:port>",
    "send the local encoder's RTP from this port to consoles (docs/rover.md)",
  )
  .option("--video-sdp <file>", "the encoder's SDP file: port, codec (instead of or with --video)")
  .option("--video-codec <codec>", "vp8 or h264 (default: the SDP file's, else vp8)")
  .option(
    "--video-rtcp <host:port>",
    "send keyframe requests (RTCP PLI) to the encoder's RTCP port",
  )
  .option("--video-keyframe-cmd <cmd>", "run this shell command on a keyframe request")
  .option("--video-bitrate-cmd <cmd>", "run this shell command when the target bitrate changes")
  .option(
    "--video-min-kbps <kbps>",
    "lowest target bitrate (default 150)",
    positiveNumber("--video-min-kbps"),
  )
  .option(
    "--video-max-kbps <kbps>",
    "highest target bitrate (default 2500)",
    positiveNumber("--video-max-kbps"),
  )
  .option(
    "--manage-routes",
    "route each uplink by source (ip rule per uplink) so a dead one is escaped; without that, demote its default route on silent loss (needs CAP_NET_ADMIN)",
  )
  .option(
    "--backup-check-ms <ms>",
    "check each backup path this often (default 2500; docs/link-health.md)",
    (v: string) => {
      const ms = positiveNumber("--backup-check-ms")(v);
      if (ms > MAX_TIMER_S * 1000)
        throw new InvalidArgumentError(`--backup-check-ms must be at most ${MAX_TIMER_S * 1000}`);
      return ms;
    },
  )
  .addOption(
    new Option(
      "--link-profile <profile>",
      "link cadences: cellular (quiet when idle, ~1 MB/day) or lan (probes every second)",
    )
      .choices(LINK_PROFILES as unknown as string[])
      .default("cellular"),
  )
  .addOption(
    new Option(
      "--events <how>",
      "edge events: sse (one stream, ~0.75 MB/day) or poll (long-polls, ~5 MB/day; see docs/cli.md)",
    )
      .choices(["sse", "poll"])
      .default("sse"),
  )
  .addOption(
    new Option("--log-level <level>", "log level")
      .choices(LOG_LEVELS as unknown as string[])
      .default("info", "info, or $ROVERLINK_LOG_LEVEL"),
  )
  .action(async (opts: RoverFlags, cmd: Command) => {
    // A stop from now on is a normal one (exit 0, figures written): loading the agent takes a
    // moment, and until runRover listened a Ctrl-C killed the process (130, no --stats-json).
    const early = new AbortController();
    const off = onStopSignal(() => early.abort());
    try {
      await roverCommand(opts, cmd, early.signal);
    } finally {
      off();
    }
  });

async function roverCommand(
  opts: RoverFlags,
  cmd: Command,
  stopSignal: AbortSignal,
): Promise<void> {
  // The environment fills in what the command line left out (commander would take an empty
  // variable as a value).
  const logLevel =
    cmd.getOptionValueSource("logLevel") === "default"
      ? process.env.ROVERLINK_LOG_LEVEL || opts.logLevel
      : opts.logLevel;
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
    throw new UsageError(`ROVERLINK_LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}`);
  const edge = edgeFrom(opts.edge);
  if (opts.connect?.includes(opts.id))
    throw new UsageError(
      `--connect ${opts.id} is this rover's own id: a rover cannot link to itself`,
    );
  const selfForward = opts.forward?.find((f) => f.peer === opts.id);
  if (selfForward)
    throw new UsageError(
      `--forward to ${opts.id} is this rover's own id: a rover cannot link to itself (forward to a port here directly)`,
    );
  // Accepted and ignored before, like a --video-* option without --video (which is refused).
  if (opts.maxFileSize !== undefined && !opts.receiveDir)
    throw new UsageError(
      "--max-file-size needs --receive-dir (it limits the files received there)",
    );
  const given = opts.token || process.env.ROVERLINK_TOKEN;
  let token: TokenSource;
  const warnings: string[] = [];
  const clear = plainHttpWarning(edge);
  if (clear) warnings.push(clear);
  if (given) {
    token = given;
  } else {
    const secret = process.env.ROVERLINK_SECRET;
    if (!secret)
      throw new UsageError(
        "no token: pass --token, set ROVERLINK_TOKEN, or set ROVERLINK_SECRET to mint one",
      );
    token = selfMintedToken(signingSecret(secret, "ROVERLINK_SECRET"), opts.id, opts.room);
    await token(); // a bad id or room fails here, before anything starts
    const warning = masterSecretWarning(edge);
    if (warning) warnings.push(warning);
  }
  let video: VideoConfig | null;
  try {
    const sdp = opts.videoSdp ? readFileSync(opts.videoSdp, "utf8") : undefined;
    video = videoConfig(opts, sdp);
  } catch (e) {
    throw new UsageError(
      e instanceof VideoConfigError
        ? e.message
        : `--video-sdp: cannot read ${opts.videoSdp}: ${errnoText(e)}`,
    );
  }
  const { runRover } = await import("./run.ts");
  const code = await runRover({
    edge,
    room: opts.room,
    id: opts.id,
    token,
    kind: opts.kind,
    connect: opts.connect ?? [],
    connectNearby: opts.connectNearby ?? false,
    echo: opts.echo ?? false,
    manageRoutes: opts.manageRoutes ?? false,
    ...(opts.backupCheckMs !== undefined ? { backupCheckMs: opts.backupCheckMs } : {}),
    linkProfile: opts.linkProfile,
    events: opts.events,
    forwards: opts.forward ?? [],
    allowForward: opts.allowForward ?? [],
    logLevel: logLevel as LogLevel,
    warnings,
    ...(opts.position ? { position: opts.position } : {}),
    ...(opts.probe !== undefined ? { probeHz: opts.probe } : {}),
    ...(opts.duration !== undefined ? { durationS: opts.duration } : {}),
    ...(opts.statsJson ? { statsJson: opts.statsJson } : {}),
    ...(opts.metricsPort !== undefined ? { metricsPort: opts.metricsPort } : {}),
    ...(opts.identity ? { identityFile: opts.identity } : {}),
    ...(opts.trust ? { trustFile: opts.trust } : {}),
    ...(opts.inMemory ? {} : { stateDir: opts.stateDir ?? defaultStateDir() }),
    ...(opts.receiveDir ? { receiveDir: opts.receiveDir } : {}),
    ...(opts.maxFileSize !== undefined ? { maxFileBytes: opts.maxFileSize } : {}),
    ...(opts.socket === undefined
      ? {}
      : {
          socket:
            opts.socket === true
              ? { path: defaultSocketPath(opts.room, opts.id), isDefault: true }
              : { path: opts.socket, isDefault: false },
        }),
    ...(video ? { video } : {}),
    stopSignal,
  });
  process.exitCode = code;
}

program
  .command("send")
  .description(
    "send a file to a peer (running `roverlink rover --receive-dir`); exit 0 once it verified the sha256",
  )
  .argument("<file>", "the file to send")
  .requiredOption("--to <peer>", "the receiving peer's id", id("peer id"))
  .option("--edge <url>", "edge URL (default: $ROVERLINK_EDGE)", edgeUrl)
  .requiredOption("--room <room>", "room id", id("room"))
  .option("--id <id>", "our peer id (default: the token's, or send-<random>)", id("peer id"))
  .option(
    "--token <jwt>",
    "token (default: $ROVERLINK_TOKEN, or a 1 h peer token minted with $ROVERLINK_SECRET)",
  )
  .option("--name <name>", "the name the receiver gives the file (default: its base name)")
  .option(
    "--link-timeout <s>",
    "give up when no link comes up within this long",
    timerSeconds("--link-timeout", "that is already longer than any link takes"),
    30,
  )
  .option(
    "--idle-timeout <s>",
    "give up when the receiver acknowledges nothing for this long",
    timerSeconds("--idle-timeout", "that is already longer than any transfer waits"),
    120,
  )
  .option("--identity <file>", "DTLS certificate and key (docs/rover.md)")
  .option("--trust <file>", "pinned peer fingerprints (docs/rover.md)")
  .option("--stats-json <file>", "write the transfer's figures as JSON once delivered")
  .addOption(
    new Option("--log-level <level>", "log level")
      .choices(LOG_LEVELS as unknown as string[])
      .default("warn"),
  )
  .action(
    async (
      file: string,
      opts: {
        to: string;
        edge?: string;
        room: string;
        id?: string;
        token?: string;
        name?: string;
        linkTimeout: number;
        idleTimeout: number;
        identity?: string;
        trust?: string;
        statsJson?: string;
        logLevel: LogLevel;
      },
    ) => {
      const edge = edgeFrom(opts.edge);
      const clear = plainHttpWarning(edge);
      if (clear) process.stderr.write(`roverlink: ${clear}\n`);
      const given = opts.token || process.env.ROVERLINK_TOKEN;
      const named = opts.id ?? (given ? tokenSubject(given) : null);
      const self = named ?? `send-${randomHex()}`;
      let token: TokenSource;
      if (given) token = given;
      else {
        const secret = process.env.ROVERLINK_SECRET;
        if (!secret)
          throw new UsageError(
            "no token: pass --token, set ROVERLINK_TOKEN, or set ROVERLINK_SECRET to mint one",
          );
        token = selfMintedToken(signingSecret(secret, "ROVERLINK_SECRET"), self, opts.room);
        await token();
      }
      const { runSend } = await import("./send-run.ts");
      process.exitCode = await runSend({
        edge,
        room: opts.room,
        id: self,
        ephemeralId: named === null,
        token,
        to: opts.to,
        file,
        linkTimeoutS: opts.linkTimeout,
        idleTimeoutS: opts.idleTimeout,
        logLevel: opts.logLevel,
        ...(opts.name !== undefined ? { name: opts.name } : {}),
        ...(opts.identity ? { identityFile: opts.identity } : {}),
        ...(opts.trust ? { trustFile: opts.trust } : {}),
        ...(opts.statsJson ? { statsJson: opts.statsJson } : {}),
      });
    },
  );

program
  .command("identity")
  .description(
    "print a rover's DTLS certificate fingerprint as a trust-file line (creates the file if missing)",
  )
  .requiredOption("--id <id>", "the rover's peer id", id("peer id"))
  .option("--identity <file>", "certificate file (default: the rover's default location)")
  .action(async (opts: { id: string; identity?: string }) => {
    const { openPeerIdentity } = await import("./identity.ts");
    const r = await openPeerIdentity({
      id: opts.id,
      ...(opts.identity ? { identityFile: opts.identity } : {}),
    });
    process.stderr.write(`roverlink: ${r.created ? "created" : "read"} ${r.file}\n`);
    process.stdout.write(`${opts.id} sha-256 ${r.fingerprint}\n`);
  });

function randomHex(): string {
  return randomBytes(3).toString("hex");
}

/** One line for any failure. */
function explain(e: unknown): string {
  if (e instanceof ProblemError) {
    if (e.status === 401) return `token refused by the edge: ${e.problem.detail || e.message}`;
    if (e.status === 403) return `token not allowed here: ${e.problem.detail || e.message}`;
    if ((e.status === 503 || e.status === 409) && /full/i.test(e.message))
      return `room is full: ${e.problem.detail || e.message}`;
    // A route the edge does not know: most likely --edge is not the edge's root URL.
    if (e.status === 404 && /no such route/.test(e.problem.detail ?? ""))
      return `${e.method} ${e.url}: 404, no such route: is --edge the edge's base URL (e.g. https://edge.example.net)?`;
    return e.message;
  }
  if (e instanceof EdgeUnreachableError || e instanceof EdgeProtocolError) return e.message;
  if (
    e instanceof TokenError ||
    e instanceof UsageError ||
    e instanceof LocalEdgeError ||
    e instanceof IdentityError
  )
    return e.message.split("\n")[0] ?? "";
  if (e instanceof Error) return e.message.split("\n")[0] ?? String(e);
  return String(e);
}

/**
 * Where the durable outbox lives: systemd's `$STATE_DIRECTORY` (StateDirectory=) when set, else
 * `$XDG_STATE_HOME/roverlink` (default `~/.local/state/roverlink`).
 */
function defaultStateDir(): string {
  const systemd = process.env.STATE_DIRECTORY?.split(":")[0];
  if (systemd) return systemd;
  return join(process.env.XDG_STATE_HOME || join(homedir(), ".local", "state"), "roverlink");
}

/**
 * The message socket's default path: under systemd's `$RUNTIME_DIRECTORY` (RuntimeDirectory=), else
 * `$XDG_RUNTIME_DIR/roverlink` (a per-user tmpfs), else the state directory; per room and id, like
 * the outbox.
 */
function defaultSocketPath(room: string, id: string): string {
  const systemd = process.env.RUNTIME_DIRECTORY?.split(":")[0];
  const base =
    systemd ||
    (process.env.XDG_RUNTIME_DIR
      ? join(process.env.XDG_RUNTIME_DIR, "roverlink")
      : join(defaultStateDir(), "run"));
  return join(base, room, `${id}.sock`);
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // Help and version exit 0; commander already printed its one-line error otherwise.
    process.exit(e.exitCode);
  }
  process.stderr.write(`roverlink: ${explain(e)}\n`);
  process.exit(1);
}
