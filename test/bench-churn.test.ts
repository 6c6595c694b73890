/**
 * The bench's churn scenario (bench/churn.ts) at a tiny scale: fresh connections come up and are closed while a
 * step publishes, the held subscribers lose nothing, and the harness plans and prints it for every server (Socket.IO
 * in the /ws rows only). Figures are the harness's job (docs/benchmarks.md), not this test's.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareTable, estimateSeconds, planCases, type CompareCase } from '../bench/compare.js';
import { parseBenchArgs } from '../bench/options.js';
import { runBench } from '../bench/run.js';
import { startSocketIo } from '../bench/socketio-process.js';

const CHURN = ['churn', '-n', '20', '--channels', '4', '--rate', '20', '--churn', '20', '--churn-hold', '0.3',
  '--duration', '2', '--settle', '0', '--drain', '5', '--quiet'];

test('churn on a spawned Herald: connections come and go on /ws while nothing held is lost', async () => {
  const o = parseBenchArgs([...CHURN, '--spawn', '--transport', 'ws']);
  const r = await runBench(o, () => undefined, new AbortController().signal);
  const step = r.steps[0]!;
  assert.equal(r.connections.held, 20);
  assert.equal(step.deliveries.lost, 0);
  assert.equal(step.deliveries.received, 40 * 5, 'each message reaches the 5 held subscribers of its channel');
  assert.ok(step.churn, 'churn counted');
  assert.ok(step.churn.live >= 30, `about 40 churn connections came up: ${JSON.stringify(step.churn)}`);
  assert.equal(step.churn.failed, 0, JSON.stringify(step.churn.errors));
  assert.ok(step.serverRssBytes !== undefined && step.serverRssBytes > 0, 'server RSS read at the end of the step');
});

test('churn on the harness Socket.IO: socket.io-client connections come and go while nothing held is lost', async () => {
  const server = await startSocketIo(2);
  try {
    const o = parseBenchArgs([...CHURN, '--url', server.url]);
    o.target = 'socketio';
    o.serverPids = server.pids();
    const r = await runBench(o, () => undefined, new AbortController().signal);
    const step = r.steps[0]!;
    assert.equal(step.deliveries.lost, 0);
    assert.ok(step.churn && step.churn.live >= 30 && step.churn.failed === 0, JSON.stringify(step.churn));
    const cases: CompareCase[] = [{ server: 'socketio', scenario: 'churn', transport: 'ws', connections: 20, result: r }];
    assert.match(compareTable(cases, { startedAt: 'now', scale: 'small', argv: ['--compare'] }),
      /\| churn \/ws 20 \| (\*\*held\*\*|not held): lost 0, late \d+ of 200; churn \d+\/s of 20\/s \(0 failed\)/);
  } finally {
    await server.stop();
  }
});

test('the harness plans churn and idle for every server and transport, Socket.IO on /ws only, and estimates full', () => {
  const cases = planCases(['herald', 'nchan', 'socketio'], ['idle', 'churn'], ['sub', 'sse', 'ws'], 'full');
  const socketio = cases.filter((c) => c.server === 'socketio');
  assert.deepEqual(new Set(socketio.map((c) => c.transport)), new Set(['ws']));
  assert.deepEqual(cases.filter((c) => c.server === 'herald' && c.scenario === 'idle').map((c) => `${c.transport} ${c.connections}`),
    ['sub 15000', 'sub 50000', 'sub 100000', 'sse 15000', 'sse 50000', 'sse 100000', 'ws 15000', 'ws 50000', 'ws 100000']);
  assert.equal(cases.filter((c) => c.scenario === 'churn').length, 3 + 3 + 1);
  assert.ok(estimateSeconds(cases, 'full') > estimateSeconds(planCases(['herald', 'nchan', 'socketio'], ['idle', 'churn'], ['sub', 'sse', 'ws'], 'small'), 'small'));
});
