/**
 * Idempotency keys on every broker (docs/protocol.md "Retrying a publish"): a publish retried under its key within
 * the window answers the first id with `replayed: true` and delivers nothing again; with and without history; by
 * header, body field, /ws field and `herald publish --idempotency-key`. On Redis the check is inside the Redis
 * Function (KEYS[3] = herald:i:<channel>:<key>), and the old 2-key FCALL still works as documented.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { IdempotencyMemo } from '../src/broker/idempotency-memo.js';
import { MemoryBroker } from '../src/broker/memory.js';
import { keyInSlotOf } from '../src/broker/redis-slot.js';
import { cleanEnv, runHerald, type Finished } from './helpers/cli.js';
import { eventually, openStream, startServer, TEST_API_KEY, type LineStream, type TestServer } from './helpers/server.js';
import { startNodeOnRedis, startRedis, startRedisCluster, type RedisClusterProcesses, type RedisProcess } from './helpers/redis.js';
import { openWs } from './helpers/ws.js';

interface Answer {
  status: number;
  body: { id?: string | null; ids?: (string | null)[]; replayed?: boolean; error?: { code: string; message: string } };
}

async function post(url: string, body: Record<string, unknown>, key?: string): Promise<Answer> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', Authorization: `Bearer ${TEST_API_KEY}` };
  if (key !== undefined) headers['Idempotency-Key'] = key;
  const res = await fetch(`${url}/api/publish`, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

function messages(stream: LineStream): string[] {
  return stream.lines
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as string[])
    .filter((m) => m[0] === 'message')
    .map((m) => m[2] ?? '');
}

/** The checks every broker must pass; `label` names the broker in messages. */
async function checkBroker(node: TestServer, label: string): Promise<void> {
  const channel = `idem-${label}`;
  const plain = `plain:${label}`;
  const sub = await openStream(`${node.url}/sub?channel=${channel}&since=`);
  const subPlain = await openStream(`${node.url}/sub?channel=${plain}`);
  try {
    // With history: the header, then the same key again, then the body field.
    const first = await post(node.url, { channel, data: 'one' }, 'order-1');
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.match(String(first.body.id), /^\d+-/);
    assert.equal(first.body.replayed, undefined);
    const again = await post(node.url, { channel, data: 'one' }, 'order-1');
    assert.deepEqual(again, { status: 200, body: { id: first.body.id, replayed: true } }, `${label}: a retry answers the first id`);
    const byField = await post(node.url, { channel, data: 'one', idempotency_key: 'order-1' });
    assert.deepEqual(byField.body, { id: first.body.id, replayed: true }, `${label}: the body field is the same key`);
    // Another key, and the same key on another channel, are other messages.
    const second = await post(node.url, { channel, data: 'two' }, 'order-2');
    assert.notEqual(second.body.id, first.body.id);
    const elsewhere = await post(node.url, { channel: `${channel}-b`, data: 'one' }, 'order-1');
    assert.equal(elsewhere.body.replayed, undefined, `${label}: keys are per channel`);
    // Several channels: each channel checks its own key.
    const multi = await post(node.url, { channels: [channel, `${channel}-c`], data: 'multi' }, 'order-3');
    const multiAgain = await post(node.url, { channels: [channel, `${channel}-c`], data: 'multi' }, 'order-3');
    assert.deepEqual(multiAgain.body, { ids: multi.body.ids, replayed: true });

    // Without history: nothing to answer but null, still once.
    const p1 = await post(node.url, { channel: plain, data: 'p' }, 'plain-1');
    const p2 = await post(node.url, { channel: plain, data: 'p' }, 'plain-1');
    assert.deepEqual(p1.body, { id: null });
    assert.deepEqual(p2.body, { id: null, replayed: true }, `${label}: no-history publishes are deduplicated too`);

    // Malformed keys and disagreeing sources: 400, nothing published.
    for (const bad of ['', 'has space', 'a:b', 'x'.repeat(129), 'é']) {
      const r = await post(node.url, { channel, data: 'bad', idempotency_key: bad });
      assert.equal(r.status, 400, `${label}: key ${JSON.stringify(bad)} refused`);
    }
    const mixed = await post(node.url, { channel, data: 'bad', idempotency_key: 'a' }, 'b');
    assert.equal(mixed.status, 400);
    assert.match(mixed.body.error?.message ?? '', /differ/);

    // /ws: the field; keys are scoped to the connection's subject (here: none, so to the connection).
    const ws = await openWs(`${node.url}/ws`);
    const w1 = await ws.request('publish', { channel, data: 'ws', idempotency_key: 'order-1' });
    assert.equal(w1.type, 'reply', JSON.stringify(w1));
    assert.equal(w1.result?.['replayed'], undefined, `${label}: a /ws key never matches an API key's`);
    const w2 = await ws.request('publish', { channel, data: 'ws', idempotency_key: 'order-1' });
    assert.deepEqual(w2.result, { id: w1.result?.['id'], replayed: true });
    const wBad = await ws.request('publish', { channel, data: 'ws', idempotency_key: 'a b' });
    assert.equal(wBad.error?.code, 'bad_request', 'a bad key is an error reply, the connection stays');
    ws.close();

    await post(node.url, { channel, data: 'last' });
    await post(node.url, { channel: plain, data: 'last' });
    await eventually(() => messages(sub).includes('last') && messages(subPlain).includes('last'), 5000, 'last messages');
    assert.deepEqual(messages(sub), ['one', 'two', 'multi', 'ws', 'last'], `${label}: each message delivered once`);
    assert.deepEqual(messages(subPlain), ['p', 'last']);
  } finally {
    sub.close();
    subPlain.close();
  }
}

