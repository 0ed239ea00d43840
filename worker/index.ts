/** Worker entry: the Hono app (app.ts) and the room Durable Object class (room/room.ts). */
import { app } from "./app.ts";

export { Room } from "./room/room.ts";
export default app;
