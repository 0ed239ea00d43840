// Which Node the CLI needs, checked before anything else loads: an older one fails on syntax or a
// missing export with a stack trace, where the CLI promises one line (a systemd unit's `node` is
// often the distribution's).

/** Node that runs the compiled package (package.json `engines`). */
export const MIN_NODE = [22, 13];
/** Node that runs a checkout's TypeScript sources (type stripping without a flag). */
export const MIN_NODE_SOURCES = [22, 18];

/** Why `version` (e.g. "20.20.2") cannot run the CLI, or null. */
export function nodeTooOld(version, fromSources) {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  const [wantMajor, wantMinor] = fromSources ? MIN_NODE_SOURCES : MIN_NODE;
  if (major > wantMajor || (major === wantMajor && minor >= wantMinor)) return null;
  const where = fromSources ? " to run from a checkout (npm install brings it: npx roverlink)" : "";
  return `needs Node.js ${wantMajor}.${wantMinor} or later${where}; this is ${version}`;
}
