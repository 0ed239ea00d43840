/**
 * What is wrong with this deployment's configuration, read from its vars and secrets. `fatal`
 * problems make every /v1 request a 503 (tokens cannot be trusted); `ignored` ones are values the
 * edge does not use as given (a default applies, or one setting shadows another), which an
 * operator set on purpose and would not otherwise learn of. `GET /readyz` lists both.
 */
import { DEV_SECRET, MIN_SECRET_BYTES } from "../shared/token.ts";
import { type EdgeEnv, listVar } from "./env.ts";

export interface ConfigProblems {
  fatal: string[];
  ignored: string[];
}

/** Vars read as positive numbers (`numVar`): a value that is not one falls back to the default. */
const NUMERIC_VARS = [
  "PRESENCE_TTL_S",
  "MAX_PEERS_PER_ROOM",
  "OFFER_WAIT_S",
  "TURN_TTL_S",
  "NEARBY_RADIUS",
  "MAX_EVENTS_PER_PEER",
  "MAX_EVENTS_PER_SENDER",
  "MAX_SESSIONS_PER_PAIR",
  "MAX_STREAMS_PER_PEER",
  "SESSION_OFFER_TTL_S",
  "SSE_ACK_DELAY_S",
] as const satisfies readonly (keyof EdgeEnv)[];

/**
 * Is a request URL's host this machine's loopback? WHATWG URL has already normalized it (IPv4
 * dotted, IPv6 compressed in brackets). A deployed edge is reached by its route's name, never so.
 */
export function isLoopbackUrlHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return (
    h === "localhost" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) ||
    h === "[::1]" ||
    /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(h)
  );
}

let checked: { secret: string; previous: string | undefined; problem: string | null } | null = null;

/**
 * Why the secret cannot sign this edge's tokens, or null. On every /v1 request: the checks of the
 * values are kept per isolate; the request's host is read only for the development secret.
 */
export function secretProblem(env: EdgeEnv, url: string): string | null {
  const secret = env.ROVERLINK_SECRET;
  if (!secret)
    return "the edge has no ROVERLINK_SECRET configured (wrangler secret put ROVERLINK_SECRET)";
  const previous = env.ROVERLINK_SECRET_PREVIOUS;
  if (checked?.secret !== secret || checked.previous !== previous)
    checked = { secret, previous, problem: valuesProblem(secret, previous) };
  if (checked.problem) return checked.problem;
  for (const [name, value] of [
    ["ROVERLINK_SECRET", secret],
    ["ROVERLINK_SECRET_PREVIOUS", previous],
  ] as const) {
    // The development secret is printed in the docs: anyone could mint an admin token with it.
    if (value === DEV_SECRET && !isLoopbackUrlHost(new URL(url).hostname))
      return `${name} is the public development secret, which serves loopback only: configure a random secret (wrangler secret put ${name})`;
  }
  return null;
}

function valuesProblem(secret: string, previous: string | undefined): string | null {
  const bytes = (v: string) => new TextEncoder().encode(v).length;
  if (bytes(secret) < MIN_SECRET_BYTES)
    return `ROVERLINK_SECRET is shorter than ${MIN_SECRET_BYTES} bytes: configure a random secret of at least ${MIN_SECRET_BYTES} bytes (e.g. openssl rand -base64 32)`;
  if (previous && bytes(previous) < MIN_SECRET_BYTES)
    return `ROVERLINK_SECRET_PREVIOUS is shorter than ${MIN_SECRET_BYTES} bytes`;
  return null;
}

export function configProblems(env: EdgeEnv, url: string): ConfigProblems {
  const fatal: string[] = [];
  const ignored: string[] = [];
  const secret = secretProblem(env, url);
  if (secret) fatal.push(secret);
  for (const name of NUMERIC_VARS) {
    const v = env[name];
    if (v === undefined || v.trim() === "") continue;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0)
      ignored.push(`${name}="${v}" is not a positive number: its default applies`);
  }
  const turnUrls = listVar(env.TURN_URLS).length > 0;
  if (env.TURN_SECRET && !turnUrls)
    ignored.push("TURN_SECRET is set without TURN_URLS: no TURN is handed out from it");
  if (turnUrls && !env.TURN_SECRET)
    ignored.push("TURN_URLS is set without TURN_SECRET: no TURN is handed out from it");
  if (Boolean(env.CF_TURN_KEY_ID) !== Boolean(env.CF_TURN_API_TOKEN))
    ignored.push("CF_TURN_KEY_ID and CF_TURN_API_TOKEN go together: Cloudflare TURN is off");
  if (env.TURN_SECRET && turnUrls && env.CF_TURN_KEY_ID && env.CF_TURN_API_TOKEN)
    ignored.push(
      "both coturn (TURN_SECRET, TURN_URLS) and Cloudflare TURN are configured: coturn is used",
    );
  return { fatal, ignored };
}
