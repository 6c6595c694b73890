/**
 * The bench's clock: microseconds of the system's monotonic clock (CLOCK_MONOTONIC via process.hrtime). It is the
 * same clock in every process of the machine, so a publisher's timestamp can be compared with a subscriber worker's
 * receive time without wall-clock jumps.
 */
export function nowUs(): number {
  const t = process.hrtime();
  return t[0] * 1e6 + Math.floor(t[1] / 1e3);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
