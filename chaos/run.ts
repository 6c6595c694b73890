/**
 * `npm run chaos -- SCENARIO [options]`: the chaos and soak suite (docs/reliability.md "Chaos suite"). Not part of
 * `npm test`: a scenario runs a thousand subscribers or more for half a minute to ten minutes. Exit code 0 when
 * every check held, 1 when one failed, 2 on a usage error. Every process a scenario starts is killed when it ends,
 * also on failure or Ctrl-C.
 */
import { runStream, type RunResult, type StreamScenario } from './harness.js';
import { parseOptions, USAGE, UsageError, type ChaosOptions } from './options.js';
import { summaryJson, table } from './report.js';
import { churn } from './scenarios/churn.js';
import { clusterFailover, nodeKill, redisKill, redisPause, redisRestart, storm, workerKill } from './scenarios/faults.js';
import { historyPressure } from './scenarios/history-pressure.js';
import { slowConsumers } from './scenarios/slow-consumers.js';

const SCENARIOS: Record<string, (o: ChaosOptions) => StreamScenario> = {
  'redis-restart': () => redisRestart,
  'redis-pause': () => redisPause,
  'redis-kill': () => redisKill,
  'node-kill': () => nodeKill,
  'worker-kill': () => workerKill,
  'cluster-failover': () => clusterFailover,
  storm: () => storm,
  churn,
  'slow-consumers': slowConsumers,
  'history-pressure': historyPressure,
};

async function main(): Promise<number> {
  let opts: ChaosOptions;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stdout.write(USAGE);
      return process.argv.includes('--help') || process.argv.includes('-h') ? 0 : 2;
    }
    console.error(`chaos: ${(err as Error).message}`);
    return 2;
  }
  const make = SCENARIOS[opts.scenario];
  if (!make) {
    console.error(`chaos: unknown scenario ${opts.scenario}\n${USAGE}`);
    return 2;
  }
  const result: RunResult = await runStream(opts.scenario, opts, make(opts));
  console.log(opts.json ? JSON.stringify(summaryJson(result), null, 2) : table(result));
  return result.failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
