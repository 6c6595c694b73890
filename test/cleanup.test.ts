/**
 * Client abort (the seed's on_abort): whatever way a client goes, its subscriptions are released, and the node's
 * broker subscription for a channel goes with its last local subscriber.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { NODE_CONTROL_CHANNEL } from '../src/broker/broker.js';
import { RawClient } from './helpers/raw.js';
import { startNodeOnRedis, startRedis } from './helpers/redis.js';
import { eventually, openStream, publish, startServer, type TestServer } from './helpers/server.js';

function counts(s: TestServer): string {
  const n = s.server.node;
  return `sessions ${n.sessionCount()}, hub subscriptions ${n.hub.subscriptionCount()}, hub channels ${n.hub.channelCount()}, broker ${n.broker.subscribedCount()}`;
}

async function allReleased(s: TestServer, timeoutMs = 5000): Promise<void> {
  const n = s.server.node;
  await eventually(
    () => n.sessionCount() === 0 && n.hub.subscriptionCount() === 0 && n.hub.channelCount() === 0 && n.broker.subscribedCount() === 0,
    timeoutMs,
    `everything released (${counts(s)})`,
  );
}

/** One cycle: open a stream and go away, in one of four ways. */
async function cycle(s: TestServer, i: number): Promise<void> {
  const path = i % 2 === 0 ? '/sub' : '/sse';
  // A few shared channels (reference counting) and one of the cycle's own (subscribe/unsubscribe at the broker).
  const query = `channel=shared-${i % 7}&channel=own-${i}`;
  switch (i % 4) {
    case 0: {
      // After the headers, with node's HTTP client: a graceful close (FIN).
      const stream = await openStream(`${s.url}${path}?${query}`);
      assert.equal(stream.status, 200);
      stream.close();
      return;
    }
    case 1: {
      // After the headers, with a reset (RST): no FIN, as when a process dies.
      const c = new RawClient(s.url);
      await c.write(`GET ${path}?${query} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      await c.waitFor((r) => r.startsWith('HTTP/1.1 200'), 5000, 'headers');
      c.socket.resetAndDestroy();
      return;
    }
    case 2: {
      // Before the headers: the request is sent and the client leaves at once, while the node subscribes.
      const c = new RawClient(s.url);
      await c.write(`GET ${path}?${query} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      c.destroy();
      return;
    }
    default: {
      // An aborted request from node's HTTP client, as soon as it is sent.
      await new Promise<void>((resolve) => {
        const req = http.get(`${s.url}${path}?${query}`, { agent: false });
        req.on('error', () => resolve());
        req.on('close', () => resolve());
        req.on('socket', (socket) => socket.once('connect', () => setImmediate(() => req.destroy())));
      });
    }
  }
}

/** `cycles` connect/abort cycles, `parallel` at a time. */
async function cycles(s: TestServer, count: number, parallel = 20): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) await cycle(s, next++);
    }),
  );
}

test('1,000 connect/abort cycles leave the hub and the broker with zero subscriptions', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  await cycles(s, 1000);
  await allReleased(s);

  // The node still works afterwards, and releasing the last stream empties it again.
  const stream = await openStream(`${s.url}/sub?channel=shared-1`);
  await publish(s.url, { channel: 'shared-1', data: 'after' });
  assert.deepEqual(await stream.waitLines(1), ['["message","shared-1","after"]']);
  stream.close();
  await allReleased(s);
});

test('the broker subscription lives exactly as long as the last local subscriber', async (t) => {
  const s = await startServer();
  t.after(() => s.close());
  const n = s.server.node;
  const a = await openStream(`${s.url}/sub?channel=rc`);
  const b = await openStream(`${s.url}/sse?channel=rc`);
  assert.equal(n.broker.subscribedCount(), 1);
  assert.equal(n.hub.subscriptionCount(), 2);
  a.close();
  await eventually(() => n.hub.subscriptionCount() === 1, 2000, 'a released');
  assert.equal(n.broker.subscribedCount(), 1, 'still subscribed for b');
  await publish(s.url, { channel: 'rc', data: 'for b' });
  const lines = await b.waitLines(3);
  assert.match(lines.join('\n'), /for b/);
  b.close();
  await allReleased(s);
});

test('on Redis: connect/abort cycles leave no channel subscribed at Redis either', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  const s = await startNodeOnRedis(redis.url);
  t.after(() => s.close());
  await cycles(s, 300);
  await allReleased(s);
  // Redis itself holds no subscription of the node's but its own liveness probe channel and the nodes' control channel.
  await eventually(() => {
    const channels = redis
      .cli('PUBSUB', 'CHANNELS')
      .split('\n')
      .filter((c) => c !== '' && !c.startsWith('herald:probe:') && c !== NODE_CONTROL_CHANNEL);
    return channels.length === 0;
  }, 5000, `Redis subscriptions released: ${redis.cli('PUBSUB', 'CHANNELS')}`);
  const stream = await openStream(`${s.url}/sub?channel=shared-3`);
  redis.cli('PUBLISH', 'shared-3', 'from redis');
  assert.deepEqual(await stream.waitLines(1), ['["message","shared-3","from redis"]']);
  stream.close();
  await allReleased(s);
});
