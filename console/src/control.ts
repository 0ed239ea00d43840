/**
 * What the console's application sends on the data channels: JSON text. On `control` it travels
 * inside the reliable stream (control-stream.ts); health probes on `telemetry` are not
 * application messages (probes.ts).
 */
export type AppMessage =
  | { type: "chat"; from: string; text: string; at: number }
  | { type: "cmd"; from: string; name: string; args?: unknown; at: number }
  | { type: "voice"; from: string; state: "on" | "off" };

/** Parse a received message; anything that is not one of ours is returned as raw text. */
export function parseMessage(text: string): AppMessage | { type: "raw"; text: string } {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v === "object" && v !== null && !Array.isArray(v)) {
      // Ours only when its fields are (a bare {"type":"chat"} showed as "undefined: undefined").
      const m = v as Record<string, unknown>;
      const from = typeof m.from === "string";
      if (m.type === "chat" && from && typeof m.text === "string") return m as AppMessage;
      if (m.type === "cmd" && from && typeof m.name === "string") return m as AppMessage;
      if (m.type === "voice" && from && (m.state === "on" || m.state === "off"))
        return m as AppMessage;
    }
  } catch {
    // not JSON: a rover may send plain text
  }
  return { type: "raw", text };
}

/**
 * Who a received message is shown as. `from` is the peer's word: shown as is when it names the
 * peer, or us for an echo of a message this page sent; otherwise as the peer, with the name it
 * claims (a rover could make a line look like the operator's own).
 */
export function shownSender(from: string, peer: string, echoOfOurs: boolean): string {
  return from === peer || echoOfOurs ? from : `${peer} (as “${from}”)`;
}

/** A command line that cannot be sent as typed (its message says why). */
export class CommandError extends Error {}

/**
 * A command line typed by the operator: `name arg1 arg2` or `name {"json": 1}`. Returns null for
 * an empty line; throws CommandError for arguments that start as JSON and are not (a missing
 * brace would otherwise go out as words the rover does not expect).
 */
export function parseCommand(line: string): { name: string; args?: unknown } | null {
  const trimmed = line.trim();
  if (!trimmed) return null;
  const space = trimmed.indexOf(" ");
  if (space < 0) return { name: trimmed };
  const name = trimmed.slice(0, space);
  const rest = trimmed.slice(space + 1).trim();
  if (rest.startsWith("{") || rest.startsWith("[")) {
    try {
      return { name, args: JSON.parse(rest) };
    } catch (e) {
      throw new CommandError(
        `not sent: the arguments are not valid JSON (${(e as Error).message})`,
      );
    }
  }
  return { name, args: rest.split(/\s+/) };
}

/**
 * A received line as an operator reads it: a JSON object of plain values (a rover's telemetry,
 * `{"type":"telemetry","battery":97.4}`) as `telemetry · battery 97.4`; anything else as it came.
 */
export function readable(text: string): string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return text;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return text;
  const parts: string[] = [];
  for (const [k, x] of Object.entries(v)) {
    const shown = typeof x === "object" && x !== null ? JSON.stringify(x) : String(x);
    parts.push(k === "type" && typeof x === "string" ? x : `${k} ${shown}`);
  }
  return parts.length > 0 ? parts.join(" · ") : text;
}
