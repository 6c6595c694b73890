/**
 * The inter-worker path on its own (docs/benchmarks.md "Workers"): one BrokerHost with the embedded broker, as the
 * primary of `herald serve --workers N` runs it, and N WorkerBrokers over its Unix socket, as the workers hold them,
 * all in this process. Worker 1 publishes M messages on one channel every worker subscribed, in bursts of B awaited
 * together; the figure is publications per second delivered to every worker, and the publish round trip alone.
 *   node dist/bench/workers-link.js [--workers 3] [--messages 100000] [--burst 100] [--bytes 100]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { MemoryBroker } from '../src/broker/memory.js';
import { BrokerHost } from '../src/cluster/broker-host.js';
import { PrimaryLink } from '../src/cluster/primary-link.js';
import { WorkerBroker } from '../src/cluster/worker-broker.js';
import { createLogger } from '../src/util/log.js';

const { values } = parseArgs({
  options: {
    workers: { type: 'string', default: '3' },
    messages: { type: 'string', default: '100000' },
    burst: { type: 'string', default: '100' },
    bytes: { type: 'string', default: '100' },
  },
});
const workers = Number(values.workers);
const messages = Number(values.messages);
const burst = Number(values.burst);
const data = 'x'.repeat(Number(values.bytes));

const dir = mkdtempSync(join(tmpdir(), 'herald-bench-'));
const socketPath = join(dir, 'workers.sock');
const host = new BrokerHost({
  socketPath,
  broker: new MemoryBroker(),
  log: createLogger('silent'),
  ownMetrics: () => '',
  machine: () => ({ expected: workers, restarts: 0, draining: false }),
});
await host.start();
const counts: number[] = [];
const brokers: WorkerBroker[] = [];
let allDone: () => void = () => undefined;
const done = new Promise<void>((r) => (allDone = r));
for (let i = 0; i < workers; i++) {
  counts.push(0);
  const b = new WorkerBroker(new PrimaryLink(socketPath, i + 1));
  await b.start({
    onPublication: () => {
      counts[i] = (counts[i] ?? 0) + 1;
      if (counts.every((c) => c >= messages)) allDone();
    },
  });
  await b.subscribe(['bench']);
  brokers.push(b);
}
const publisher = brokers[0]!;
const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
for (let sent = 0; sent < messages; sent += burst) {
  const n = Math.min(burst, messages - sent);
  await Promise.all(Array.from({ length: n }, () => publisher.publish('bench', data)));
}
await done;
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
// The round trip of one publish, alone on the link.
const rtts: number[] = [];
for (let i = 0; i < 2000; i++) {
  const s = process.hrtime.bigint();
  await publisher.publish('quiet', data);
  rtts.push(Number(process.hrtime.bigint() - s) / 1e3);
}
rtts.sort((a, b) => a - b);
const result = {
  workers,
  messages,
  burst,
  bytes: data.length,
  seconds: Number(seconds.toFixed(3)),
  publicationsPerSecond: Math.round(messages / seconds),
  deliveriesPerSecond: Math.round((messages * workers) / seconds),
  cpuMicrosPerPublication: Number(((cpu.user + cpu.system) / messages).toFixed(2)),
  roundTripMicros: { p50: Math.round(rtts[1000] ?? 0), p99: Math.round(rtts[1980] ?? 0) },
};
console.log(JSON.stringify(result));
for (const b of brokers) await b.close();
await host.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
