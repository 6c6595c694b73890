/**
 * The SDK's presence and live subscriptions (issue 10 §5) against a real node: presence(channel) and
 * presenceStats(channel) over WebSocket; join and leave events on each transport; channels added and removed
 * after connect() (in place over WebSocket, by reopening over SSE and polls), and the server API's unsubscribe and
 * disconnect seen by the SDK.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { EventSource } from 'eventsource';
import WebSocket from 'ws';
import { HeraldClient, type Message, type PresenceEvent, type TransportName } from '@herald/client';
import { signToken } from '../../src/auth/jwt.js';
import { eventually, publish, startServer, TEST_API_KEY, TEST_SECRET, type TestServer } from '../helpers/server.js';

const cleanup: (() => unknown)[] = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
});

function sdk(url: string, options: { channels?: string[]; token?: string; transports: TransportName[]; joinLeave?: boolean }) {
  const client = new HeraldClient(url, {
    ...options,
    minReconnectDelayMs: 20,
    maxReconnectDelayMs: 200,
    platform: { EventSource, WebSocket },
  });
  const got: Message[] = [];
  const joins: PresenceEvent[] = [];
  const leaves: PresenceEvent[] = [];
  const unsubscribed: string[] = [];
  const disconnects: { reason: string; code?: number; reconnect: boolean }[] = [];
  client.on('message', (m) => got.push(m));
  client.on('join', (e) => joins.push(e));
  client.on('leave', (e) => leaves.push(e));
  client.on('unsubscribed', (e) => unsubscribed.push(e.channel));
  client.on('disconnected', (e) => disconnects.push(e));
  cleanup.push(() => client.disconnect());
  client.connect();
  return { client, got, joins, leaves, unsubscribed, disconnects };
}

async function api(n: TestServer, call: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${n.url}/api/${call}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TEST_API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200);
  return (await res.json()) as Record<string, unknown>;
}

test('websocket: presence(), presenceStats(), join and leave events, users and info', async () => {
  const n = await startServer();
  cleanup.push(() => n.close());
  const token = (sub: string): Promise<string> => signToken({ secret: TEST_SECRET, channels: ['lobby'], subject: sub, info: { name: sub.toUpperCase() } });
  const alice = sdk(n.url, { channels: ['lobby'], token: await token('alice'), transports: ['websocket'], joinLeave: true });
  await eventually(() => alice.client.state === 'connected', 5000, 'alice connected');
  const bob = sdk(n.url, { channels: ['lobby'], token: await token('bob'), transports: ['websocket'] });
  await eventually(() => alice.joins.length === 1, 5000, 'bob\'s join at alice');
  assert.equal(alice.joins[0]?.channel, 'lobby');
  assert.equal(alice.joins[0]?.member.user, 'bob');
  assert.deepEqual(alice.joins[0]?.member.info, { name: 'BOB' });
  assert.equal(bob.joins.length, 0, 'bob did not ask for join events');
  const listed = await bob.client.presence('lobby');
  assert.deepEqual(listed.members.map((m) => m.user).sort(), ['alice', 'bob']);
  assert.equal(listed.truncated, false);
  assert.deepEqual(await bob.client.presenceStats('lobby'), { channel: 'lobby', clients: 2, users: 2 });
  await assert.rejects(bob.client.presence('elsewhere'), /forbidden/);
  bob.client.disconnect();
  await eventually(() => alice.leaves.length === 1, 5000, 'bob\'s leave at alice');
  assert.equal(alice.leaves[0]?.member.client, alice.joins[0]?.member.client);
});

for (const transport of ['websocket', 'sse', 'poll'] as const) {
  test(`${transport}: channels added and removed after connect(); join events where asked; the server API's unsubscribe`, async () => {
    const n = await startServer();
    cleanup.push(() => n.close());
    const c = sdk(n.url, { channels: ['s1'], transports: [transport], joinLeave: true });
    await eventually(() => c.client.state === 'connected', 5000, 'connected');
    c.client.subscribe('s2');
    await eventually(() => n.server.node.hub.memberCount('s2') === 1, 5000, 's2 subscribed on the server');
    await eventually(() => c.client.state === 'connected', 5000, 'connected again');
    await publish(n.url, { channel: 's2', data: 'two' });
    await publish(n.url, { channel: 's1', data: 'one' });
    await eventually(() => c.got.length === 2, 5000, 'both messages');
    assert.deepEqual(c.got.map((m) => `${m.channel}:${m.data}`).sort(), ['s1:one', 's2:two']);
    c.client.unsubscribe('s1');
    await eventually(() => n.server.node.hub.memberCount('s1') === 0, 5000, 's1 left on the server');
    await eventually(() => c.client.state === 'connected', 5000, 'connected again');
    assert.deepEqual(c.client.subscriptions(), ['s2']);
    await publish(n.url, { channel: 's1', data: 'not for me' });
    await publish(n.url, { channel: 's2', data: 'still' });
    await eventually(() => c.got.some((m) => m.data === 'still'), 5000, 'the kept channel');
    assert.ok(!c.got.some((m) => m.data === 'not for me'));
    if (transport !== 'poll') {
      // Poll clients are not members, but they can be told of joins; a stream client's join is announced to it.
      const other = sdk(n.url, { channels: ['s2'], transports: ['websocket'] });
      await eventually(() => other.client.state === 'connected', 5000, 'other connected');
      await eventually(() => c.joins.some((j) => j.channel === 's2'), 5000, 'a join on s2');
    }
    // The server takes s2 off: the SDK says so and does not ask for it again.
    await api(n, 'unsubscribe', { channel: 's2', client: await mineOn(n, transport) });
    await eventually(() => c.unsubscribed.includes('s2'), 5000, 'unsubscribed event');
    assert.deepEqual(c.client.subscriptions(), []);
  });
}

/** The client id of the SDK's own connection (the one that asked for join events, or a poll's). */
async function mineOn(n: TestServer, transport: TransportName): Promise<string> {
  const name = transport === 'websocket' ? 'ws' : transport;
  const find = () => [...n.server.node.openSessions()].find((x) => !x.isEnded && x.options.transport === name && x.joinLeave);
  // A poll is a session only while it waits: the next one comes within a moment.
  await eventually(() => find() !== undefined, 5000, 'the SDK\'s session');
  return find()!.id;
}

