/** Read a lab rover's Prometheus metrics (`--metrics-port`) from inside its namespace. */
import { execIn, type LabNs } from "../../test/lab/lab.ts";

/** The value of one sample, e.g. metric("roverlink_messages_sent_total", {peer: "b"}); 0 if absent. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const open = line.indexOf("{");
    const close = line.lastIndexOf("}");
    const body = open >= 0 && close > open ? line.slice(open + 1, close) : "";
    const have = new Map(
      [...body.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] as string, m[2] as string]),
    );
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v))
      return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return 0;
}

/** The metrics page, or null while the agent is not serving it yet. */
export function scrape(ns: LabNs, port: number): string | null {
  try {
    return execIn(ns, "curl", ["-sf", "-m", "2", `http://127.0.0.1:${port}/metrics`], 5_000);
  } catch {
    return null;
  }
}
