/**
 * Presence (issue 10 §1) on one node, with real clients: curl-like /sub streams, the eventsource package, ws.
 * Joins and leaves are seen by the other members on every transport, with the documented frames; a client that
 * vanishes (its socket destroyed) leaves; counts and lists answer over /ws; seed streams stay exact.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import { signToken } from '../src/auth/jwt.js';
import { eventually, openStream, publish, startServer, TEST_SECRET, type TestServer, fileCleanups } from './helpers/server.js';
import { openWs, type Frame } from './helpers/ws.js';
import { startTcpProxy } from './helpers/tcp-proxy.js';
import { ManualClock } from '../src/util/clock.js';

const cleanups = fileCleanups();

async function node(overrides: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
  const n = await startServer(overrides);
  cleanups.push(() => n.close());
  return n;
}

type Line = [string, string, Record<string, unknown>];
const lines = (ls: string[]): Line[] => ls.filter((l) => l.length > 0).map((l) => JSON.parse(l) as Line);

test('--dev: a /sub stream that asks (joinLeave=1) sees joins and leaves of ws and SSE clients; seed streams do not', async () => {
  const n = await node();
  const watcher = await openStream(`${n.url}/sub?channel=room&joinLeave=1`);
  const seed = await openStream(`${n.url}/sub?channel=room`);
  assert.equal(watcher.status, 200);
  const ws = await openWs(`${n.url}/ws?channel=room`);
  cleanups.push(() => ws.close());
  // The seed stream joined first, then the ws client.
  await eventually(() => lines(watcher.lines).filter((l) => l[0] === 'join').length === 2, 5000, 'join lines');
  const join = lines(watcher.lines).filter((l) => l[0] === 'join')[1]!;
  assert.equal(join[1], 'room');
  assert.match(String(join[2]['client']), /^[0-9a-z]+-[0-9a-z]+$/);
  assert.equal(join[2]['user'], '');
  assert.equal(typeof join[2]['connectedAt'], 'number');
  // The seed's own stream gets nothing but messages (its lines stay the seed's).
  await publish(n.url, { channel: 'room', data: 'hello' });
  await seed.waitLines(1);
  assert.deepEqual(JSON.parse(seed.lines[0]!), ['message', 'room', 'hello']);
  // An SSE client that asks too; its join reaches the watcher, and the ws client's leave reaches both.
  const es = new EventSource(`${n.url}/sse?channel=room&joinLeave=1`);
  cleanups.push(() => es.close());
  const sseEvents: string[] = [];
  es.addEventListener('join', (e: { data: string }) => sseEvents.push(`join ${e.data}`));
  es.addEventListener('leave', (e: { data: string }) => sseEvents.push(`leave ${e.data}`));
  await eventually(() => lines(watcher.lines).filter((l) => l[0] === 'join').length === 3, 5000, 'SSE join at the watcher');
  ws.close();
  await eventually(() => lines(watcher.lines).some((l) => l[0] === 'leave'), 5000, 'leave line');
  const leave = lines(watcher.lines).find((l) => l[0] === 'leave')!;
  assert.equal(leave[2]['client'], join[2]['client'], 'the leave names the client that joined');
  await eventually(() => sseEvents.some((e) => e.startsWith('leave ')), 5000, 'SSE leave event');
  const sseLeave = JSON.parse(sseEvents.find((e) => e.startsWith('leave '))!.slice(6)) as Line;
  assert.deepEqual(sseLeave, leave, 'the SSE event data is the /sub line');
  assert.equal(seed.lines.filter((l) => l.length > 0).length, 1, 'no presence line on a stream that did not ask');
  watcher.close();
  seed.close();
});

test('a namespace with joinLeave pushes to every subscriber; members carry the token\'s sub and info; /ws answers presence', async () => {
  const n = await node({ dev: false, namespaces: { chat: { joinLeave: true } } });
  const token = (sub: string, info?: unknown): Promise<string> =>
    signToken({ secret: TEST_SECRET, channels: ['chat:lobby'], subject: sub, ...(info !== undefined ? { info } : {}) });
  const alice = await openWs(`${n.url}/ws?channel=chat:lobby&token=${await token('alice', { name: 'Alice' })}`);
  cleanups.push(() => alice.close());
  const bob = await openWs(`${n.url}/ws?channel=chat:lobby&token=${await token('bob')}`);
  cleanups.push(() => bob.close());
  const bobAgain = await openWs(`${n.url}/ws?channel=chat:lobby&token=${await token('bob')}`);
  await alice.waitFrames((fs) => fs.filter((f) => f.type === 'join').length === 2, 5000, 'two joins at alice');
  const joins = alice.frames.filter((f) => f.type === 'join') as (Frame & { member: Record<string, unknown> })[];
  assert.deepEqual(joins.map((f) => [f.channel, f.member['user']]), [['chat:lobby', 'bob'], ['chat:lobby', 'bob']]);
  // Bob's first connection sees alice? No: she joined before it; it sees its own user's second connection.
  await bob.waitFrames((fs) => fs.some((f) => f.type === 'join'), 5000, 'join at bob');
  assert.equal(bob.frames.filter((f) => f.type === 'join').length, 1, 'a client is not told of its own join');

  const listed = await bob.request('presence', { channel: 'chat:lobby' });
  assert.equal(listed.type, 'reply', JSON.stringify(listed));
  const members = listed.result?.['members'] as Record<string, unknown>[];
  assert.equal(members.length, 3);
  const a = members.find((m) => m['user'] === 'alice');
  assert.deepEqual(a?.['info'], { name: 'Alice' });
  assert.equal(listed.result?.['truncated'], false);
  const stats = await bob.request('presence_stats', { channel: 'chat:lobby' });
  assert.deepEqual(stats.result, { channel: 'chat:lobby', clients: 3, users: 2 });

  bobAgain.close();
  await alice.waitFrames((fs) => fs.some((f) => f.type === 'leave'), 5000, 'leave at alice');
  const after1 = await alice.request('presence_stats', { channel: 'chat:lobby' });
  assert.deepEqual(after1.result, { channel: 'chat:lobby', clients: 2, users: 2 });
  // A channel the connection does not hold, or one without presence: refused.
  const other = await alice.request('presence', { channel: 'chat:other' });
  assert.equal(other.error?.code, 'forbidden');
});

test('a client that vanishes without a close handshake leaves presence (its socket is destroyed)', async () => {
  const n = await node();
  const watcher = await openWs(`${n.url}/ws?channel=v&joinLeave=1`);
  cleanups.push(() => watcher.close());
  const ghost = await openWs(`${n.url}/ws?channel=v`);
  await watcher.waitFrames((fs) => fs.some((f) => f.type === 'join'), 5000, 'join');
  ghost.ws.terminate();
  await watcher.waitFrames((fs) => fs.some((f) => f.type === 'leave'), 5000, 'leave after the socket went');
  const stats = await watcher.request('presence_stats', { channel: 'v' });
  assert.deepEqual(stats.result, { channel: 'v', clients: 1, users: 1 });
});

test('presence is off where the namespace does not ask for it (outside --dev)', async () => {
  const n = await node({ dev: false, namespaces: { pub: { anonymous: true } } });
  const ws = await openWs(`${n.url}/ws?channel=pub:x&joinLeave=1`);
  cleanups.push(() => ws.close());
  const other = await openWs(`${n.url}/ws?channel=pub:x`);
  cleanups.push(() => other.close());
  const answer = await ws.request('presence', { channel: 'pub:x' });
  assert.equal(answer.error?.code, 'forbidden');
  assert.equal(n.server.presence.local.memberCount(), 0);
  assert.equal(ws.frames.filter((f) => f.type === 'join').length, 0);
});

test('a token\'s info larger than presenceMaxInfoBytes is left out of the member', async () => {
  const n = await node({ presenceMaxInfoBytes: 64 });
  const big = await signToken({ secret: TEST_SECRET, channels: ['i'], subject: 'u1', info: { blob: 'x'.repeat(500) } });
  const small = await signToken({ secret: TEST_SECRET, channels: ['i'], subject: 'u2', info: { n: 1 } });
  const c1 = await openWs(`${n.url}/ws?channel=i&token=${big}`);
  cleanups.push(() => c1.close());
  const c2 = await openWs(`${n.url}/ws?channel=i&token=${small}`);
  cleanups.push(() => c2.close());
  const r = await c2.request('presence', { channel: 'i' });
  const members = r.result?.['members'] as Record<string, unknown>[];
  assert.deepEqual(members.map((m) => [m['user'], m['info'] ?? null]).sort(), [['u1', null], ['u2', { n: 1 }]]);
});

test('a client gone without FIN (its path frozen: no close, no reset) leaves presence at the dead-peer heartbeat', async () => {
  // The node's ticker runs on a ManualClock: each heartbeat interval passes when the test moves time.
  const clock = new ManualClock(Date.now());
  const n = await startServer({ heartbeatSeconds: 1 }, { clock });
  cleanups.push(() => n.close());
  const watcher = await openWs(`${n.url}/ws?channel=nofin&joinLeave=1`);
  cleanups.push(() => watcher.close());
  const proxy = await startTcpProxy(Number(new URL(n.url).port));
  cleanups.push(() => proxy.close());
  const ghost = await openWs(`http://127.0.0.1:${proxy.port}/ws?channel=nofin`);
  cleanups.push(() => ghost.ws.terminate());
  await watcher.waitFrames((fs) => fs.some((f) => f.type === 'join'), 5000, 'join');
  proxy.freeze();
  // First interval: both are pinged; the watcher's pong is in after two round trips, the ghost's never comes.
  clock.advance(1000);
  await watcher.request('ping');
  await watcher.request('ping');
  assert.equal(watcher.frames.some((f) => f.type === 'leave'), false, 'no leave after one interval');
  // Second interval: the unanswered ping cuts the ghost, which leaves.
  clock.advance(1000);
  await watcher.waitFrames((fs) => fs.some((f) => f.type === 'leave'), 5000, 'leave of the vanished client');
  const stats = await watcher.request('presence_stats', { channel: 'nofin' });
  assert.deepEqual(stats.result, { channel: 'nofin', clients: 1, users: 1 });
});
