/**
 * Keys a JSON body may not hold. `__proto__` is an own property after JSON.parse, but zod's
 * records drop it and a spread or an assignment treats it as the prototype: the key was lost
 * with a 200. Refused instead (400), wherever it is.
 */

/** The path (e.g. `meta.a`) of the first `__proto__` key in a parsed JSON value, or null. */
export function protoKeyPath(value: unknown): string | null {
  // Iterative: the input is hostile (its depth is bounded before this runs, but not its width).
  const stack: { v: unknown; path: string }[] = [{ v: value, path: "" }];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    if (typeof top.v !== "object" || top.v === null) continue;
    for (const [k, v] of Object.entries(top.v)) {
      const path = top.path ? `${top.path}.${k}` : k;
      if (k === "__proto__") return path;
      stack.push({ v, path });
    }
  }
  return null;
}
