/**
 * zod schemas for what the edge and the token code validate at runtime. Kept apart from
 * protocol.ts so that the browser console bundles the protocol types without zod.
 */
import { z } from "zod";
import type { JoinBody, Position, Role, TokenClaims } from "./protocol.ts";
import { ID_PATTERN, LIMITS } from "./protocol.ts";

export const idSchema = z.string().regex(ID_PATTERN, "must match [A-Za-z0-9._-]{1,64}");

export const roleSchema: z.ZodType<Role> = z.enum(["peer", "admin"]);

export const tokenClaimsSchema = z.object({
  sub: idSchema,
  room: z.union([idSchema, z.literal("*")]),
  // NumericDate (RFC 7519 §2) may have a fraction; other JWT libraries mint such.
  exp: z.number().finite(),
  iat: z.number().finite().optional(),
  role: z.enum(["peer", "admin"]).default("peer"),
  // A cnf the edge cannot check (no x5t#S256, or a malformed one) makes the token invalid.
  cnf: z.object({ "x5t#S256": z.string().regex(/^[A-Za-z0-9_-]{43}$/) }).optional(),
}) satisfies z.ZodType<TokenClaims, unknown>;

const finite = z.number().finite();
// Strict, as the join body is: a `heading` or `z` would otherwise vanish without a word.
export const positionSchema = z
  .object({
    x: finite,
    y: finite,
    map: z.string().max(LIMITS.mapNameChars).optional(),
  })
  .strict() satisfies z.ZodType<Position>;

/** Why the edge would refuse this position (one line, as its 400 would say), or null. */
export function positionProblem(p: unknown): string | null {
  const r = positionSchema.safeParse(p);
  if (r.success) return null;
  const issue = r.error.issues[0];
  const where = issue?.path.length ? `position.${issue.path.join(".")}` : "position";
  return `${where}: ${issue?.message ?? "invalid"}`;
}

const metaSchema = z.record(z.string(), z.unknown());

/** Free-form, but short and printable: "rover" | "browser" | "base" | anything else. */
export const kindSchema = z
  .string()
  .min(1)
  .max(32)
  .regex(/^[A-Za-z0-9._-]+$/, "must match [A-Za-z0-9._-]{1,32}");

export const joinBodySchema = z
  .object({
    kind: kindSchema.optional(),
    meta: metaSchema.optional(),
    position: positionSchema.optional(),
  })
  .strict() satisfies z.ZodType<JoinBody, unknown>;
