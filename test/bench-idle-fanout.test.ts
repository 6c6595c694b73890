/**
 * `herald bench idle-fanout` end to end at a small N: its own server, a hot channel measured without, with and again
 * without idle connections on other channels, the server stopped at the end. Only the shape and the counts are
 * checked (both kinds of rows, every delivery arrived); how flat the cost is, is for docs/benchmarks.md.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { IdleFanoutResult } from '../bench/idle-fanout.js';
import { runHerald } from './helpers/cli.js';

test('bench idle-fanout: rows without and with 500 idle connections, every delivery counted, server stopped', async () => {
  const r = await runHerald(['bench', 'idle-fanout', '--spawn', '--idle', '500', '-n', '20', '--rate', '20', '--duration', '1',
    '--settle', '0.2', '--drain', '10', '--source-addresses', '2', '--json', '--quiet'], undefined, 120_000);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout) as IdleFanoutResult;
  assert.equal(result.hot.held, 20, JSON.stringify(result.hot.errors));
  assert.deepEqual(result.rows.map((x) => x.idle), [0, 500, 0], 'idle-free, idle, idle-free again');
  assert.deepEqual(result.rows.map((x) => x.idleHeld), [0, 500, 0], 'the idle connections were held during their row');
  for (const row of result.rows) {
    assert.equal(row.step.published.ok, 20);
    assert.equal(row.step.deliveries.expected, 20 * 20, 'each message reaches the 20 hot subscribers, not the idle ones');
    assert.equal(row.step.deliveries.received, row.step.deliveries.expected);
    assert.ok(row.step.latencyMs.p99 > 0 && row.step.serverCpuUsPerDelivery !== undefined);
  }
  const port = /--port (\d+)/.exec(result.server.command ?? '')?.[1];
  await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'the bench stopped its server');
});

test('bench idle-fanout: the text report has both kinds of rows; bad options exit 2', async () => {
  const r = await runHerald(['bench', 'idle-fanout', '--spawn', '--idle', '50', '-n', '5', '--rate', '10', '--duration', '0.5',
    '--settle', '0', '--drain', '10', '--quiet'], undefined, 120_000);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\| 0 \| 25\/25 \|/m);
  assert.match(r.stdout, /^\| 50 \| 25\/25 \|/m);
  assert.match(r.stdout, /mean of the idle-free rows → mean with 50 idle/);
  const bad = await runHerald(['bench', 'idle-fanout', '--idle', '10']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /needs --spawn/);
  const misplaced = await runHerald(['bench', 'fanout', '--rounds', '2']);
  assert.equal(misplaced.code, 2);
  assert.match(misplaced.stderr, /idle-fanout/);
});
