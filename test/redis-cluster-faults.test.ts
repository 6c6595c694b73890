/** Redis Cluster failures: a master killed and restarted; the broker recovers and every shard delivers again. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startBroker } from './helpers/broker-conformance.js';
import { RedisBroker } from '../src/broker/redis.js';
import { slotOf } from '../src/broker/redis-slot.js';
import { createLogger } from '../src/util/log.js';
import { eventually } from './helpers/server.js';
import { masterPortOfSlot, startRedisCluster, type RedisClusterProcesses, type RedisProcess } from './helpers/redis.js';

let cluster: RedisClusterProcesses;
before(async () => {
  cluster = await startRedisCluster(3);
});
after(async () => {
  await cluster?.stop();
});

test('a master killed and restarted: not ready meanwhile, then every channel on every shard delivers again', async () => {
  const { broker, seen } = await startBroker({
    newBroker: () => new RedisBroker({ url: cluster.url, timeoutMs: 1000, probeIntervalMs: 200, log: createLogger('silent') }),
    multiNode: true,
    close: async () => undefined,
  });
  try {
    // Channels spread over the slot space, so every master owns some.
    const channels = Array.from({ length: 30 }, (_, i) => `shard-${i}`);
    assert.ok(new Set(channels.map((c) => Math.floor(slotOf(c) / 5462))).size === 3, 'channels on all 3 shards');
    await broker.subscribe(channels);

    const victim = cluster.nodes[1];
    assert.ok(victim);
    await victim.kill();
    await eventually(() => !broker.isReady(), 3000, 'not ready after a master died');
    const onVictim = channels.find((c) => masterPortOfSlot(cluster.nodes[0] as RedisProcess, slotOf(c)) === victim.port) as string;
    const elsewhere = channels.find((c) => masterPortOfSlot(cluster.nodes[0] as RedisProcess, slotOf(c)) !== victim.port) as string;
    const t0 = Date.now();
    await assert.rejects(broker.publish(onVictim, 'x'));
    assert.ok(Date.now() - t0 < 1500, 'publish while down answers within the timeout');
    // Only the dead master's channels stop: the other shards go on.
    await broker.publish(elsewhere, 'still');
    assert.equal((await seen.waitFor(elsewhere, 1))[0]?.data, 'still');
    assert.equal((broker as RedisBroker).isReadyFor(onVictim), false);
    assert.equal((broker as RedisBroker).isReadyFor(elsewhere), true);
    await victim.restart();
    await eventually(() => broker.isReady(), 15_000, 'ready after the master came back');
    assert.deepEqual(seen.changes, [false, true]);

    for (const c of channels) cluster.cli('SPUBLISH', c, `back-${c}`);
    for (const c of channels) {
      const n = c === elsewhere ? 2 : 1;
      assert.equal((await seen.waitFor(c, n))[n - 1]?.data, `back-${c}`);
    }
    assert.equal(broker.subscribedCount(), channels.length);
  } finally {
    await broker.close();
  }
});

test('failover: a master with a replica is killed for good; the replica takes over and every shard delivers again', async () => {
  const withReplicas = await startRedisCluster(3, 1);
  try {
    const { broker, seen } = await startBroker({
      newBroker: () => new RedisBroker({ url: withReplicas.url, timeoutMs: 1000, probeIntervalMs: 200, log: createLogger('silent') }),
      multiNode: true,
      close: async () => undefined,
    });
    try {
      const channels = Array.from({ length: 30 }, (_, i) => `fo-${i}`);
      await broker.subscribe(channels);
      const victim = withReplicas.nodes.find((n) => n.cli('ROLE').startsWith('master'));
      assert.ok(victim);
      // Its replica must be attached and in sync, or no failover can happen.
      await eventually(() => /slave0:.*state=online/.test(victim.cli('INFO', 'replication')), 10_000, 'replica online');
      await victim.kill();
      await eventually(() => !broker.isReady(), 3000, 'not ready after the master died');
      await eventually(() => broker.isReady(), 20_000, 'ready after the replica was promoted');
      const alive = withReplicas.nodes.find((n) => n.running);
      assert.ok(alive);
      for (const c of channels) alive.cli('-c', 'SPUBLISH', c, `after-${c}`);
      for (const c of channels) assert.equal((await seen.waitFor(c, 1))[0]?.data, `after-${c}`);
    } finally {
      await broker.close();
    }
  } finally {
    await withReplicas.stop();
  }
});
