/**
 * The signals that stop a roverlink process cleanly: Ctrl-C, a supervisor's SIGTERM, and SIGHUP
 * (its terminal closed, an SSH session lost). Unhandled, SIGHUP killed the process at once: a
 * rover left without writing its figures, and `roverlink edge` left wrangler and workerd running
 * with the secrets file. Each is handled once: a second one has its default effect.
 */
export const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** Call `fn` on the first stop signal; returns the function that stops listening. */
export function onStopSignal(fn: () => void): () => void {
  for (const s of STOP_SIGNALS) process.once(s, fn);
  return () => {
    for (const s of STOP_SIGNALS) process.off(s, fn);
  };
}
