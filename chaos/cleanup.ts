/**
 * Everything a chaos run starts registers here how to kill it, synchronously, so it is gone however the run ends:
 * normally, by an error, or by Ctrl-C (SIGINT) or SIGTERM. (Redis processes are also killed by test/helpers/redis.ts'
 * own exit hook.)
 */
const cleanups: (() => void)[] = [];
let installed = false;

function runAll(): void {
  for (const f of cleanups.splice(0).reverse()) {
    try {
      f();
    } catch {
      /* already gone */
    }
  }
}

export function onCleanup(f: () => void): void {
  cleanups.push(f);
  if (installed) return;
  installed = true;
  process.on('exit', runAll);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      console.error(`\nchaos: ${signal}, stopping everything it started`);
      runAll();
      process.exit(130);
    });
  }
}
