/**
 * Preloaded into a server the bench spawns (`node --expose-gc --import .../gc-hook.js bin/herald.js serve`):
 * SIGUSR2 runs a full garbage collection, so the bench can also measure RSS without the garbage that happens to be
 * waiting for the next collection. Nothing else in the server changes.
 */
process.on('SIGUSR2', () => {
  globalThis.gc?.();
});
