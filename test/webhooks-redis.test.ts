/**
 * Webhooks on two nodes sharing Redis (docs/webhooks.md "Scope"): occupied and vacated are each node's own view and
 * name the node; a client's connect and disconnect come from the node that holds it, once; the user of a token
 * travels with them.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { signToken } from '../src/auth/jwt.js';
import { startHookServer } from './helpers/hook-server.js';
import { startNodeOnRedis, startRedis } from './helpers/redis.js';
import { eventually, openStream, TEST_SECRET } from './helpers/server.js';

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Ev {
  name: string;
  node: string;
  channel?: string;
  user?: string;
  client?: string;
}

test('two nodes on Redis: each reports its own occupied/vacated, naming itself; connects come from the holding node', async () => {
  const redis = await startRedis();
  cleanups.push(() => redis.stop());
  const receiver = await startHookServer();
  cleanups.push(() => receiver.close());
  const settings = { dev: false, webhook: receiver.url, webhookSecret: 'webhook-secret-0123456789', webhookBatchMs: 20 };
  const a = await startNodeOnRedis(redis.url, settings);
  cleanups.push(() => a.close());
  const b = await startNodeOnRedis(redis.url, settings);
  cleanups.push(() => b.close());
  const events = (): Ev[] => receiver.requests.flatMap((r) => (JSON.parse(r.body) as { events: Ev[] }).events);
  const token = await signToken({ secret: TEST_SECRET, channels: ['shared'], subject: 'ada', ttlSeconds: 600 });

  const onA = await openStream(`${a.url}/sub?channel=shared&token=${token}`);
  const onB = await openStream(`${b.url}/sub?channel=shared&token=${token}`);
  await eventually(() => events().filter((e) => e.name === 'client_connected').length === 2, 5000, 'two connects');
  onA.close();
  onB.close();
  await eventually(() => events().filter((e) => e.name === 'channel_vacated').length === 2, 5000, 'two vacated');

  const idA = a.server.node.nodeId;
  const idB = b.server.node.nodeId;
  const byName = (name: string): Ev[] => events().filter((e) => e.name === name && (e.channel ?? 'shared') === 'shared');
  assert.deepEqual(byName('channel_occupied').map((e) => e.node).sort(), [idA, idB].sort(), 'one occupied per node');
  assert.deepEqual(byName('channel_vacated').map((e) => e.node).sort(), [idA, idB].sort(), 'one vacated per node');
  const connects = byName('client_connected');
  assert.deepEqual(connects.map((e) => e.node).sort(), [idA, idB].sort());
  assert.ok(connects.every((e) => e.user === 'ada' && e.client?.startsWith(`${e.node}-`)), JSON.stringify(connects));
  const disconnects = byName('client_disconnected');
  assert.deepEqual(new Set(disconnects.map((e) => e.client)), new Set(connects.map((e) => e.client)));
  // Nothing of the nodes' own traffic on Redis (control channel, probes) is reported.
  assert.deepEqual(new Set(events().filter((e) => e.channel !== undefined).map((e) => e.channel)), new Set(['shared']));
});