test('memory broker: a retried key answers the same id and delivers once', async () => {
  const node = await startServer({ historySize: 100, namespaces: { plain: { historySize: 0 } } });
  try {
    await checkBroker(node, 'memory');
    const metrics = await (await fetch(`${node.url}/metrics`)).text();
    assert.match(metrics, /^herald_idempotency_keys [1-9]\d*$/m);
    assert.match(metrics, /^herald_publish_replayed_total\{source="api"\} [1-9]/m);
    assert.match(metrics, /^herald_publish_replayed_total\{source="ws"\} 1$/m);
  } finally {
    await node.close();
  }
});

test('memory broker: the key memo is bounded (oldest dropped, counted) and keys expire with the window, without timers', async () => {
  const memo = new IdempotencyMemo(3);
  for (let i = 0; i < 5; i++) memo.remember('c', `k${i}`, `${i}-e`, 1000, 0);
  assert.equal(memo.size(), 3);
  assert.equal(memo.evicted, 2);
  assert.equal(memo.lookup('c', 'k0', 1), undefined);
  assert.equal(memo.lookup('c', 'k4', 1)?.id, '4-e');
  assert.equal(memo.lookup('c', 'k4', 1000), undefined, 'expired at the end of the window');
  memo.remember('c', 'k5', '5-e', 1000, 2000);
  assert.equal(memo.size(), 1, 'expired entries are dropped by the next insert');
  assert.equal(memo.evicted, 2);

  const broker = new MemoryBroker();
  await broker.start({ onPublication: () => undefined });
  const once = { key: 'w', windowMs: 50 };
  assert.deepEqual(await broker.publish('c', 'x', { idempotency: once }), {});
  assert.deepEqual(await broker.publish('c', 'x', { idempotency: once }), { replayed: true });
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(await broker.publish('c', 'x', { idempotency: once }), {}, 'after the window the key is new again');
  await broker.close();
});

let redis: RedisProcess;
let cluster: RedisClusterProcesses | undefined;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
  await cluster?.stop();
});

test('Redis: the same checks, the key is a Redis key with the window as its expiry, and the 2-key FCALL still works', async () => {
  const node = await startNodeOnRedis(redis.url, {
    historySize: 100,
    namespaces: { plain: { historySize: 0 } },
    idempotencyWindowSeconds: 120,
  });
  try {
    await checkBroker(node, 'redis');
    const stored = redis.cli('GET', 'herald:i:idem-redis:order-1');
    assert.match(stored, /^1-/, 'herald:i:<channel>:<key> holds the id');
    const ttl = Number(redis.cli('PTTL', 'herald:i:idem-redis:order-1'));
    assert.ok(ttl > 100_000 && ttl <= 120_000, `expires with the window (PTTL ${ttl})`);
    // A backend calling the function as documented before idempotency keys: the id, a string, as ever.
    const id = redis.cli('FCALL', 'herald_publish', '2', 'herald:h:old', 'herald:m:old', 'old', 'hello', '100', '120000', '3600000', 'PUBLISH');
    assert.match(id, /^1-[0-9a-z]+$/);
    // And with the optional third key and window: { id, replayed }.
    const args = ['FCALL', 'herald_publish', '3', 'herald:h:old', 'herald:m:old', 'herald:i:old:k', 'old', 'again', '100', '120000', '3600000', 'PUBLISH', '60000'];
    assert.match(redis.cli(...args), /^2-[0-9a-z]+\n0$/);
    assert.match(redis.cli(...args), /^2-[0-9a-z]+\n1$/);
  } finally {
    await node.close();
  }
});

test('Redis Cluster: the key lives on the channel slot, so the function stays on one shard', async () => {
  cluster = await startRedisCluster(3);
  const node = await startNodeOnRedis(cluster.url, { historySize: 100, namespaces: { plain: { historySize: 0 } } });
  try {
    await checkBroker(node, 'cluster');
    const key = `${keyInSlotOf('idem-cluster', 'herald:i:')}:order-1`;
    assert.match(cluster.cli('GET', key), /^1-/);
  } finally {
    await node.close();
  }
});

test('herald publish --idempotency-key: the second run replays; --retry keeps one key for every try', async () => {
  const node = await startServer({ historySize: 100 });
  try {
    const run = (): Promise<Finished> =>
      runHerald(['publish', 'cli', 'hello', '--server', node.url, '--idempotency-key', 'cli-1'], cleanEnv({ HERALD_API_KEY: TEST_API_KEY }));
    const a = await run();
    const b = await run();
    assert.equal(a.code, 0, a.stderr);
    const first = JSON.parse(a.stdout) as { id: string };
    assert.deepEqual(JSON.parse(b.stdout), { id: first.id, replayed: true });
    const bad = await runHerald(['publish', 'cli', 'x', '--server', node.url, '--idempotency-key', 'a b']);
    assert.equal(bad.code, 2, 'a malformed key is a usage error');
    // A node that is down: the retries are reported, each under the same key, then exit 1.
    await node.close();
    const down = await runHerald(['publish', 'cli', 'x', '--server', node.url, '--retry', '2', '--idempotency-key', 'cli-2']);
    assert.equal(down.code, 1);
    assert.equal((down.stderr.match(/retrying \(\d\/2\) with Idempotency-Key cli-2/g) ?? []).length, 2, down.stderr);
  } finally {
    await node.close();
  }
});
