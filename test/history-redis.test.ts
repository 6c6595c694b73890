/** The history conformance cases on Redis (standalone) and a 3-master Redis Cluster, started by the test itself. */
import { after } from 'node:test';
import type { Publication } from '../src/protocol/publication.js';
import { RedisBroker } from '../src/broker/redis.js';
import { createLogger } from '../src/util/log.js';
import { historyConformance, type OpenedBroker } from './helpers/history-conformance.js';
import { startRedis, startRedisCluster } from './helpers/redis.js';

const log = createLogger('silent');

function suite(name: string, start: () => Promise<{ url: string; stop(): Promise<void> | void }>): void {
  let server: Promise<{ url: string; stop(): Promise<void> | void }> | undefined;
  after(async () => {
    if (server) await (await server).stop();
  });
  historyConformance(name, async (): Promise<OpenedBroker> => {
    server ??= start();
    const { url } = await server;
    const broker = new RedisBroker({ url, timeoutMs: 2000, probeIntervalMs: 500, log });
    const received: Publication[] = [];
    await broker.start({ onPublication: (p) => received.push(p) });
    return { broker, received, close: () => broker.close() };
  });
}

suite('redis (standalone)', startRedis);
suite('redis cluster (3 masters)', () => startRedisCluster(3));
