import { DurableObject } from "cloudflare:workers";
import { Hono } from "hono";

const app = new Hono();
app.get("/healthz", (c) => c.text("ok"));
export default app;
export class Room extends DurableObject {}
