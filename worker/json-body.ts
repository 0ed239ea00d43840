/** JSON request bodies: media type, size (bodyLimit runs first), syntax, depth, schema -> 415/400. */
import type { z } from "zod";
import { CONTENT_TYPE, LIMITS } from "../shared/protocol.ts";
import { bodyText, type Ctx, mediaType } from "./context.ts";
import { tooDeep } from "./json-depth.ts";
import { protoKeyPath } from "./json-keys.ts";
import { problem } from "./problem.ts";

export async function jsonBody<S extends z.ZodType>(
  c: Ctx,
  schema: S,
  types: readonly string[] = [CONTENT_TYPE.json],
  optional = false,
): Promise<z.infer<S>> {
  // Decoded by hand: workerd warns on .text() for a body that claims a non-text media type.
  const text = await bodyText(c);
  if (text.trim() === "" && optional) return schema.parse({});
  const t = mediaType(c);
  if (!types.includes(t)) {
    throw problem(415, "Unsupported media type", `Content-Type must be ${types.join(" or ")}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw problem(400, "Bad request", "body is not valid JSON");
  }
  // Before anything walks it: deep nesting overflows the stack of whatever recurses (a 500).
  const deep = tooDeep(value, LIMITS.jsonDepth);
  if (deep !== null) {
    throw problem(
      400,
      "Bad request",
      `${deep}: JSON nested deeper than ${LIMITS.jsonDepth} levels`,
    );
  }
  const proto = protoKeyPath(value);
  if (proto !== null) {
    throw problem(400, "Bad request", `${proto}: a key named __proto__ is not accepted`);
  }
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue && issue.path.length > 0 ? issue.path.join(".") : "body";
    throw problem(400, "Bad request", `${where}: ${issue?.message ?? "invalid"}`);
  }
  return r.data;
}
