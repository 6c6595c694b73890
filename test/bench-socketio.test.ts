/**
 * The side-by-side harness's Socket.IO (bench/socketio-server.ts, started by bench/socketio-process.ts): it starts
 * a primary and two cluster workers, a socket.io-client subscriber gets one message published over HTTP, a small
 * bench run spread over both workers loses nothing, and stopping it leaves no process behind. The comparison
 * itself is not a test (docs/benchmarks.md has its command).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { io } from 'socket.io-client';
import { parseBenchArgs } from '../bench/options.js';
import { runBench } from '../bench/run.js';
import { startSocketIo } from '../bench/socketio-process.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('the harness Socket.IO starts on two workers, a socket.io-client gets a published message, and it stops completely', async () => {
  const server = await startSocketIo(2);
  const pids = server.pids();
  try {
    assert.equal(pids.length, 3, `primary and two workers: ${pids.join(' ')}`);
    const client = io(server.url, { transports: ['websocket'], reconnection: false, forceNew: true, query: { channel: 'one' } });
    try {
      const got = new Promise<unknown>((resolve, reject) => {
        client.on('message', resolve);
        client.on('connect_error', reject);
        setTimeout(() => reject(new Error('no message within 10 s')), 10_000).unref();
      });
      await new Promise<void>((resolve, reject) => {
        client.on('connect', resolve);
        client.on('connect_error', reject);
      });
      const res = await fetch(`${server.url}/api/publish`, { method: 'POST', body: JSON.stringify({ channel: 'one', data: 'hello io' }) });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-length'), String((await res.text()).length));
      assert.equal(await got, 'hello io');
      const bad = await fetch(`${server.url}/api/publish`, { method: 'POST', body: '{"channel":1}' });
      await bad.arrayBuffer();
      assert.equal(bad.status, 400);
    } finally {
      client.disconnect();
    }
  } finally {
    await server.stop();
  }
  for (const pid of pids) assert.equal(alive(pid), false, `Socket.IO process ${pid} still running`);
});

test('a small bench run against the harness Socket.IO reaches subscribers on both workers with nothing lost', async () => {
  const server = await startSocketIo(2);
  try {
    const o = parseBenchArgs(['--url', server.url, '-n', '20', '--channels', '2', '--rate', '20', '--duration', '1',
      '--settle', '0', '--drain', '10', '--quiet']);
    o.target = 'socketio';
    o.serverPids = server.pids();
    const r = await runBench(o, () => undefined, new AbortController().signal);
    assert.equal(r.connections.held, 20, JSON.stringify(r.connections.errors));
    const step = r.steps[0]!;
    assert.equal(step.published.ok, 20, 'every publish accepted');
    // The cluster hands connections to the two workers in turn, so a message must cross the adapter to reach them all.
    assert.equal(step.deliveries.received, 20 * 10, 'each message reaches the 10 subscribers of its channel');
    assert.equal(step.deliveries.duplicates, 0);
    assert.ok(step.cpuPercent.server !== undefined && step.cpuPercent.workers >= 0, 'server and generator CPU measured');
  } finally {
    await server.stop();
  }
});
