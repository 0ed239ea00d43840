/**
 * Build-time stand-in for zod in the console bundle (see vite.config.ts). shared/protocol.ts
 * declares its schemas at module level; the console only needs that module's constants and types,
 * and real zod would triple the bundle. Building a schema yields an inert chainable value;
 * validating with one throws, so a future use cannot pass silently.
 */
const refuse = (): never => {
  throw new Error("zod schemas are not available in the console bundle");
};
const VALIDATORS = new Set([
  "parse",
  "safeParse",
  "parseAsync",
  "safeParseAsync",
  "decode",
  "encode",
]);
const inert: unknown = new Proxy(() => inert, {
  get: (_t, key) => (typeof key === "string" && VALIDATORS.has(key) ? refuse : inert),
  apply: () => inert,
});
export const z = inert;
export default inert;
