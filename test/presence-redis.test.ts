/**
 * Presence across nodes on Redis (issue 10 §1): two nodes share one redis-server; members of either are listed and
 * counted by the other, joins cross over; a SIGKILLed node's members are gone within presenceTtlSeconds; after a
 * Redis restart presence is whole again within a heartbeat or so of the nodes' return.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NODE_CONTROL_CHANNEL } from '../src/broker/broker.js';
import { keyInSlotOf } from '../src/broker/redis-slot.js';
import { cleanEnv, killAll, startHerald } from './helpers/cli.js';
import { startNodeOnRedis, startRedis, type RedisProcess } from './helpers/redis.js';
import { eventually, openStream, type TestServer } from './helpers/server.js';
import { openWs, type WsClient } from './helpers/ws.js';

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
