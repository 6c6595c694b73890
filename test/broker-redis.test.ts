import { brokerConformance } from './helpers/broker-conformance.js';
import { RedisBroker } from '../src/broker/redis.js';
import { createLogger } from '../src/util/log.js';
import { startRedis, startRedisCluster } from './helpers/redis.js';

const log = createLogger('silent');

brokerConformance('redis (standalone)', async () => {
  const redis = await startRedis();
  return {
    newBroker: () => new RedisBroker({ url: redis.url, timeoutMs: 2000, probeIntervalMs: 500, log }),
    multiNode: true,
    rawPublish: async (channel, data) => void redis.cli('PUBLISH', channel, data),
    close: () => redis.stop(),
  };
});

brokerConformance('redis cluster (3 masters)', async () => {
  const cluster = await startRedisCluster(3);
  return {
    newBroker: () => new RedisBroker({ url: cluster.url, timeoutMs: 2000, probeIntervalMs: 500, log }),
    multiNode: true,
    rawPublish: async (channel, data) => void cluster.cli('SPUBLISH', channel, data),
    close: () => cluster.stop(),
  };
});
