/** Agents in tests: one made for a test edge, and waiting for its events (typed by AgentEvents). */
import { Agent, type AgentEvents, type AgentOptions } from "../../rover/agent.ts";
import { mintToken } from "../../shared/token.ts";

/** An agent (not started) with a token for `id` in `room` minted with `secret`; no network watch. */
export async function testAgent(secret: string, o: Omit<AgentOptions, "token">): Promise<Agent> {
  const token = await mintToken({ secret, sub: o.id, room: o.room, ttlSeconds: 600 });
  return new Agent({ watchNetwork: false, ...o, token });
}

/** The arguments of `agent`'s next `event` for which `pred` holds; rejects after `ms`. */
export function nextEvent<K extends keyof AgentEvents>(
  agent: Agent,
  event: K,
  pred: (...a: AgentEvents[K]) => boolean = () => true,
  ms = 20_000,
): Promise<AgentEvents[K]> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      agent.off(event, on as never);
      reject(new Error(`timed out waiting for ${event}`));
    }, ms);
    const on = (...args: AgentEvents[K]) => {
      if (!pred(...args)) return;
      clearTimeout(t);
      agent.off(event, on as never);
      resolve(args);
    };
    // `as never`: the emitter's listener type is a conditional on K that TypeScript cannot
    // resolve inside a generic function; callers get the precise types.
    agent.on(event, on as never);
  });
}

/** The first argument of `agent`'s next `event` for which `pred` holds. */
export async function waitFor<K extends keyof AgentEvents>(
  agent: Agent,
  event: K,
  pred?: (...a: AgentEvents[K]) => boolean,
  ms?: number,
): Promise<AgentEvents[K][0]> {
  return (await nextEvent(agent, event, pred, ms))[0];
}
