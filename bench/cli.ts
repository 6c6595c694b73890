/**
 * `herald bench`: the project's own load generator. See docs/benchmarks.md for the scenarios and their commands.
 * Progress goes to stderr, the report (or --json) to stdout. Ctrl-C and --max-time stop the run; the server the
 * bench spawned and its worker processes are always stopped.
 */
import { BENCH_USAGE, BenchUsageError, parseBenchArgs, type BenchOptions } from './options.js';
import { formatReport } from './report.js';
import { runBench, type CleanupHooks } from './run.js';
import { COMPARE_USAGE, compareCommand } from './compare.js';
import { presenceBenchCommand } from './presence.js';
import { formatIdleFanout, runIdleFanout } from './idle-fanout.js';

export async function benchCommand(argv: string[], env: Record<string, string | undefined> = {}): Promise<number> {
  if (argv[0] === 'presence') return presenceBenchCommand(argv.slice(1));
  if (argv.includes('--compare')) {
    try {
      return await compareCommand(argv);
    } catch (err) {
      if (!(err instanceof BenchUsageError) && !(err instanceof TypeError)) throw err;
      process.stderr.write(`herald bench --compare: ${err.message}\n${COMPARE_USAGE}`);
      return 2;
    }
  }
  let o: BenchOptions;
  try {
    o = parseBenchArgs(argv, env);
  } catch (err) {
    if (!(err instanceof BenchUsageError)) throw err;
    if (err.message === '') {
      process.stdout.write(BENCH_USAGE);
      return 0;
    }
    process.stderr.write(`herald bench: ${err.message}\n${BENCH_USAGE}`);
    return 2;
  }
  const controller = new AbortController();
  const hooks: CleanupHooks = {};
  const onSignal = (): void => controller.abort(new Error('interrupted'));
  const onExit = (): void => hooks.killNow?.();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.on('exit', onExit);
  const timer = setTimeout(() => controller.abort(new Error(`--max-time ${o.maxTimeMs / 1000} s reached`)), o.maxTimeMs);
  const progress = o.quiet ? () => undefined : (line: string) => process.stderr.write(`[bench] ${line}\n`);
  try {
    if (o.scenario === 'idle-fanout') {
      const r = await runIdleFanout(o, progress, controller.signal, hooks);
      process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : formatIdleFanout(r));
      return r.stoppedEarly === undefined && r.rows.length === 1 + 2 * o.rounds ? 0 : 1;
    }
    const result = await runBench(o, progress, controller.signal, hooks);
    process.stdout.write(o.json ? JSON.stringify(result, null, 2) + '\n' : formatReport(result));
    if (result.stoppedEarly) return 1;
    return result.connections.held > 0 ? 0 : 1;
  } finally {
    clearTimeout(timer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
  }
}
