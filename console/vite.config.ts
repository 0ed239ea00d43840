import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The console is a static single page served by the edge (Workers static assets, see
// wrangler.toml [assets]). It imports ../shared (the link modules in shared/link/ too), so the
// dev server must be allowed to read the repository root.
const root = fileURLToPath(new URL(".", import.meta.url));
const repo = fileURLToPath(new URL("..", import.meta.url));

export default defineConfig({
  root,
  base: "./",
  // public/_headers: the console's security headers (CSP), copied as-is into dist.
  publicDir: "public",
  build: {
    outDir: process.env.CONSOLE_OUT_DIR ?? "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: true,
  },
  server: { fs: { allow: [repo] } },
});