test('the server API\'s disconnect: an operator code without reconnect stops the SDK; with reconnect it comes back', async () => {
  const n = await startServer();
  cleanup.push(() => n.close());
  const token = await signToken({ secret: TEST_SECRET, channels: ['d'], subject: 'dan' });
  for (const transport of ['websocket', 'sse'] as const) {
    const c = sdk(n.url, { channels: ['d'], token, transports: [transport] });
    await eventually(() => c.client.state === 'connected', 5000, 'connected');
    await api(n, 'disconnect', { user: 'dan', code: 4321, reconnect: true });
    await eventually(() => c.disconnects.length === 1, 5000, 'disconnected');
    assert.deepEqual(c.disconnects[0], { reason: 'disconnected', code: 4321, reconnect: true });
    await eventually(() => c.client.state === 'connected', 5000, 'back');
    await api(n, 'disconnect', { user: 'dan', code: 4322 });
    await eventually(() => c.client.state === 'disconnected', 5000, 'stopped');
    assert.deepEqual(c.disconnects.at(-1), { reason: 'disconnected', code: 4322, reconnect: false });
  }
});

test('sse and poll: presence() and presenceStats() ask GET /presence with the client\'s own credentials', async () => {
  const n = await startServer({ dev: false, namespaces: { room: { presence: true } } });
  cleanup.push(() => n.close());
  const token = await signToken({ secret: TEST_SECRET, channels: ['room:1'], subject: 'sue' });
  for (const transport of ['sse', 'poll'] as const) {
    const c = sdk(n.url, { channels: ['room:1'], token, transports: [transport] });
    await eventually(() => c.client.state === 'connected', 5000, 'connected');
    if (transport === 'sse') await eventually(() => n.server.presence.local.memberCount() === 1, 5000, 'a member');
    const listed = await c.client.presence('room:1');
    assert.deepEqual(listed.members.map((m) => m.user), transport === 'sse' ? ['sue'] : [], 'poll clients are not members');
    assert.deepEqual(await c.client.presenceStats('room:1'), { channel: 'room:1', clients: transport === 'sse' ? 1 : 0, users: transport === 'sse' ? 1 : 0 });
    c.client.disconnect();
  }
  // Without credentials for the channel, or naming two: refused as a subscribe would be.
  assert.equal((await fetch(`${n.url}/presence?channel=room:1`)).status, 401);
  assert.equal((await fetch(`${n.url}/presence?channel=room:1&channel=room:2&token=${token}`)).status, 400);
  assert.equal((await fetch(`${n.url}/presence?channel=other&token=${token}`)).status, 403);
});
