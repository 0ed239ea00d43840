// Everything shared by the edge, the rover agent and the browser console.
export * from "./client.ts";
export * from "./errors.ts";
export * from "./link-header.ts";
export * from "./protocol.ts";
export * from "./sdpfrag.ts";
export * from "./token.ts";
