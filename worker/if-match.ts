/**
 * If-Match as RFC 9110 §13.1.1 reads it: `*`, or a list of entity tags compared strongly (a weak
 * tag, `W/"…"`, never matches). The contract also takes `"*"` (quoted) for `*`. Pure, so that the
 * room object compares what the route parsed.
 */

/** `*`, or the strong tags listed, unquoted (weak ones left out: they cannot match). */
export type IfMatch = "*" | readonly string[];

/** The header's value parsed; null when absent or blank. */
export function parseIfMatch(header: string | undefined): IfMatch | null {
  if (header === undefined || header.trim() === "") return null;
  const t = header.trim();
  if (t === "*" || t === '"*"') return "*";
  const tags: string[] = [];
  // Entity tags are quoted and hold no '"', so a comma inside one cannot occur.
  for (const part of t.split(",")) {
    const p = part.trim();
    if (p.startsWith("W/")) continue;
    const m = /^"([^"]*)"$/.exec(p);
    // Unquoted tags are not RFC 9110's, but curl users type them: taken as they are.
    tags.push(m ? (m[1] as string) : p);
  }
  return tags;
}

/** Whether `m` matches one of the current tags (`*` matches whenever there is one). */
export function ifMatchHits(m: IfMatch, ...etags: (string | undefined)[]): boolean {
  const current = etags.filter((e): e is string => e !== undefined);
  if (m === "*") return current.length > 0;
  return m.some((t) => current.includes(t));
}
