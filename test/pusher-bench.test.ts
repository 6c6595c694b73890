/**
 * `herald bench --transport pusher` (issue 11): the load generator drives /app/{key} like /ws, with a small N. Only
 * consistency is checked (everything held, nothing lost or doubled); speed is for docs/benchmarks.md.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseBenchArgs } from '../bench/options.js';
import { runBench } from '../bench/run.js';
import { eventually, startServer, TEST_API_KEY } from './helpers/server.js';

test('bench --transport pusher holds 40 Pusher connections and every message reaches each once', async () => {
  const server = await startServer();
  try {
    const r = await runBench(
      parseBenchArgs(['--url', server.url, '-n', '40', '--channels', '4', '--rate', '40', '--duration', '2', '--settle', '0',
        '--drain', '15', '--api-key', TEST_API_KEY, '--transport', 'pusher', '--quiet']),
      () => undefined,
      new AbortController().signal,
    );
    assert.equal(r.connections.held, 40, JSON.stringify(r.connections.errors));
    assert.equal(server.server.node.sessionsByTransport()['pusher'] !== undefined, true);
    const step = r.steps[0]!;
    assert.equal(step.deliveries.expected, 80 * 10, 'each message reaches the 10 Pusher subscribers of its channel');
    assert.equal(step.deliveries.received, step.deliveries.expected);
    assert.equal(step.deliveries.lost, 0);
    assert.equal(step.deliveries.duplicates, 0);
    await eventually(() => server.server.node.sessionCount() === 0, 5000, 'the bench to close its connections');
  } finally {
    await server.close();
  }
});

test('bench refuses an unknown transport', () => {
  assert.throws(() => parseBenchArgs(['--transport', 'mqtt']), /--transport must be sub, sse, ws or pusher/);
});
