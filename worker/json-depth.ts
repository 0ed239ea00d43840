/** How deeply a parsed JSON value nests, checked without recursion (the input is hostile). */

/** Segments of the path kept in an error: a path 32 levels long would help nobody. */
const SHOWN = 3;

/** The path (e.g. `meta.a.0…`) where `value` first nests deeper than `max`, or null. */
export function tooDeep(value: unknown, max: number): string | null {
  const stack: { v: unknown; depth: number; path: string[] }[] = [{ v: value, depth: 0, path: [] }];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    if (typeof top.v !== "object" || top.v === null) continue;
    if (top.depth >= max) {
      const shown = top.path.slice(0, SHOWN).join(".");
      return top.path.length > SHOWN ? `${shown}…` : shown || "body";
    }
    for (const [k, v] of Object.entries(top.v)) {
      const path = top.path.length > SHOWN ? top.path : [...top.path, k];
      stack.push({ v, depth: top.depth + 1, path });
    }
  }
  return null;
}
