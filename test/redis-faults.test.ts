/**
 * Redis failures seen from a Herald node: a killed and restarted redis-server, and a subscriber connection that
 * silently stops delivering. Nothing may hang; readiness must flip and recover; subscriptions must come back.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Collector } from './helpers/broker-conformance.js';
import { RedisBroker } from '../src/broker/redis.js';
import { createLogger } from '../src/util/log.js';
import { eventually, openStream, publish } from './helpers/server.js';
import { startNodeOnRedis, startRedis, type RedisProcess } from './helpers/redis.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';

const TIMEOUT_MS = 1000;
const PROBE_MS = 200;
let redis: RedisProcess;

before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

async function readyz(url: string): Promise<number> {
  return (await fetch(`${url}/readyz`)).status;
}

test('redis-server killed and restarted under a publisher: nothing hangs, readiness flips and recovers, subscriptions come back', async () => {
  const node = await startNodeOnRedis(redis.url, { redisTimeoutMs: TIMEOUT_MS, redisProbeIntervalMs: PROBE_MS });
  try {
    const streams = await Promise.all(['a', 'a', 'b'].map((c) => openStream(`${node.url}/sub?channel=${c}`)));
    const changes: boolean[] = [];
    const readiness = setInterval(() => {
      const r = node.server.node.isReady();
      if (changes[changes.length - 1] !== r) changes.push(r);
    }, 10);

    // A publisher that keeps going through the outage; every call must answer within the timeout.
    let running = true;
    let slowest = 0;
    const statuses = new Map<number, number>();
    const publisher = (async () => {
      for (let i = 0; running; i++) {
        const t0 = Date.now();
        const res = await publish(node.url, { channels: ['a', 'b'], data: `m${i}` });
        slowest = Math.max(slowest, Date.now() - t0);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    await new Promise((r) => setTimeout(r, 100));
    await redis.kill();
    await eventually(() => !node.server.node.isReady(), 3000, 'not ready after Redis died');
    assert.equal(await readyz(node.url), 503);
    await new Promise((r) => setTimeout(r, 300));
    await redis.restart();
    await eventually(() => node.server.node.isReady(), 8000, 'ready again after Redis came back');
    assert.equal(await readyz(node.url), 200);
    await new Promise((r) => setTimeout(r, 100));
    running = false;
    await publisher;
    clearInterval(readiness);

    assert.deepEqual(changes.slice(0, 3), [true, false, true]);
    assert.ok((statuses.get(200) ?? 0) > 0 && (statuses.get(503) ?? 0) > 0, `statuses ${JSON.stringify([...statuses])}`);
    // 504 outcome_unknown: a publish that was in flight when Redis died (it may have run); 503: refused, not sent.
    assert.ok([...statuses.keys()].every((s) => s === 200 || s === 503 || s === 504), `only 200, 503 or 504: ${JSON.stringify([...statuses])}`);
    assert.ok(slowest < TIMEOUT_MS + 1000, `a publish took ${slowest} ms`);

    // The streams never closed, and their channels were resubscribed: a plain PUBLISH reaches them now.
    const before = streams.map((s) => s.lines.length);
    redis.cli('PUBLISH', 'a', 'after-restart');
    redis.cli('PUBLISH', 'b', 'after-restart');
    await Promise.all(streams.map((s, i) => s.waitLines((before[i] ?? 0) + 1)));
    for (const s of streams) assert.match(s.lines[s.lines.length - 1] ?? '', /after-restart/);
    assert.equal(node.server.node.broker.subscribedCount(), 2);
    for (const s of streams) s.close();
  } finally {
    await node.close();
  }
});

test('a subscriber connection that silently stops delivering is found by the probe, reported, and repaired', async () => {
  const proxy = await startTcpProxy(redis.port);
  const node = await startNodeOnRedis(`redis://127.0.0.1:${proxy.port}`, {
    redisTimeoutMs: TIMEOUT_MS,
    redisProbeIntervalMs: PROBE_MS,
  });
  try {
    const stream = await openStream(`${node.url}/sub?channel=stall`);
    redis.cli('PUBLISH', 'stall', 'before');
    await stream.waitLines(1);

    // No socket event: only the probe can tell. New connections hang too, so the node stays unready until thaw().
    proxy.freeze();
    const t0 = Date.now();
    await eventually(() => !node.server.node.isReady(), 4000, 'stall detected');
    const detectedMs = Date.now() - t0;
    assert.ok(detectedMs <= PROBE_MS + TIMEOUT_MS + 2000, `detected after ${detectedMs} ms`);
    assert.equal(await readyz(node.url), 503);
    assert.match(await (await fetch(`${node.url}/metrics`)).text(), /^herald_broker_ready 0$/m);
    const p0 = Date.now();
    assert.equal((await publish(node.url, { channel: 'stall', data: 'x' })).status, 503);
    assert.ok(Date.now() - p0 < TIMEOUT_MS / 2, 'publish while unready answers at once, without waiting for a timeout');

    proxy.thaw();
    await eventually(() => node.server.node.isReady(), 5000, 'repaired by reconnecting');
    redis.cli('PUBLISH', 'stall', 'after');
    // The channel keeps no history here, so the client is told it may have missed messages, then live goes on.
    assert.deepEqual(await stream.waitLines(3), [
      '["message","stall","before"]',
      '["reload","stall","broker_lost",""]',
      '["message","stall","after"]',
    ]);
    stream.close();
  } finally {
    await node.close();
    await proxy.close();
  }
});

test('the broker tells its handler when the connection is lost and when it is back with subscriptions restored', async () => {
  const broker = new RedisBroker({ url: redis.url, timeoutMs: TIMEOUT_MS, probeIntervalMs: PROBE_MS, log: createLogger('silent') });
  const seen = new Collector();
  await broker.start(seen);
  await eventually(() => broker.isReady(), 10_000, 'ready');
  try {
    await broker.subscribe(['told']);
    await redis.restart();
    await eventually(() => seen.changes.length >= 2, 8000, 'lost and regained');
    assert.deepEqual(seen.changes, [false, true]);
    assert.equal(broker.isReady(), true);
    redis.cli('PUBLISH', 'told', 'back');
    assert.equal((await seen.waitFor('told', 1))[0]?.data, 'back');
  } finally {
    await broker.close();
  }
});

test('close() during a connection attempt ends the attempt and leaves no connection open', async () => {
  const proxy = await startTcpProxy(redis.port);
  proxy.freeze(); // connects succeed at TCP level, then nothing answers: the attempt hangs until its timeout
  const broker = new RedisBroker({ url: `redis://127.0.0.1:${proxy.port}`, timeoutMs: 5000, probeIntervalMs: PROBE_MS, log: createLogger('silent') });
  try {
    const started = broker.start(new Collector());
    await eventually(() => proxy.open > 0, 3000, 'attempt under way');
    await broker.close();
    await eventually(() => proxy.open === 0, 3000, 'attempt connections closed');
    await started;
    assert.equal(broker.isReady(), false);
  } finally {
    await proxy.close();
  }
});
