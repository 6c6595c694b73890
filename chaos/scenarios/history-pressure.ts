/**
 * History pressure: beside the checked subscribers, 100,000 distinct channels each get a message of ~1 KB with
 * history (100 MB in all, above the default historyMaxBytes of 64 MiB). The node's history bytes must stay under
 * the bound the whole time (herald_history_bytes, sampled), and once the history TTL has passed (20 s here) the
 * history and the RSS must come back down.
 */
import { sleep } from '../../bench/clock.js';
import { DEFAULTS } from '../../src/config.js';
import type { Ctx, StreamScenario } from '../harness.js';
import type { ChaosOptions } from '../options.js';

const CHANNELS = 100_000;
const CONCURRENCY = 8;
const BATCH = 100;
const TTL_SECONDS = 20;
const META_TTL_SECONDS = 30;
const PAD = 'x'.repeat(1000);

export function historyPressure(opts: ChaosOptions): StreamScenario {
  let peakBytes = 0;
  let sampler: NodeJS.Timeout | undefined;
  const bound = DEFAULTS.historyMaxBytes;
  return {
    broker: 'memory',
    nodes: 1,
    nodeArgs: ['--history-ttl-seconds', String(TTL_SECONDS), '--history-meta-ttl-seconds', String(META_TTL_SECONDS)],
    async fault(ctx: Ctx) {
      const node = ctx.nodes[0]!;
      sampler = setInterval(() => {
        node.metrics().then((m) => (peakBytes = Math.max(peakBytes, m['herald_history_bytes'] ?? 0)), () => undefined);
      }, 250);
      const began = Date.now();
      let next = 0;
      let failed = 0;
      // `{"channels":[...]}` publishes one message to up to 100 channels (maxChannelsPerConnection) in one request:
      // the flood takes seconds, not minutes, so the bound is tested while every channel is still inside its TTL.
      const worker = async (): Promise<void> => {
        while (next < CHANNELS) {
          const first = next;
          next = Math.min(CHANNELS, next + BATCH);
          const channels = Array.from({ length: next - first }, (_, k) => `hp.${first + k}`);
          const ok = await fetch(`${node.url}/api/publish`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ channels, data: `h ${PAD}` }),
          }).then((r) => r.arrayBuffer().then(() => r.ok), () => false);
          if (!ok) failed += channels.length;
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      const took = Date.now() - began;
      const m = await node.metrics();
      ctx.notes.push(`${ctx.at()} published to ${CHANNELS} distinct channels in ${(took / 1000).toFixed(1)} s (${failed} failed)`);
      ctx.extra['history bound (historyMaxBytes)'] = `${(bound / 1048576).toFixed(0)} MiB`;
      ctx.extra['history channels after the flood'] = m['herald_history_channels'] ?? NaN;
      ctx.extra['history evictions'] = m['herald_history_evictions_total'] ?? NaN;
      ctx.extra['RSS after the flood'] = `${((node.sample()?.rss ?? 0) / 1048576).toFixed(0)} MB`;
      if (failed > 0) ctx.failures.push(`history-pressure: ${failed} publishes failed`);
      await sleep(Math.max(0, opts.durationMs / 4));
      return undefined;
    },
    async afterClients(ctx: Ctx) {
      const node = ctx.nodes[0]!;
      ctx.extra['peak history bytes'] = `${(peakBytes / 1048576).toFixed(1)} MiB`;
      if (peakBytes > bound) ctx.failures.push(`history-pressure: history reached ${peakBytes} bytes, over the bound ${bound}`);
      // Wait out the TTLs (the memory broker's sweeper then drops the channels), then look again.
      const deadline = Date.now() + (META_TTL_SECONDS + 30) * 1000;
      let m = await node.metrics();
      while ((m['herald_history_bytes'] ?? 0) > 1 << 20 && Date.now() < deadline) {
        await sleep(1000);
        m = await node.metrics();
      }
      clearInterval(sampler);
      await node.collectGarbage();
      ctx.extra['history bytes after the TTL'] = m['herald_history_bytes'] ?? NaN;
      ctx.extra['history channels after the TTL'] = m['herald_history_channels'] ?? NaN;
      ctx.extra['RSS after the TTL and a GC'] = `${((node.sample()?.rss ?? 0) / 1048576).toFixed(0)} MB`;
      if ((m['herald_history_bytes'] ?? 0) > 1 << 20) ctx.failures.push('history-pressure: history bytes did not return below 1 MiB after the TTL');
    },
  };
}
