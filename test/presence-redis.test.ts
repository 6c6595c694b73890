/**
 * Presence across nodes on Redis (issue 10 §1): two nodes share one redis-server; members of either are listed and
 * counted by the other, joins cross over (ws, /sub, an EventSource and the SDK); a SIGKILLed node's members are gone within presenceTtlSeconds; after a
 * Redis restart presence is whole again within a heartbeat or so of the nodes' return.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NODE_CONTROL_CHANNEL } from '../src/broker/broker.js';
import { keyInSlotOf } from '../src/broker/redis-slot.js';
import { cleanEnv, killAll, startHerald } from './helpers/cli.js';
import { startNodeOnRedis, startRedis, type RedisProcess } from './helpers/redis.js';
import { signToken } from '../src/auth/jwt.js';
import { eventually, openStream, TEST_API_KEY, TEST_SECRET, type TestServer } from './helpers/server.js';
import { openWs, type WsClient } from './helpers/ws.js';
import { EventSource } from 'eventsource';
import WebSocket from 'ws';
import { HeraldClient, type PresenceEvent } from '@herald/client';

const HEARTBEAT = 1;
const TTL = 3;
const presenceSettings = { presenceHeartbeatSeconds: HEARTBEAT, presenceTtlSeconds: TTL };

let redis: RedisProcess;
const cleanups: (() => Promise<void> | void)[] = [];
before(async () => {
  redis = await startRedis();
});
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await killAll();
  await redis?.stop();
});

async function node(): Promise<TestServer> {
  const n = await startNodeOnRedis(redis.url, presenceSettings);
  cleanups.push(() => n.close());
  return n;
}

async function ws(url: string): Promise<WsClient> {
  const c = await openWs(url);
  cleanups.push(() => c.close());
  return c;
}

async function stats(c: WsClient, channel: string): Promise<Record<string, unknown>> {
  const r = await c.request('presence_stats', { channel });
  assert.equal(r.type, 'reply', JSON.stringify(r));
  return r.result ?? {};
}

async function listed(c: WsClient, channel: string): Promise<string[]> {
  const r = await c.request('presence', { channel });
  assert.equal(r.type, 'reply', JSON.stringify(r));
  return ((r.result?.['members'] ?? []) as { client: string }[]).map((m) => m.client).sort();
}

/** Ask until `check` holds (presence over Redis is read, not pushed). */
async function until<T>(ask: () => Promise<T>, check: (v: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await ask();
    if (check(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: last ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('two nodes: each lists and counts the other\'s members, and joins and leaves cross over', async () => {
  const a = await node();
  const b = await node();
  const watcher = await ws(`${b.url}/ws?channel=room&joinLeave=1`);
  const sub = await openStream(`${a.url}/sub?channel=room`);
  cleanups.push(() => sub.close());
  await watcher.waitFrames((fs) => fs.some((f) => f.type === 'join'), 5000, 'join from the other node');
  const join = watcher.frames.find((f) => f.type === 'join') as unknown as { member: { client: string } };
  assert.ok(join.member.client.startsWith(a.server.node.nodeId + '-'), 'the member is held by node A');
  const bClient = [...b.server.node.openSessions()][0]!.id;
  const members = await listed(watcher, 'room');
  assert.deepEqual(members, [join.member.client, bClient].sort());
  assert.deepEqual(await stats(watcher, 'room'), { channel: 'room', clients: 2, users: 2 });
  // Node A's view, from a client there.
  const aClient = await ws(`${a.url}/ws?channel=room`);
  assert.deepEqual(await stats(aClient, 'room'), { channel: 'room', clients: 3, users: 3 });
  sub.close();
  await watcher.waitFrames((fs) => fs.some((f) => f.type === 'leave'), 5000, 'leave from the other node');
  await until(() => stats(watcher, 'room'), (s) => s['clients'] === 2, 5000, 'two clients left');
});

test('a SIGKILLed node\'s members disappear within presenceTtlSeconds; after a Redis restart presence comes back', async () => {
  const a = await node();
  const env = cleanEnv({ HERALD_PRESENCE_HEARTBEAT_SECONDS: String(HEARTBEAT), HERALD_PRESENCE_TTL_SECONDS: String(TTL) });
  const victim = await startHerald(['--port', '0', '--dev', '--broker', redis.url, '--log-level', 'warn'], env);
  const observer = await ws(`${a.url}/ws?channel=doomed`);
  const held = await Promise.all([1, 2, 3].map(() => openStream(`${victim.url}/sub?channel=doomed`)));
  for (const s of held) cleanups.push(() => s.close());
  await until(() => stats(observer, 'doomed'), (s) => s['clients'] === 4, 5000, 'the victim\'s three members');
  victim.proc.kill('SIGKILL');
  const killedAt = Date.now();
  await until(() => stats(observer, 'doomed'), (s) => s['clients'] === 1, (TTL + 4) * 1000, 'the victim\'s members gone');
  const tookMs = Date.now() - killedAt;
  assert.ok(tookMs <= (TTL + 4) * 1000, `gone after ${tookMs} ms`);
  console.log(`# killed node's members gone after ${tookMs} ms (presenceTtlSeconds ${TTL}, heartbeat ${HEARTBEAT})`);

  // Redis restarts empty: the nodes reconnect and their heartbeat rewrites what they hold.
  const b = await node();
  const other = await ws(`${b.url}/ws?channel=doomed`);
  await until(() => stats(other, 'doomed'), (s) => s['clients'] === 2, 5000, 'both nodes\' members');
  await redis.restart();
  const restartedAt = Date.now();
  await until(
    () => stats(other, 'doomed').catch(() => ({})),
    (s) => (s as Record<string, unknown>)['clients'] === 2,
    20_000,
    'presence whole again after the Redis restart',
  );
  console.log(`# presence whole again ${Date.now() - restartedAt} ms after the Redis restart`);
  await eventually(() => a.server.node.isReady(), 10_000, 'node A ready');
});

test('forged presence through Redis (control messages, entries) is checked: only well-formed members of the sender count', async () => {
  const a = await node();
  const b = await node();
  const watcher = await ws(`${b.url}/ws?channel=forge&joinLeave=1`);
  const send = (body: unknown, from = 'zz00001'): Promise<unknown> =>
    a.server.node.broker.publish(NODE_CONTROL_CHANNEL, JSON.stringify({ type: 'presence', from, body }));
  const member = (client: string, extra: Record<string, unknown> = {}) => ({ client, user: 'mallory', connectedAt: 1, ...extra });
  await send({ events: [{ k: 'join', ch: 'forge', e: true, m: member('aaaaaaa-1') }] }); // speaks for another node
  await send({ events: [{ k: 'join', ch: 'forge', e: true, m: member('zz00001-1', { info: 'x'.repeat(5000) }) }] }); // info too big
  await send({ events: [{ k: 'join', ch: 'bad\u0001name', e: true, m: member('zz00001-2') }] }); // bad channel
  await send({ events: [{ k: 'kick', ch: 'forge', e: true, m: member('zz00001-3') }] }); // unknown kind
  await send({ events: 'nope' });
  await send({ events: [{ k: 'join', ch: 'forge', e: true, m: member('zz00001-4') }] }); // well formed: delivered
  await watcher.waitFrames((fs) => fs.some((f) => f.type === 'join'), 5000, 'the one well-formed join');
  const joins = watcher.frames.filter((f) => f.type === 'join') as unknown as { member: { client: string } }[];
  assert.deepEqual(joins.map((j) => j.member.client), ['zz00001-4']);

  // Entries written straight into Redis: garbage values are skipped when listing.
  const fake = 'zz00002';
  const members = keyInSlotOf('forge', `herald:pm:${fake}:`);
  redis.cli('HSET', members, 'zz00002-1', 'not json', 'zz00002-2', JSON.stringify(member('zz00002-2')));
  redis.cli('ZADD', keyInSlotOf('forge', 'herald:pi:'), String(Date.now() + 60_000), fake);
  const listedNow = await listed(watcher, 'forge');
  assert.ok(listedNow.includes('zz00002-2'), JSON.stringify(listedNow));
  assert.ok(!listedNow.includes('zz00002-1'));
});

test('server API on two nodes: disconnect closes a user\'s connections on both with the code given; unsubscribe, channels, info and presence span the cluster', async () => {
  const a = await node();
  const b = await node();
  // (Nodes of the earlier tests are still up: they answer too, with nothing of theirs on these channels.)
  const knows = (n: TestServer, other: TestServer): boolean => n.server.stats.nodes().some((s) => s.node === other.server.node.nodeId);
  await eventually(() => knows(a, b) && knows(b, a), 10_000, 'the nodes know each other');
  const t = await signToken({ secret: TEST_SECRET, channels: ['api-x', 'api-y'], subject: 'eve' });
  const onA = await openWs(`${a.url}/ws?channel=api-x&token=${t}`);
  const onB = await openStream(`${b.url}/sub?channel=api-x&channel=api-y&token=${t}`);
  cleanups.push(() => onB.close());
  const plain = await openStream(`${b.url}/sub?channel=api-x`);
  cleanups.push(() => plain.close());

  const channels = await apiCall(a, 'channels', { prefix: 'api-' });
  assert.deepEqual(channels['channels'], [{ channel: 'api-x', subscribers: 3 }, { channel: 'api-y', subscribers: 1 }]);
  // info shows each node's latest stats snapshot (taken once a second): asked until the new connections show.
  type Nodes = { node: string; connections: Record<string, number> }[];
  await until(
    async () => (await apiCall(b, 'info', {}))['nodes'] as Nodes,
    (nodes) =>
      nodes.find((x) => x.node === a.server.node.nodeId)?.connections['ws'] === 1 &&
      nodes.find((x) => x.node === b.server.node.nodeId)?.connections['sub'] === 2,
    5000,
    'both nodes in info with their connections per transport',
  );
  const members = await apiCall(a, 'presence', { channel: 'api-x' });
  assert.deepEqual((members['members'] as { user: string }[]).map((m) => m.user).sort(), ['', 'eve', 'eve']);

  assert.deepEqual(await apiCall(a, 'unsubscribe', { user: 'eve', channel: 'api-y' }), { unsubscribed: 1, unanswered: [] });
  await onB.waitLines(1);
  assert.deepEqual(JSON.parse(onB.lines[0]!), ['unsubscribed', 'api-y']);

  assert.deepEqual(await apiCall(a, 'disconnect', { user: 'eve', code: 4100 }), { disconnected: 2, unanswered: [] });
  assert.deepEqual(await onA.closed, { code: 4100, reason: 'disconnected' });
  await onB.ended;
  assert.deepEqual(JSON.parse(onB.lines.filter((l) => l.length > 0).at(-1)!), ['disconnect', 'disconnected', 4100, false]);
  assert.equal(plain.lines.filter((l) => l.length > 0 && l.startsWith('["disconnect"')).length, 0, 'an anonymous client stays');
});

test('a node that just started is known to the others at once (no waiting for its first stats tick): disconnect reaches it', async () => {
  const a = await node();
  const c = await node();
  const startedAt = Date.now();
  const knows = (n: TestServer, other: TestServer): boolean => n.server.stats.nodes().some((s) => s.node === other.server.node.nodeId);
  // Well before either node's first tick (1 s after its start): the hello and its answer did it.
  await eventually(() => knows(a, c) && knows(c, a), 500, 'the nodes know each other within 500 ms of the start');
  const tookMs = Date.now() - startedAt;
  assert.ok(tookMs < 900, `known after ${tookMs} ms`);
  const t = await signToken({ secret: TEST_SECRET, channels: ['fresh'], subject: 'zed' });
  const onC = await openStream(`${c.url}/sub?channel=fresh&token=${t}`);
  cleanups.push(() => onC.close());
  assert.deepEqual(await apiCall(a, 'disconnect', { user: 'zed', code: 4101 }), { disconnected: 1, unanswered: [] });
  await onC.ended;
  assert.deepEqual(JSON.parse(onC.lines.filter((l) => l.length > 0).at(-1)!), ['disconnect', 'disconnected', 4101, false]);
});

test('an EventSource member on one node sees the joins and leaves of a /ws and a /sub client on the other', async () => {
  const a = await node();
  const b = await node();
  const es = new EventSource(`${a.url}/sse?channel=es-two&joinLeave=1`);
  cleanups.push(() => es.close());
  const seen: string[] = [];
  const client = (e: { data: string }): string => (JSON.parse(e.data) as [string, string, { client: string }])[2].client;
  es.addEventListener('join', (e: { data: string }) => seen.push(`join ${client(e)}`));
  es.addEventListener('leave', (e: { data: string }) => seen.push(`leave ${client(e)}`));
  await new Promise<void>((resolve, reject) => {
    es.onopen = () => resolve();
    es.onerror = () => reject(new Error('EventSource failed'));
  });
  const onB = await openWs(`${b.url}/ws?channel=es-two`);
  const subB = await openStream(`${b.url}/sub?channel=es-two`);
  await eventually(() => seen.filter((x) => x.startsWith('join ')).length === 2, 5000, 'two joins from node B');
  const idB = b.server.node.nodeId;
  assert.ok(seen.every((x) => x.split(' ')[1]!.startsWith(`${idB}-`)), seen.join(', '));
  await onB.close();
  subB.close();
  await eventually(() => seen.filter((x) => x.startsWith('leave ')).length === 2, 5000, 'two leaves from node B');
});

test('the SDK on two nodes: a member on A gets the joins and leaves of a member on B, and presence() lists both', async () => {
  const a = await node();
  const b = await node();
  const token = (sub: string): Promise<string> => signToken({ secret: TEST_SECRET, channels: ['sdk-two'], subject: sub, info: { name: sub } });
  const sdk = async (url: string, sub: string, joinLeave: boolean) => {
    const client = new HeraldClient(url, {
      channels: ['sdk-two'],
      token: await token(sub),
      transports: ['websocket'],
      joinLeave,
      minReconnectDelayMs: 20,
      maxReconnectDelayMs: 200,
      platform: { EventSource, WebSocket },
    });
    const joins: PresenceEvent[] = [];
    const leaves: PresenceEvent[] = [];
    client.on('join', (e) => joins.push(e));
    client.on('leave', (e) => leaves.push(e));
    cleanups.push(() => client.disconnect());
    client.connect();
    await eventually(() => client.state === 'connected', 5000, `${sub} connected`);
    return { client, joins, leaves };
  };
  const ann = await sdk(a.url, 'ann', true);
  const bob = await sdk(b.url, 'bob', false);
  await eventually(() => ann.joins.length === 1, 5000, 'bob\'s join (node B) at ann (node A)');
  assert.equal(ann.joins[0]?.member.user, 'bob');
  assert.deepEqual(ann.joins[0]?.member.info, { name: 'bob' });
  assert.ok(ann.joins[0]?.member.client.startsWith(`${b.server.node.nodeId}-`), ann.joins[0]?.member.client);
  // Presence over Redis is read: both nodes list both members.
  for (const who of [ann, bob]) {
    await until(() => who.client.presence('sdk-two'), (r) => r.members.length === 2, 5000, 'two members listed');
    const listed = await who.client.presence('sdk-two');
    assert.deepEqual(listed.members.map((m) => m.user).sort(), ['ann', 'bob']);
    assert.deepEqual(await who.client.presenceStats('sdk-two'), { channel: 'sdk-two', clients: 2, users: 2 });
  }
  bob.client.disconnect();
  await eventually(() => ann.leaves.length === 1, 5000, 'bob\'s leave at ann');
  assert.equal(ann.leaves[0]?.member.client, ann.joins[0]?.member.client);
  await until(() => ann.client.presence('sdk-two'), (r) => r.members.length === 1, 5000, 'only ann left');
});

async function apiCall(n: TestServer, name: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${n.url}/api/${name}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TEST_API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  assert.equal(res.status, 200, JSON.stringify(json));
  return json;
}
