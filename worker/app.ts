/**
 * The edge's HTTP surface: one Hono app. CORS on every route, bearer auth and rate limits
 * on /v1, routes per resource, and one error handler that renders RFC 9457 problem+json.
 */
import { Hono } from "hono";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { ALLOWED_REQUEST_HEADERS, CONTENT_TYPE, EXPOSED_HEADERS } from "../shared/protocol.ts";
import { requireToken } from "./auth.ts";
import { configProblems } from "./config-check.ts";
import type { AppEnv } from "./context.ts";
import { listVar } from "./env.ts";
import { EdgeProblem, problem, problemResponse } from "./problem.ts";
import { rateLimit } from "./rate-limit.ts";
import { iceServersRoutes } from "./routes/ice-servers.ts";
import { peersRoutes } from "./routes/peers.ts";
import { offerRoutes, sessionRoutes } from "./routes/sessions.ts";

export const app = new Hono<AppEnv>();

// OPTIONS (the CORS middleware answers it): also say what the session routes accept (WHIP,
// RFC 9725 §4.1).
app.use("*", async (c, next) => {
  await next();
  if (c.req.method === "OPTIONS" && c.res.status === 204) {
    c.res.headers.set("Accept-Post", CONTENT_TYPE.sdp);
    c.res.headers.set("Accept-Patch", CONTENT_TYPE.sdpfrag);
  }
});

app.use(
  "*",
  cors({
    origin: (origin, c) => {
      const allowed = listVar((c.env as AppEnv["Bindings"]).CORS_ORIGINS);
      if (allowed.length === 0 || allowed.includes("*")) return "*";
      return allowed.includes(origin) ? origin : null;
    },
    allowMethods: ["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
    allowHeaders: [...ALLOWED_REQUEST_HEADERS],
    exposeHeaders: [...EXPOSED_HEADERS],
    maxAge: 600,
  }),
);

app.get("/healthz", (c) => c.text("ok", 200, { "Cache-Control": "no-store" }));

// Readiness, an extension (docs/protocol.md): /healthz says the Worker runs (the contract fixes
// its 200); this says whether it can serve /v1 as configured, for a deploy's check and monitors.
app.get("/readyz", (c) => {
  const { fatal, ignored } = configProblems(c.env, c.req.url);
  if (fatal.length > 0) throw problem(503, "Not configured", fatal.join("; "), { retryAfter: 60 });
  return c.json({ ready: true, ignored }, 200, { "Cache-Control": "no-store" });
});

app.use("/v1/*", requireToken);
// Per room and subject, and per client address; presence apart (rate-limit.ts).
app.use("/v1/*", rateLimit);

app.route("/v1/ice-servers", iceServersRoutes);
app.route("/v1/rooms/:room/peers", peersRoutes);
app.route("/v1/rooms/:room/peers", offerRoutes);
app.route("/v1/rooms/:room/sessions", sessionRoutes);

// Known paths, wrong method: 405 with Allow (Hono alone would say 404). Hono answers HEAD
// wherever GET is routed, so Allow names it there (RFC 9110 §9.3.2).
const ALLOW: [string, string][] = [
  ["/healthz", "GET, HEAD"],
  ["/readyz", "GET, HEAD"],
  ["/v1/ice-servers", "GET, HEAD"],
  ["/v1/rooms/:room/peers", "GET, HEAD, POST"],
  ["/v1/rooms/:room/peers/:id", "PATCH, DELETE"],
  ["/v1/rooms/:room/peers/:id/events", "GET, HEAD"],
  ["/v1/rooms/:room/peers/:target/sessions", "POST"],
  ["/v1/rooms/:room/sessions/:sid", "GET, HEAD, POST, PATCH, DELETE"],
  ["/v1/rooms/:room/sessions/:sid/answer", "POST"],
];
for (const [path, allow] of ALLOW) {
  app.all(path, () => {
    throw new EdgeProblem(
      { status: 405, title: "Method not allowed", detail: `allowed: ${allow}` },
      { Allow: allow },
    );
  });
}

app.notFound(() => problemResponse({ status: 404, title: "Not found", detail: "no such route" }));

app.onError((err, c) => {
  let res: Response;
  if (err instanceof EdgeProblem) {
    res = problemResponse(err.problem, err.headers);
  } else if (err instanceof HTTPException) {
    res = problemResponse({
      status: err.status,
      title: "Error",
      detail: err.message || "request failed",
    });
  } else {
    console.error("edge error", err instanceof Error ? `${err.name}: ${err.message}` : String(err));
    res = problemResponse({
      status: 500,
      title: "Internal error",
      detail: "the edge failed; try again",
    });
  }
  // Errors skip the rest of the CORS middleware: browsers must still read them.
  const origin = c.res.headers.get("Access-Control-Allow-Origin");
  if (origin) res.headers.set("Access-Control-Allow-Origin", origin);
  res.headers.set("Access-Control-Expose-Headers", EXPOSED_HEADERS.join(", "));
  // Vary: Origin comes from the CORS middleware, which still runs after this (an allow-list only).
  return res;
});
