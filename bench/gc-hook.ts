/**
 * Preloaded into a server the bench spawns (`node --expose-gc --import .../gc-hook.js bin/herald.js serve`):
 * - SIGUSR2 runs a full garbage collection, so the bench can also measure RSS without the garbage that happens to
 *   be waiting for the next collection;
 * - the server exits when the bench that started it is gone (even SIGKILLed), so no server outlives its bench.
 * Nothing else in the server changes.
 */
process.on('SIGUSR2', () => {
  globalThis.gc?.();
});

const parent = process.ppid;
setInterval(() => {
  // Re-parenting (to init or a subreaper) means the bench died without stopping us.
  if (process.ppid !== parent) process.kill(process.pid, 'SIGTERM');
}, 1000).unref();
