/**
 * Full-jitter exponential backoff: a delay drawn uniformly from [0, min(cap, base * 2^attempt)) (AWS Architecture
 * Blog, "Exponential Backoff And Jitter", 2015). Used by every Redis reconnect loop of a node.
 *
 * The cap is 1 s: a node tries its Redis at most about twice a second through an outage (two connections per
 * attempt, cheap for Redis), and is back within a second of Redis' return, which is what its clients wait for
 * (docs/reliability.md, "The SDK after an outage").
 */
export const RECONNECT_BASE_MS = 50;
export const RECONNECT_CAP_MS = 1000;

export function reconnectDelayMs(attempt: number): number {
  return Math.random() * Math.min(RECONNECT_CAP_MS, RECONNECT_BASE_MS * 2 ** attempt);
}
