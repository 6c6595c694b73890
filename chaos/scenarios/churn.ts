/**
 * Churn: for --duration (default ten minutes), two churn processes (churner.ts) open and drop connections of twelve
 * kinds (FIN, RST, requests cut in the middle, streams never read, polls answered and abandoned, SSE, WebSockets
 * closed and reset, publishes, publishers that vanish, silent sockets) beside the checked subscribers. Afterwards
 * sessions, channels, broker subscriptions and descriptors must be back at their start, and RSS is reported.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sleep } from '../../bench/clock.js';
import { onCleanup } from '../cleanup.js';
import type { Ctx, StreamScenario } from '../harness.js';
import type { ChaosOptions } from '../options.js';

const CHURNER = fileURLToPath(new URL('../churner.js', import.meta.url));
const PROCESSES = 2;
const CONCURRENCY = 150;

export function churn(opts: ChaosOptions): StreamScenario {
  return {
    broker: 'redis',
    nodes: 1,
    async fault(ctx: Ctx) {
      const node = ctx.nodes[0]!;
      const rssStart = node.sample()?.rss ?? 0;
      const procs: ChildProcess[] = [];
      for (let i = 0; i < PROCESSES; i++) {
        const p = fork(CHURNER, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        onCleanup(() => p.kill('SIGKILL'));
        procs.push(p);
      }
      const counts = procs.map(
        (p) =>
          new Promise<Record<string, number>>((resolve) => {
            p.on('message', (m: { counts: Record<string, number> }) => resolve(m.counts));
            p.once('exit', () => resolve({}));
          }),
      );
      for (const p of procs) p.send({ type: 'start', url: node.url, concurrency: CONCURRENCY });
      const churnMs = Math.max(1000, opts.durationMs - 6000);
      ctx.notes.push(`${ctx.at()} churning for ${(churnMs / 1000).toFixed(0)} s: ${PROCESSES} processes x ${CONCURRENCY} connections at a time`);
      await sleep(churnMs);
      for (const p of procs) p.send({ type: 'stop' });
      const merged: Record<string, number> = {};
      for (const c of await Promise.all(counts)) for (const [k, n] of Object.entries(c)) merged[k] = (merged[k] ?? 0) + n;
      const total = Object.values(merged).reduce((a, b) => a + b, 0);
      ctx.extra['churn connections'] = `${total}: ${Object.entries(merged).map(([k, n]) => `${k} ${n}`).join(', ')}`;
      ctx.extra['RSS at churn start'] = `${(rssStart / 1048576).toFixed(0)} MB`;
      ctx.extra['peak RSS during churn'] = `${(node.peakRss / 1048576).toFixed(0)} MB`;
      if (total === 0) ctx.failures.push('churn: no churn connection was made');
      return undefined;
    },
  };
}
