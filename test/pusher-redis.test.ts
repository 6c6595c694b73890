/**
 * The Pusher protocol on two nodes sharing one redis-server (issue 11): a trigger on one node reaches pusher-js and
 * /sub subscribers on the other, a Herald publish (and a plain Redis PUBLISH) reaches pusher-js anywhere, presence
 * members and member_added/member_removed cross nodes, terminate_connections closes a user's connection on the other
 * node, the member list is right after a node restart, and a cache channel's last event (kept in Redis history) is
 * what a subscriber on the other node gets first.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { EventSource } from 'eventsource';
import { NODE_CONTROL_CHANNEL } from '../src/broker/broker.js';
import { startNodeOnRedis, startRedis, type RedisProcess } from './helpers/redis.js';
import { eventually, openStream, publish, type TestServer } from './helpers/server.js';
import { pusherClient, serverLib, type TestPusherClient } from './helpers/pusher.js';

let redis: RedisProcess;
const cleanups: (() => Promise<void> | void)[] = [];
before(async () => {
  redis = await startRedis();
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await redis?.stop();
});

const presenceSettings = { presenceHeartbeatSeconds: 1, presenceTtlSeconds: 3 };

async function node(overrides: Parameters<typeof startNodeOnRedis>[1] = {}): Promise<TestServer> {
  const n = await startNodeOnRedis(redis.url, { ...presenceSettings, ...overrides });
  cleanups.push(() => n.close());
  return n;
}

async function client(url: string, options: Parameters<typeof pusherClient>[1] = {}): Promise<TestPusherClient> {
  const c = await pusherClient(url, options);
  cleanups.push(() => c.close());
  return c;
}

test('two nodes: a trigger on A reaches pusher-js, /sub and /sse on B; Herald and Redis publishes on B reach pusher-js on A', async () => {
  const a = await node();
  const b = await node();
  const onB = await client(b.url);
  await onB.subscribe('orders');
  const sub = await openStream(`${b.url}/sub?channel=orders`);
  cleanups.push(() => sub.close());
  const sse: string[] = [];
  const es = new EventSource(`${b.url}/sse?channel=orders`);
  cleanups.push(() => es.close());
  es.addEventListener('message', (e: { data: string }) => sse.push(e.data));
  await eventually(() => es.readyState === 1, 5000, 'SSE open on B');
  const onA = await client(a.url);
  await onA.subscribe('orders');
  await serverLib(a.url).trigger('orders', 'placed', { id: 1 });
  await onB.waitEvent((e) => e.event === 'placed', 'the trigger on B');
  assert.deepEqual(onB.events.find((e) => e.event === 'placed')!.data, { id: 1 });
  await sub.waitLines(1);
  assert.deepEqual(JSON.parse((JSON.parse(sub.lines[0]!) as string[])[2]!), { event: 'placed', data: '{"id":1}' });
  await eventually(() => sse.length === 1, 5000, 'the trigger at /sse on B');
  assert.deepEqual(JSON.parse((JSON.parse(sse[0]!) as string[])[2]!), { event: 'placed', data: '{"id":1}' }, '/sse on B gets the envelope');
  await publish(b.url, { channel: 'orders', data: 'via herald' });
  await onA.waitEvent((e) => e.event === 'message' && e.data === 'via herald', 'a Herald publish on B at A');
  redis.cli('PUBLISH', 'orders', JSON.stringify({ event: 'from-redis', data: '{"ok":true}' }));
  await onA.waitEvent((e) => e.event === 'from-redis', 'a Redis PUBLISH at A');
  await onB.waitEvent((e) => e.event === 'from-redis', 'a Redis PUBLISH at B');
  // socket_id exclusion holds across nodes: the sender on A is left out of a trigger sent to B's API.
  await serverLib(b.url).trigger('orders', 'excluded', 'x', { socket_id: onA.pusher.connection.socket_id });
  await serverLib(b.url).trigger('orders', 'marker', 'y');
  await onA.waitEvent((e) => e.event === 'marker', 'marker at A');
  await onB.waitEvent((e) => e.event === 'marker', 'marker at B');
  assert.ok(onB.events.some((e) => e.event === 'excluded'));
  assert.ok(!onA.events.some((e) => e.event === 'excluded'), 'the excluded socket on the other node got nothing');
});

test('two nodes: presence members, joins and leaves cross over; the list is right after a node restart', async () => {
  const a = await node();
  let b = await node();
  const ann = await client(a.url, { user: { user_id: 'ann', user_info: { n: 'Ann' } } });
  const chAnn = await ann.subscribe('presence-hall');
  const bob = await client(b.url, { user: { user_id: 'bob', user_info: { n: 'Bob' } } });
  const chBob = await bob.subscribe('presence-hall');
  assert.deepEqual(Object.keys(chBob.members!.members).sort(), ['ann', 'bob'], 'bob on B sees ann on A at once');
  await ann.waitEvent((e) => e.event === 'pusher:member_added', 'ann on A sees bob on B join');
  // A second connection of ann's on B is the same member: nobody hears of it.
  const ann2 = await client(b.url, { user: { user_id: 'ann', user_info: { n: 'Ann' } } });
  await ann2.subscribe('presence-hall');
  const users = (await (await serverLib(b.url).get({ path: '/channels/presence-hall/users' })).json()) as { users: { id: string }[] };
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['ann', 'bob']);
  ann2.close();
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(!bob.events.some((e) => e.event === 'pusher:member_removed'), 'ann is still there (on A)');
  assert.ok(!bob.events.some((e) => e.event === 'pusher:member_added'));
  // Node B restarts: bob goes, comes back, and the list is right on both sides.
  bob.close();
  await ann.waitEvent((e) => e.event === 'pusher:member_removed', 'ann sees bob leave');
  await b.close();
  b = await node();
  const bob3 = await client(b.url, { user: { user_id: 'bob', user_info: { n: 'Bob' } } });
  const chBob3 = await bob3.subscribe('presence-hall');
  assert.deepEqual(Object.keys(chBob3.members!.members).sort(), ['ann', 'bob'], 'member list after the restart');
  await eventually(() => ann.events.filter((e) => e.event === 'pusher:member_added').length === 2, 5000, 'bob back at A');
  assert.equal(chAnn.members!.count, 2);
});

test('two nodes: channels and channels/{name} on either node count the subscribers of both', async () => {
  const a = await node();
  const b = await node();
  const onA = await client(a.url);
  await onA.subscribe('shared');
  await onA.subscribe('only-a');
  const onB = await client(b.url);
  await onB.subscribe('shared');
  const lib = serverLib(b.url);
  type Listing = { channels: Record<string, { subscription_count?: number }> };
  // B learns of A from the stats every node shares each second; until then it answers for itself.
  let listing: Listing = { channels: {} };
  await eventually(() => {
    void lib.get({ path: '/channels', params: { info: 'subscription_count' } }).then(async (r) => (listing = (await r.json()) as Listing));
    return listing.channels['shared']?.subscription_count === 2;
  }, 10_000, 'B counting A\'s subscriber');
  // (Nodes of the tests before this one still run on the same Redis: their channels are listed too.)
  assert.deepEqual(listing.channels['only-a'], { subscription_count: 1 });
  assert.equal(listing.channels['nobody'], undefined);
  const one = (await (await lib.get({ path: '/channels/only-a', params: { info: 'subscription_count' } })).json()) as Record<string, unknown>;
  assert.deepEqual(one, { occupied: true, subscription_count: 1 }, 'a channel held only by A, asked at B');
  const none = (await (await lib.get({ path: '/channels/nobody' })).json()) as Record<string, unknown>;
  assert.deepEqual(none, { occupied: false });
});

test('two nodes: terminate_connections sent to A closes the user\'s connection held by B', async () => {
  const a = await node();
  const b = await node();
  const c = await client(b.url, { user: { user_id: 'carol' } });
  let signedIn = false;
  c.pusher.bind('pusher:signin_success', () => (signedIn = true));
  c.pusher.signin();
  await eventually(() => signedIn, 5000, 'signin');
  const first = c.pusher.connection.socket_id;
  const states: string[] = [];
  c.pusher.connection.bind('state_change', (s) => states.push((s as { current: string }).current));
  assert.equal((await serverLib(a.url).terminateUserConnections('carol')).status, 200);
  await eventually(() => states.length > 0, 5000, 'carol\'s connection on B closed');
  assert.notEqual(states[0], 'connected');
  assert.ok(first.length > 0);
});

test('two nodes: forged Pusher control messages through Redis are dropped; the nodes carry on', async () => {
  const a = await node();
  const c = await client(a.url, { user: { user_id: 'dave' } });
  await c.subscribe('steady');
  const forged = [
    { type: 'pusher_terminate', from: 'zzzzzzz', body: { app: 'app-id', user: 42 } },
    { type: 'pusher_terminate', from: 'zzzzzzz', body: { app: 'no-such-app', user: 'dave' } },
    { type: 'pusher_terminate', from: 'zzzzzzz', body: { app: 'app-id', user: 'x'.repeat(300) } },
    { type: 'pusher_channels_r', from: 'zzzzzzz', body: { req: 'never-asked', channels: [['steady', 1e9]] } },
    { type: 'pusher_channels_q', from: 'zzzzzzz', body: { req: 'r', prefix: 'x'.repeat(10_000) } },
    { type: 'pusher_channels_q', from: 'zzzzzzz', body: { req: 'r', prefix: '', exact: 'bad\u0000name' } },
  ];
  // Published on the Redis server as any client of it could (the control channel's name holds a NUL: no redis-cli).
  const broker = a.server.node.broker;
  for (const m of forged) await broker.publish(NODE_CONTROL_CHANNEL, JSON.stringify(m));
  await broker.publish(NODE_CONTROL_CHANNEL, 'not json at all');
  await serverLib(a.url).trigger('steady', 'after-forgery', 1);
  await c.waitEvent((e) => e.event === 'after-forgery', 'the client still served');
  assert.equal(c.pusher.connection.state, 'connected', 'not terminated by a malformed message');
  const one = (await (await serverLib(a.url).get({ path: '/channels/steady', params: { info: 'subscription_count' } })).json()) as Record<string, unknown>;
  assert.deepEqual(one, { occupied: true, subscription_count: 1 }, 'a reply to a query never sent counts nothing');
});

test('two nodes: a cache channel\'s last event triggered through A is what a subscriber on B gets first; an empty one is a cache_miss on B', async () => {
  // The cache is the channel's history, kept in Redis: both nodes read the same one.
  const a = await node({ historySize: 100 });
  const b = await node({ historySize: 100 });
  const empty = await client(b.url);
  await empty.subscribe('cache-r-empty');
  await empty.waitEvent((e) => e.event === 'pusher:cache_miss', 'cache_miss on B for a channel nobody published on');
  const libA = serverLib(a.url);
  for (let i = 1; i <= 3; i++) assert.equal((await libA.trigger('cache-r-score', 'goal', { home: i })).status, 200);
  const late = await client(b.url);
  await late.subscribe('cache-r-score');
  await late.waitEvent((e) => e.event === 'goal', 'the cached event on B');
  // Live events after the cached one, through either node.
  await serverLib(b.url).trigger('cache-r-score', 'goal', { home: 4 });
  await late.waitEvent((e) => e.event === 'goal' && (e.data as { home: number }).home === 4, 'the next live event on B');
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(late.events.filter((e) => e.event !== 'pusher:subscription_succeeded').map((e) => [e.event, e.data]), [
    ['goal', { home: 3 }],
    ['goal', { home: 4 }],
  ], 'the last event through A first (once, no cache_miss), then the live one');
  assert.ok(!empty.events.some((e) => e.event === 'goal'), 'another channel\'s events do not leak');
});
