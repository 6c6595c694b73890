/**
 * Reconnect delays: exponential backoff with "full jitter".
 *
 * Source: Marc Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015
 * (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/):
 *   sleep = random_between(0, min(cap, base * 2 ** attempt))
 * Full jitter spreads the clients of a restarted server evenly over the whole window, so they do not come back in
 * synchronized waves; the post measures it as the variant with the least total work and close to the fastest.
 */
export function fullJitterDelay(attempt: number, baseMs: number, capMs: number, random: () => number): number {
  // 2 ** 31 already exceeds any sensible cap; clamping the exponent keeps the product finite.
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 31));
  return Math.floor(random() * ceiling);
}
