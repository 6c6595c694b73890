/** A Herald node on the Redis broker: wiring, plain PUBLISH from outside, Redis down at start, the CLI's --broker. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { eventually, openStream, publish, startServer, type TestServer } from './helpers/server.js';
import { freePort, startNodeOnRedis, startRedis, type RedisProcess } from './helpers/redis.js';

const run = promisify(execFile);
let redis: RedisProcess;
let node: TestServer;

before(async () => {
  redis = await startRedis();
  node = await startNodeOnRedis(redis.url, { redisTimeoutMs: 1000, redisProbeIntervalMs: 200 });
});
after(async () => {
  await node?.close();
  await redis?.stop();
});

test('the node picks the Redis broker from config and is ready', async () => {
  assert.equal(node.server.node.broker.kind, 'redis');
  const res = await fetch(`${node.url}/readyz`);
  assert.equal(res.status, 200);
});

test('API publish and a plain PUBLISH from redis-cli both reach a /sub stream, verbatim', async () => {
  const stream = await openStream(`${node.url}/sub?channel=news`);
  assert.equal(stream.status, 200);
  assert.equal((await publish(node.url, { channel: 'news', data: 'via api' })).status, 200);
  redis.cli('PUBLISH', 'news', 'via redis-cli "quoted" ☃');
  assert.deepEqual(await stream.waitLines(2), [
    '["message","news","via api"]',
    '["message","news","via redis-cli \\"quoted\\" ☃"]',
  ]);
  stream.close();
});

test('herald publish --broker publishes straight to Redis', async () => {
  const stream = await openStream(`${node.url}/sub?channel=cli`);
  const { stdout } = await run(process.execPath, ['bin/herald.js', 'publish', 'cli', 'from the CLI', '--broker', redis.url]);
  assert.match(stdout, /"id"/);
  assert.deepEqual(await stream.waitLines(1), ['["message","cli","from the CLI"]']);
  stream.close();
});

test('Redis down at start: node alive, not ready, publish 503 at once; ready once Redis is up', async () => {
  const port = await freePort();
  const down = await startServer({ broker: `redis://127.0.0.1:${port}`, redisTimeoutMs: 500, redisProbeIntervalMs: 100, brokerWaitMs: 0 });
  let late: RedisProcess | undefined;
  try {
    assert.equal((await fetch(`${down.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${down.url}/readyz`)).status, 503);
    const t0 = Date.now();
    const res = await publish(down.url, { channel: 'x', data: 'y' });
    assert.equal(res.status, 503);
    assert.ok(Date.now() - t0 < 250, `publish took ${Date.now() - t0} ms (the timeout is 500)`);
    const sub = await openStream(`${down.url}/sub?channel=x`);
    assert.equal(sub.status, 503, 'subscribing while Redis is down must fail, not hang');

    late = await startRedis({ port });
    await eventually(() => down.server.node.isReady(), 8000, 'node ready after Redis came up');
    assert.equal((await fetch(`${down.url}/readyz`)).status, 200);
    const stream = await openStream(`${down.url}/sub?channel=x`);
    assert.equal(stream.status, 200);
    late.cli('PUBLISH', 'x', 'hello');
    assert.deepEqual(await stream.waitLines(1), ['["message","x","hello"]']);
    stream.close();
  } finally {
    await down.close();
    await late?.stop();
  }
});
