/**
 * Scale-out: three Herald nodes in this process on one Redis (and on a 3-master Redis Cluster), clients spread over
 * them. A publish through one node's API and a plain PUBLISH/SPUBLISH from outside reach every client; each node holds
 * the same number of Redis connections for 1 client as for 1,000.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RedisBroker } from '../src/broker/redis.js';
import { countClients, startNodeOnRedis, startRedis, startRedisCluster, type RedisClusterProcesses, type RedisProcess } from './helpers/redis.js';
import { openStream, publish, type LineStream, type TestServer } from './helpers/server.js';

const settings = { redisTimeoutMs: 2000, redisProbeIntervalMs: 1000 };
const nameOf = (n: TestServer): string => (n.server.node.broker as RedisBroker).clientName;

async function openSpread(nodes: readonly TestServer[], count: number, channelsFor: (i: number) => string[]): Promise<LineStream[]> {
  const streams: LineStream[] = [];
  // In waves, so 1,000 connects do not all land in one accept backlog on a shared 2-core machine.
  for (let i = 0; i < count; i += 100) {
    const wave = Array.from({ length: Math.min(100, count - i) }, (_, j) => {
      const k = i + j;
      const node = nodes[k % nodes.length] as TestServer;
      const q = channelsFor(k).map((c) => `channel=${encodeURIComponent(c)}`).join('&');
      return openStream(`${node.url}/sub?${q}`);
    });
    streams.push(...(await Promise.all(wave)));
  }
  for (const s of streams) assert.equal(s.status, 200);
  return streams;
}

async function allGet(streams: readonly LineStream[], line: string, timeoutMs = 10_000): Promise<void> {
  await Promise.all(
    streams.map(async (s) => {
      const deadline = Date.now() + timeoutMs;
      while (!s.lines.includes(line)) {
        if (Date.now() > deadline) throw new Error(`a client never got ${line}; it has ${s.lines.length} lines`);
        await s.waitLines(s.lines.length + 1, Math.max(1, deadline - Date.now())).catch(() => undefined);
      }
    }),
  );
}

describe('three nodes on standalone Redis', () => {
  let redis: RedisProcess;
  const nodes: TestServer[] = [];
  let streams: LineStream[] = [];

  before(async () => {
    redis = await startRedis();
    for (let i = 0; i < 3; i++) nodes.push(await startNodeOnRedis(redis.url, settings));
  });
  after(async () => {
    for (const s of streams) s.close();
    await Promise.all(nodes.map((n) => n.close()));
    await redis?.stop();
  });

  test('API publish on one node and plain PUBLISH reach every client; Redis connections per node: same for 1 and 1,000 clients', async () => {
    const one = await openSpread(nodes, 3, () => ['all']);
    const withOne = nodes.map((n) => countClients(redis, nameOf(n)));
    assert.deepEqual(withOne, [2, 2, 2], 'one subscriber + one command connection per node');
    for (const s of one) s.close();

    streams = await openSpread(nodes, 1000, (i) => ['all', `room-${i % 10}`]);
    const withThousand = nodes.map((n) => countClients(redis, nameOf(n)));
    assert.deepEqual(withThousand, withOne);
    for (const n of nodes) assert.equal(n.server.node.broker.subscribedCount(), 11);

    assert.equal((await publish(nodes[0]?.url ?? '', { channel: 'all', data: 'via-api' })).status, 200);
    await allGet(streams, '["message","all","via-api"]');
    redis.cli('PUBLISH', 'all', 'via-redis-cli');
    await allGet(streams, '["message","all","via-redis-cli"]');
    // A room reaches its members only, on every node.
    redis.cli('PUBLISH', 'room-3', 'r3');
    const members = streams.filter((_, i) => i % 10 === 3);
    await allGet(members, '["message","room-3","r3"]');
    const others = streams.filter((_, i) => i % 10 !== 3);
    assert.ok(others.every((s) => !s.lines.includes('["message","room-3","r3"]')));
  });
});

describe('three nodes on a 3-master Redis Cluster', () => {
  let cluster: RedisClusterProcesses;
  const nodes: TestServer[] = [];

  before(async () => {
    cluster = await startRedisCluster(3);
    for (let i = 0; i < 3; i++) nodes.push(await startNodeOnRedis(cluster.url, settings));
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.close()));
    await cluster?.stop();
  });

  test('API publish and plain SPUBLISH reach every client; 2 connections per shard per node, whatever the clients', async () => {
    const channels = Array.from({ length: 12 }, (_, i) => `c${i}`);
    const counts = (): number[][] => nodes.map((n) => cluster.nodes.map((r) => countClients(r, nameOf(n))));
    const streams = await openSpread(nodes, 60, (i) => ['all', channels[i % channels.length] ?? 'c0']);
    const before = counts();
    for (const perShard of before) assert.deepEqual(perShard, [2, 2, 2]);
    const more = await openSpread(nodes, 240, (i) => ['all', channels[i % channels.length] ?? 'c0']);
    assert.deepEqual(counts(), before);

    const everyone = [...streams, ...more];
    assert.equal((await publish(nodes[2]?.url ?? '', { channel: 'all', data: 'api' })).status, 200);
    await allGet(everyone, '["message","all","api"]');
    // Classic PUBLISH on a cluster is broadcast over the cluster bus; Herald listens with SSUBSCRIBE only, so it is
    // not delivered (docs/architecture.md says why). SPUBLISH is the way in.
    cluster.cli('PUBLISH', 'all', 'classic');
    cluster.cli('SPUBLISH', 'all', 'sharded');
    await allGet(everyone, '["message","all","sharded"]');
    assert.ok(everyone.every((s) => !s.lines.includes('["message","all","classic"]')));
    for (const c of channels) cluster.cli('SPUBLISH', c, `s-${c}`);
    await Promise.all(everyone.map((s, i) => allGet([s], `["message","c${i % channels.length}","s-c${i % channels.length}"]`)));
    for (const s of everyone) s.close();
  });
});
