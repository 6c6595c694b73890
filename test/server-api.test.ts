/**
 * The server API (issue 10 §2, docs/api.md) on one node, each call with real clients on the other end: curl and
 * fetch call it; /sub streams, the eventsource package and ws are the connections it lists, counts, disconnects
 * and unsubscribes. Bad input gets the documented JSON errors; key scopes hold (a publish-only key cannot disconnect).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import { signToken } from '../src/auth/jwt.js';
import { eventually, openStream, publish, startServer, TEST_API_KEY, TEST_SECRET, type TestServer, fileCleanups } from './helpers/server.js';
import { openWs } from './helpers/ws.js';

const run = promisify(execFile);
const PUBLISH_ONLY = 'publish-only-key-0123456789';
const CHAT_ONLY = 'chat-presence-key-0123456789';

const cleanups = fileCleanups();

async function node(overrides: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
  const n = await startServer({
    dev: false,
    namespaces: { chat: { presence: true, anonymous: true }, feed: { anonymous: true, historySize: 10 } },
    defaultNamespace: { anonymous: true },
    scopedApiKeys: [
      { key: PUBLISH_ONLY, namespaces: ['chat', 'feed', ''] },
      { key: CHAT_ONLY, namespaces: ['chat'], calls: ['presence', 'presence_stats', 'unsubscribe'] },
    ],
    ...overrides,
  });
  cleanups.push(() => n.close());
  return n;
}

/** POST /api/<call> with fetch; the answer's status and JSON. */
async function call(n: TestServer, name: string, body?: unknown, key: string | undefined = TEST_API_KEY): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (key !== undefined) headers['Authorization'] = `Bearer ${key}`;
  const res = await fetch(`${n.url}/api/${name}`, { method: 'POST', headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const token = (sub: string, channels: string[]): Promise<string> => signToken({ secret: TEST_SECRET, channels, subject: sub });

test('presence and presence_stats (curl and fetch) list and count the members of a channel', async () => {
  const n = await node();
  const a = await openStream(`${n.url}/sub?channel=chat:r1&token=${await token('ann', ['chat:r1'])}`);
  cleanups.push(() => a.close());
  const ws = await openWs(`${n.url}/ws?channel=chat:r1&token=${await token('ann', ['chat:r1'])}`);
  cleanups.push(() => ws.close());
  const es = new EventSource(`${n.url}/sse?channel=chat:r1`);
  cleanups.push(() => es.close());
  await eventually(() => n.server.presence.local.stats('chat:r1').clients === 3, 5000, 'three members');
  const { stdout } = await run('curl', ['-s', '-X', 'POST', '-H', `Authorization: Bearer ${TEST_API_KEY}`, '-H', 'Content-Type: application/json',
    '-d', '{"channel":"chat:r1"}', `${n.url}/api/presence`]);
  const listed = JSON.parse(stdout) as { channel: string; members: { client: string; user: string; connectedAt: number }[]; truncated: boolean };
  assert.equal(listed.channel, 'chat:r1');
  assert.deepEqual(listed.members.map((m) => m.user).sort(), ['', 'ann', 'ann']);
  assert.equal(listed.truncated, false);
  const limited = await call(n, 'presence', { channel: 'chat:r1', limit: 1 });
  assert.equal((limited.json['members'] as unknown[]).length, 1);
  assert.equal(limited.json['truncated'], true);
  assert.deepEqual((await call(n, 'presence_stats', { channel: 'chat:r1' })).json, { channel: 'chat:r1', clients: 3, users: 2 });
  // A channel without presence: 400 naming why. A key scoped to chat may ask; not about other namespaces.
  assert.equal((await call(n, 'presence', { channel: 'feed:x' })).status, 400);
  assert.equal((await call(n, 'presence_stats', { channel: 'chat:r1' }, CHAT_ONLY)).status, 200);
  const other = await call(n, 'presence_stats', { channel: 'feed:x' }, CHAT_ONLY);
  assert.equal(other.status, 403);
  assert.equal((other.json['error'] as { code: string }).code, 'forbidden');
});

test('channels: active channels with subscriber counts, prefix filter, pages with a cursor', async () => {
  const n = await node();
  const streams = await Promise.all(['feed:a', 'feed:b', 'feed:b', 'feed:c', 'other'].map((c) => openStream(`${n.url}/sub?channel=${c}`)));
  for (const s of streams) cleanups.push(() => s.close());
  const all = await call(n, 'channels', {});
  assert.deepEqual(all.json['channels'], [
    { channel: 'feed:a', subscribers: 1 }, { channel: 'feed:b', subscribers: 2 }, { channel: 'feed:c', subscribers: 1 }, { channel: 'other', subscribers: 1 },
  ]);
  assert.equal(all.json['next_cursor'], undefined);
  const first = await call(n, 'channels', { prefix: 'feed:', limit: 2 });
  assert.deepEqual((first.json['channels'] as { channel: string }[]).map((c) => c.channel), ['feed:a', 'feed:b']);
  assert.equal(first.json['next_cursor'], 'feed:b');
  const second = await call(n, 'channels', { prefix: 'feed:', limit: 2, cursor: first.json['next_cursor'] });
  assert.deepEqual(second.json['channels'], [{ channel: 'feed:c', subscribers: 1 }]);
  assert.equal(second.json['next_cursor'], undefined);
  assert.equal((await call(n, 'channels', { limit: 0 })).status, 400);
  assert.equal((await call(n, 'channels', { limit: 201 })).status, 400);
});

test('info: nodes, connections per transport, uptime and version', async () => {
  const n = await node();
  const s = await openStream(`${n.url}/sub?channel=i1`);
  cleanups.push(() => s.close());
  const ws = await openWs(`${n.url}/ws?channel=i1`);
  cleanups.push(() => ws.close());
  const { status, json } = await call(n, 'info');
  assert.equal(status, 200);
  assert.equal(json['node'], n.server.node.nodeId);
  assert.match(String(json['version']), /^\d+\.\d+\.\d+/);
  assert.equal(typeof json['uptimeSeconds'], 'number');
  const nodes = json['nodes'] as { node: string; connections: Record<string, number>; version: string }[];
  assert.equal(nodes.length, 1);
  assert.equal(nodes[0]?.connections['sub'], 1);
  assert.equal(nodes[0]?.connections['ws'], 1);
  assert.deepEqual((json['totals'] as { nodes: number }).nodes, 1);
});

test('history (limit, since) and remove_history', async () => {
  const n = await node();
  const ids: string[] = [];
  for (let i = 1; i <= 5; i++) ids.push(String(((await publish(n.url, { channel: 'feed:h', data: `m${i}` })).body as { id: string }).id));
  const latest = await call(n, 'history', { channel: 'feed:h', limit: 2 });
  assert.deepEqual((latest.json['publications'] as { data: string }[]).map((p) => p.data), ['m4', 'm5']);
  assert.equal(latest.json['position'], ids[4]);
  const since = await call(n, 'history', { channel: 'feed:h', since: ids[1] });
  assert.deepEqual((since.json['publications'] as { id: string }[]).map((p) => p.id), ids.slice(2));
  assert.equal(since.json['reload'], undefined);
  assert.equal((await call(n, 'history', { channel: 'feed:h', since: 'nope' })).status, 400);
  assert.equal((await call(n, 'history', { channel: 'nohistory' })).status, 400, 'a channel keeping no history');
  assert.deepEqual((await call(n, 'remove_history', { channel: 'feed:h' })).json, { channel: 'feed:h' });
  const gone = await call(n, 'history', { channel: 'feed:h', since: ids[1] });
  assert.deepEqual(gone.json['publications'], []);
  assert.equal(gone.json['position'], ids[4], 'the position stays');
  assert.equal(gone.json['reload'], 'expired', 'a reader from before is told to reload');
  const next = await publish(n.url, { channel: 'feed:h', data: 'm6' });
  assert.equal(String((next.body as { id: string }).id).split('-')[0], '6', 'offsets continue');
});

test('disconnect: a user\'s connections (code, reconnect flag) and one client; unsubscribe takes a channel off a live stream', async () => {
  const n = await node();
  const t = await token('dora', ['a', 'b']);
  const sub = await openStream(`${n.url}/sub?channel=a&token=${t}`);
  const ws = await openWs(`${n.url}/ws?channel=a&token=${t}`);
  const bystander = await openWs(`${n.url}/ws?channel=a`);
  cleanups.push(() => bystander.close());
  const d = await call(n, 'disconnect', { user: 'dora', code: 4001, reconnect: true });
  assert.deepEqual(d.json, { disconnected: 2, unanswered: [] });
  await sub.ended;
  assert.deepEqual(JSON.parse(sub.lines.filter((l) => l.length > 0).at(-1)!), ['disconnect', 'disconnected', 4001, true]);
  assert.deepEqual(await ws.closed, { code: 4001, reason: 'disconnected reconnect' });
  assert.equal(bystander.ws.readyState, bystander.ws.OPEN, 'another user stays');
  // One client by id, defaults: 3530, no reconnect.
  const id = [...n.server.node.openSessions()].find((s) => !s.isEnded)!.id;
  assert.deepEqual((await call(n, 'disconnect', { client: id })).json, { disconnected: 1, unanswered: [] });
  assert.equal((await bystander.closed).code, 3530);

  const two = await openStream(`${n.url}/sub?channel=a&channel=b&token=${t}`);
  cleanups.push(() => two.close());
  assert.deepEqual((await call(n, 'unsubscribe', { user: 'dora', channel: 'a' })).json, { unsubscribed: 1, unanswered: [] });
  await publish(n.url, { channel: 'a', data: 'gone' });
  await publish(n.url, { channel: 'b', data: 'still' });
  await two.waitLines(2);
  assert.deepEqual(two.lines.slice(0, 2).map((l) => JSON.parse(l) as unknown), [['unsubscribed', 'a'], ['message', 'b', 'still']]);
});

test('bad input and key scopes: documented JSON errors', async () => {
  const n = await node();
  const expect = async (name: string, body: unknown, status: number, code: string, key?: string): Promise<void> => {
    const r = await call(n, name, body, key ?? TEST_API_KEY);
    assert.equal(r.status, status, `${name} ${JSON.stringify(body)}: ${JSON.stringify(r.json)}`);
    assert.equal((r.json['error'] as { code: string }).code, code);
  };
  await expect('presence', {}, 400, 'bad_request');
  await expect('presence', { channel: '' }, 400, 'invalid_channel');
  await expect('presence', { channel: 'x'.repeat(256) }, 400, 'invalid_channel');
  await expect('presence', { channel: 'bad\u0000name' }, 400, 'invalid_channel');
  await expect('presence', { channel: 7 }, 400, 'invalid_channel');
  await expect('presence', { channel: 'chat:x', limit: 'all' }, 400, 'bad_request');
  await expect('presence', [1], 400, 'bad_request');
  await expect('presence_stats', {}, 400, 'bad_request');
  await expect('presence_stats', { channel: 'bad\nname' }, 400, 'invalid_channel');
  await expect('presence_stats', { channel: 'feed:x' }, 400, 'bad_request');
  await expect('channels', { prefix: 7 }, 400, 'bad_request');
  await expect('channels', { limit: 0 }, 400, 'bad_request');
  await expect('channels', { cursor: 'x'.repeat(256) }, 400, 'bad_request');
  await expect('history', { channel: 'feed:x', limit: 0 }, 400, 'bad_request');
  await expect('history', { channel: 'feed:x', since: 'yesterday' }, 400, 'bad_request');
  await expect('history', { channel: 'chat:x' }, 400, 'bad_request');
  await expect('history', { channel: '' }, 400, 'invalid_channel');
  await expect('remove_history', {}, 400, 'bad_request');
  await expect('remove_history', { channel: 'a\u0001b' }, 400, 'invalid_channel');
  await expect('disconnect', {}, 400, 'bad_request');
  await expect('disconnect', { user: 'u', client: 'abc-1' }, 400, 'bad_request');
  await expect('disconnect', { client: 'not an id' }, 400, 'bad_request');
  await expect('disconnect', { user: 'u', code: 3001 }, 400, 'bad_request');
  await expect('disconnect', { user: 'u', reconnect: 'yes' }, 400, 'bad_request');
  await expect('unsubscribe', { user: 'u' }, 400, 'bad_request');
  await expect('disconnect', { user: 'u' }, 403, 'forbidden', PUBLISH_ONLY);
  await expect('info', {}, 403, 'forbidden', CHAT_ONLY);
  await expect('unsubscribe', { user: 'u', channel: 'feed:x' }, 403, 'forbidden', CHAT_ONLY);
  await expect('info', {}, 401, 'unauthorized', 'wrong-key-0123456789');
  // Not JSON, the wrong content type, the wrong method, no key.
  const raw = async (init: RequestInit & { headers?: Record<string, string> }): Promise<{ status: number; code: string }> => {
    const res = await fetch(`${n.url}/api/presence`, init);
    return { status: res.status, code: ((await res.json()) as { error: { code: string } }).error.code };
  };
  const auth = { Authorization: `Bearer ${TEST_API_KEY}` };
  assert.deepEqual(await raw({ method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: '{"channel":' }), { status: 400, code: 'bad_request' });
  assert.deepEqual(await raw({ method: 'POST', headers: { ...auth, 'Content-Type': 'text/plain' }, body: '{"channel":"a"}' }), { status: 400, code: 'bad_request' });
  assert.deepEqual(await raw({ method: 'GET', headers: auth }), { status: 405, code: 'method_not_allowed' });
  assert.deepEqual(await raw({ method: 'POST', body: '{}' , headers: { 'Content-Type': 'application/json' } }), { status: 401, code: 'unauthorized' });
  assert.deepEqual(await raw({ method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: 'x'.repeat(2_000_000) }), { status: 413, code: 'payload_too_large' });
  // GET /presence, a subscriber's own question: one channel that keeps presence, GET only.
  const own = async (path: string, method = 'GET'): Promise<{ status: number; code: string }> => {
    const res = await fetch(`${n.url}${path}`, { method });
    return { status: res.status, code: ((await res.json()) as { error: { code: string } }).error.code };
  };
  assert.deepEqual(await own('/presence'), { status: 400, code: 'bad_request' });
  assert.deepEqual(await own('/presence?channel=chat:a&channel=chat:b'), { status: 400, code: 'bad_request' });
  assert.deepEqual(await own('/presence?channel=feed:x'), { status: 403, code: 'forbidden' });
  assert.deepEqual(await own('/presence?channel=chat:a', 'POST'), { status: 405, code: 'method_not_allowed' });
  // A publish-only scoped key still publishes; a key without the publish call cannot.
  assert.equal((await publish(n.url, { channel: 'feed:p', data: 'x' }, PUBLISH_ONLY)).status, 200);
  assert.equal((await publish(n.url, { channel: 'chat:p', data: 'x' }, CHAT_ONLY)).status, 403);
});
