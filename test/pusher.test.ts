/**
 * The Pusher protocol (issue 11) on one node, driven by clients nobody on the project wrote: pusher-js (its Node
 * build) and the official `pusher` server library. Public, private, encrypted and presence channels, client events,
 * socket_id exclusion, every HTTP API call, bad signatures and stale timestamps, a wrong app key, a reconnecting
 * client, and one channel across protocols: a Pusher trigger reaches /sub and /sse, a Herald publish reaches pusher-js.
 */
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import { eventually, openStream, publish, startServer, type TestServer, fileCleanups } from './helpers/server.js';
import { openWs } from './helpers/ws.js';
import { DEV_APP, pusherClient, serverLib, type TestPusherClient } from './helpers/pusher.js';

const cleanups = fileCleanups();

async function node(overrides: Parameters<typeof startServer>[0] = {}): Promise<TestServer> {
  const n = await startServer(overrides);
  cleanups.push(() => n.close());
  return n;
}

async function client(url: string, options: Parameters<typeof pusherClient>[1] = {}): Promise<TestPusherClient> {
  const c = await pusherClient(url, options);
  cleanups.push(() => c.close());
  return c;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('public channel: a Pusher trigger reaches pusher-js, /sub and /sse; a Herald publish reaches pusher-js', async () => {
  const n = await node();
  const lib = serverLib(n.url);
  const c = await client(n.url);
  await c.subscribe('news');
  const sub = await openStream(`${n.url}/sub?channel=news`);
  cleanups.push(() => sub.close());
  const es = new EventSource(`${n.url}/sse?channel=news`);
  cleanups.push(() => es.close());
  const sse: string[] = [];
  es.addEventListener('message', (e: { data: string }) => sse.push(e.data));
  await eventually(() => es.readyState === 1, 5000, 'SSE open');
  const r = await lib.trigger('news', 'breaking', { title: 'hello' });
  assert.equal(r.status, 200);
  await c.waitEvent((e) => e.event === 'breaking', 'the trigger at pusher-js');
  assert.deepEqual(c.events.find((e) => e.event === 'breaking')!.data, { title: 'hello' });
  await sub.waitLines(1);
  const line = JSON.parse(sub.lines[0]!) as [string, string, string];
  assert.equal(line[0], 'message');
  assert.equal(line[1], 'news');
  assert.deepEqual(JSON.parse(line[2]), { event: 'breaking', data: '{"title":"hello"}' }, '/sub sees the Pusher envelope');
  await eventually(() => sse.length === 1, 5000, 'the trigger at /sse');
  const sseLine = JSON.parse(sse[0]!) as [string, string, string];
  assert.deepEqual(JSON.parse(sseLine[2]), { event: 'breaking', data: '{"title":"hello"}' }, 'the SSE event carries the same envelope');
  // The other way: a Herald publish is the event `message`, its data verbatim; an envelope-shaped one is unpacked.
  await publish(n.url, { channel: 'news', data: 'plain text' });
  await c.waitEvent((e) => e.event === 'message', 'a Herald publish at pusher-js');
  assert.equal(c.events.find((e) => e.event === 'message')!.data, 'plain text');
  await publish(n.url, { channel: 'news', data: JSON.stringify({ event: 'App\\Events\\Shipped', data: '{"id":7}' }) });
  await c.waitEvent((e) => e.event === 'App\\Events\\Shipped', 'a Herald publish in the envelope');
  assert.deepEqual(c.events.find((e) => e.event === 'App\\Events\\Shipped')!.data, { id: 7 });
  // A trigger to several channels, and batch_events.
  await c.subscribe('sports');
  assert.equal((await lib.trigger(['news', 'sports'], 'multi', 'x')).status, 200);
  await c.waitEvent((e) => e.event === 'multi' && e.channel === 'sports', 'multi at sports');
  await c.waitEvent((e) => e.event === 'multi' && e.channel === 'news', 'multi at news');
  const b = await lib.triggerBatch([
    { channel: 'news', name: 'b1', data: '1' },
    { channel: 'sports', name: 'b2', data: '2' },
  ]);
  assert.equal(b.status, 200);
  await c.waitEvent((e) => e.event === 'b2' && e.channel === 'sports', 'batch event');
  assert.ok(c.events.some((e) => e.event === 'b1' && e.channel === 'news'));
});

for (const historySize of [0, 100]) test(`socket_id exclusion (historySize ${historySize}): a trigger with the sender's socket_id reaches every other client but not the sender`, async () => {
  // With history, messages carry offsets: the one left out must not look like a gap the sender then recovers.
  const n = await node({ historySize });
  const lib = serverLib(n.url);
  const a = await client(n.url);
  const b = await client(n.url);
  await a.subscribe('room');
  await b.subscribe('room');
  assert.match(a.pusher.connection.socket_id, /^\d+\.\d+$/);
  await lib.trigger('room', 'before', 'x');
  await a.waitEvent((e) => e.event === 'before', 'the first trigger at a');
  await lib.trigger('room', 'said', 'hi', { socket_id: a.pusher.connection.socket_id });
  await lib.trigger('room', 'after', 'x');
  await lib.trigger('room', 'after2', 'x');
  await b.waitEvent((e) => e.event === 'after2', 'the last trigger at b');
  await a.waitEvent((e) => e.event === 'after2', 'the last trigger at a');
  await sleep(300);
  assert.deepEqual(a.events.filter((e) => e.channel === 'room' && !e.event.startsWith('pusher:')).map((e) => e.event), ['before', 'after', 'after2'], 'in order, nothing recovered');
  assert.ok(b.events.some((e) => e.event === 'said'), 'b got the excluded-sender trigger');
  assert.ok(!a.events.some((e) => e.event === 'said'), 'a (the socket_id) did not');
});

test('private channels: the key:HMAC(secret, socket_id:channel) check; a bad signature gets subscription_error 401', async () => {
  const n = await node();
  const lib = serverLib(n.url);
  const ok = await client(n.url);
  await ok.subscribe('private-orders');
  await lib.trigger('private-orders', 'placed', { n: 1 });
  await ok.waitEvent((e) => e.event === 'placed', 'private event');
  // A client whose auth endpoint signs with the wrong secret.
  const wrong = await client(n.url, { app: { ...DEV_APP, secret: 'not-the-secret' } });
  await assert.rejects(wrong.subscribe('private-orders'), (err: Error & { detail?: { status?: number } }) => err.detail?.status === 401);
  // A raw client that replays another socket's auth.
  const raw = await openWs(`${n.url}/app/app-key?protocol=7`);
  cleanups.push(() => raw.close());
  await raw.waitFrames((f) => f.length >= 1, 5000, 'connection_established');
  const established = raw.frames[0] as unknown as { event: string; data: string };
  assert.equal(established.event, 'pusher:connection_established');
  const { socket_id: socketId, activity_timeout: timeout } = JSON.parse(established.data) as { socket_id: string; activity_timeout: number };
  assert.equal(timeout, 120);
  const stolen = lib.authorizeChannel(ok.pusher.connection.socket_id, 'private-orders').auth;
  raw.ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'private-orders', auth: stolen } }));
  raw.ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'private-none' } }));
  await raw.waitFrames((f) => f.filter((x) => (x as unknown as { event: string }).event === 'pusher:subscription_error').length === 2, 5000, 'two refusals');
  const good = lib.authorizeChannel(socketId, 'private-orders').auth;
  raw.ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'private-orders', auth: good } }));
  await raw.waitFrames((f) => f.some((x) => (x as unknown as { event: string }).event === 'pusher_internal:subscription_succeeded'), 5000, 'own auth accepted');
});

test('private-encrypted channels are relayed untouched: pusher-js decrypts with the shared secret the server library derives', async () => {
  const n = await node();
  const masterKey = randomBytes(32).toString('base64');
  const lib = serverLib(n.url, DEV_APP, { encryptionMasterKeyBase64: masterKey });
  const c = await client(n.url, {
    extra: {
      channelAuthorization: {
        customHandler: (p: { socketId: string; channelName: string }, cb: (err: Error | null, auth: unknown) => void) =>
          cb(null, lib.authorizeChannel(p.socketId, p.channelName)),
      },
    },
  });
  await c.subscribe('private-encrypted-vault');
  const sub = await openStream(`${n.url}/sub?channel=private-encrypted-vault`);
  cleanups.push(() => sub.close());
  await lib.trigger('private-encrypted-vault', 'sealed', { secret: 'the plans' });
  await c.waitEvent((e) => e.event === 'sealed', 'the encrypted event decrypted by pusher-js');
  assert.deepEqual(c.events.find((e) => e.event === 'sealed')!.data, { secret: 'the plans' });
  await sub.waitLines(1);
  const relayed = JSON.parse((JSON.parse(sub.lines[0]!) as string[])[2]!) as { data: string };
  assert.ok(!relayed.data.includes('the plans'), 'Herald saw only ciphertext');
  assert.ok('ciphertext' in (JSON.parse(relayed.data) as object));
});

test('client events: relayed to the other members of a private channel, never echoed; refused on public channels and when off', async () => {
  const n = await node();
  const a = await client(n.url);
  const b = await client(n.url);
  const chA = await a.subscribe('private-chat');
  await b.subscribe('private-chat');
  assert.equal(chA.trigger('client-typing', { who: 'a' }), true);
  await b.waitEvent((e) => e.event === 'client-typing', 'client event at b');
  assert.deepEqual(b.events.find((e) => e.event === 'client-typing')!.data, { who: 'a' });
  await sleep(200);
  assert.ok(!a.events.some((e) => e.event === 'client-typing'), 'never echoed to the sender');
  // Rate limit: the 11th in a second gets 4301.
  const errors: unknown[] = [];
  a.pusher.connection.bind('error', (e) => errors.push(e));
  for (let i = 0; i < 15; i++) chA.trigger('client-burst', i);
  await eventually(() => errors.some((e) => JSON.stringify(e).includes('4301')), 5000, 'rate limit error');
  // An app with client events off.
  const off = await node({
    pusherApps: [{ id: 'off', key: 'off-key', secret: 'off-secret-123456', clientEvents: false } as never],
  });
  const app = { appId: 'off', key: 'off-key', secret: 'off-secret-123456' };
  const c = await client(off.url, { app });
  const d = await client(off.url, { app });
  const chC = await c.subscribe('private-x');
  await d.subscribe('private-x');
  const cErrors: unknown[] = [];
  c.pusher.connection.bind('error', (e) => cErrors.push(e));
  chC.trigger('client-nope', {});
  await eventually(() => cErrors.length > 0, 5000, 'refusal');
  assert.match(JSON.stringify(cErrors[0]), /not enabled/);
  await sleep(200);
  assert.ok(!d.events.some((e) => e.event === 'client-nope'));
});

test('presence channels: two users see each other join and leave; member lists in subscription_succeeded', async () => {
  const n = await node();
  const ann = await client(n.url, { user: { user_id: 'ann', user_info: { name: 'Ann' } } });
  const bob = await client(n.url, { user: { user_id: 'bob', user_info: { name: 'Bob' } } });
  const chAnn = await ann.subscribe('presence-lobby');
  assert.equal(chAnn.members!.count, 1);
  assert.equal(chAnn.members!.me!.id, 'ann');
  const chBob = await bob.subscribe('presence-lobby');
  assert.equal(chBob.members!.count, 2);
  assert.deepEqual(chBob.members!.members, { ann: { name: 'Ann' }, bob: { name: 'Bob' } });
  await ann.waitEvent((e) => e.event === 'pusher:member_added', 'ann sees bob join');
  assert.deepEqual(ann.events.find((e) => e.event === 'pusher:member_added')!.data, { id: 'bob', info: { name: 'Bob' } });
  assert.ok(!bob.events.some((e) => e.event === 'pusher:member_added'), 'bob is not told of himself');
  // A second connection of bob's is the same member: no second member_added, and no member_removed when it goes.
  const bob2 = await client(n.url, { user: { user_id: 'bob', user_info: { name: 'Bob' } } });
  await bob2.subscribe('presence-lobby');
  bob2.close();
  // Client events on presence carry the sender's user_id.
  chBob.trigger('client-wave', {});
  await ann.waitEvent((e) => e.event === 'client-wave', 'client event on presence');
  await sleep(300);
  assert.equal(ann.events.filter((e) => e.event === 'pusher:member_added').length, 1);
  assert.equal(ann.events.filter((e) => e.event === 'pusher:member_removed').length, 0);
  // The HTTP API sees the same members.
  const lib = serverLib(n.url);
  const users = (await (await lib.get({ path: '/channels/presence-lobby/users' })).json()) as { users: { id: string }[] };
  assert.deepEqual(users.users.map((u) => u.id).sort(), ['ann', 'bob']);
  bob.close();
  await ann.waitEvent((e) => e.event === 'pusher:member_removed', 'ann sees bob leave');
  assert.deepEqual(ann.events.find((e) => e.event === 'pusher:member_removed')!.data, { id: 'bob', info: { name: 'Bob' } });
  assert.equal(chAnn.members!.count, 1);
});

test('HTTP API: channels, channels/{name}, users, signin + terminate_connections; bad signatures and stale timestamps are 401', async () => {
  const n = await node();
  const lib = serverLib(n.url);
  const a = await client(n.url, { user: { user_id: 'u-1' } });
  await a.subscribe('presence-team');
  await a.subscribe('orders');
  const all = (await (await lib.get({ path: '/channels' })).json()) as { channels: Record<string, unknown> };
  assert.deepEqual(Object.keys(all.channels).sort(), ['orders', 'presence-team']);
  const pres = (await (await lib.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } })).json()) as {
    channels: Record<string, { user_count: number }>;
  };
  assert.deepEqual(pres.channels, { 'presence-team': { user_count: 1 } });
  const bad = await lib.get({ path: '/channels', params: { info: 'user_count' } }).catch((e: { status?: number }) => e);
  assert.equal((bad as { status?: number }).status, 400, 'user_count without the presence- prefix');
  const one = (await (await lib.get({ path: '/channels/orders', params: { info: 'subscription_count' } })).json()) as Record<string, unknown>;
  assert.deepEqual(one, { occupied: true, subscription_count: 1 });
  const empty = (await (await lib.get({ path: '/channels/nobody' })).json()) as Record<string, unknown>;
  assert.deepEqual(empty, { occupied: false });
  // Sign in, then terminate the user's connections.
  let signedIn = false;
  a.pusher.bind('pusher:signin_success', () => (signedIn = true));
  a.pusher.signin();
  await eventually(() => signedIn, 5000, 'signin_success');
  const states: string[] = [];
  a.pusher.connection.bind('state_change', (s) => states.push((s as { current: string }).current));
  assert.equal((await lib.terminateUserConnections('u-1')).status, 200);
  await eventually(() => states.length > 0, 5000, 'the connection closed by terminate_connections');
  // Signing, by hand: a wrong signature, a stale timestamp, a body that does not match its md5.
  const call = async (method: string, path: string, params: Record<string, string>, body = '', secret = DEV_APP.secret): Promise<number> => {
    const q = new URLSearchParams({ auth_key: DEV_APP.key, auth_version: '1.0', ...params });
    if (body) q.set('body_md5', q.get('body_md5') ?? createHash('md5').update(body).digest('hex'));
    const sorted = [...q].sort((x, y) => (x[0] < y[0] ? -1 : 1)).map(([k, v]) => `${k}=${v}`).join('&');
    q.set('auth_signature', createHmac('sha256', secret).update(`${method}\n${path}\n${sorted}`).digest('hex'));
    const r = await fetch(`${n.url}${path}?${q}`, { method, ...(body ? { body, headers: { 'content-type': 'application/json' } } : {}) });
    await r.body?.cancel();
    return r.status;
  };
  const now = String(Math.floor(Date.now() / 1000));
  const event = JSON.stringify({ name: 'e', channel: 'orders', data: 'd' });
  assert.equal(await call('POST', '/apps/app-id/events', { auth_timestamp: now }, event), 200, 'a correctly signed request');
  assert.equal(await call('POST', '/apps/app-id/events', { auth_timestamp: now }, event, 'wrong-secret'), 401);
  assert.equal(await call('POST', '/apps/app-id/events', { auth_timestamp: String(Number(now) - 601) }, event), 401, 'stale');
  assert.equal(await call('POST', '/apps/app-id/events', { auth_timestamp: String(Number(now) + 601) }, event), 401, 'future');
  assert.equal(await call('POST', '/apps/app-id/events', { auth_timestamp: now, body_md5: '0'.repeat(32) }, event), 401, 'md5');
  assert.equal(await call('GET', '/apps/app-id/channels', { auth_timestamp: now }), 200);
  assert.equal(await call('GET', '/apps/other-app/channels', { auth_timestamp: now }), 404);
  for (const bad of ['/apps/%zz/channels', '/apps/app-id/channels/%zz', '/apps/app-id/users/%E0%A4%A/terminate_connections']) {
    const r = await fetch(`${n.url}${bad}`, { method: bad.endsWith('connections') ? 'POST' : 'GET' });
    // Bad input (400), or refused unsigned (401) where the app is known: never an internal error.
    assert.ok(r.status === 400 || r.status === 401, `${bad}: ${r.status}`);
    await r.body?.cancel();
  }
  const unsigned = await fetch(`${n.url}/apps/app-id/channels`);
  assert.equal(unsigned.status, 401);
  await unsigned.body?.cancel();
});

test('a wrong app key is told 4001 and pusher-js does not retry; missing protocol 4008', async () => {
  const n = await node();
  const raw = await openWs(`${n.url}/app/no-such-key?protocol=7`);
  const closed = await raw.closed;
  assert.equal(closed.code, 4001);
  const err = raw.frames[0] as unknown as { event: string; data: { code: number } };
  assert.equal(err.event, 'pusher:error');
  assert.equal(err.data.code, 4001);
  const malformed = await openWs(`${n.url}/app/%zz?protocol=7`);
  assert.equal((await malformed.closed).code, 4001);
  const noProtocol = await openWs(`${n.url}/app/app-key`);
  assert.equal((await noProtocol.closed).code, 4008);
  const c = await pusherClient(n.url, { app: { ...DEV_APP, key: 'wrong' } }).catch((e: Error) => e);
  assert.ok(c instanceof Error, 'pusher-js never connects with a wrong key');
});

test('hostile input on /app/{key}: garbage, unknown events, oversized frames, subscribe floods get pusher:error; a control subscriber is undisturbed', async () => {
  const n = await node({ maxChannelsPerConnection: 20 });
  const control = await client(n.url);
  await control.subscribe('control');
  const raw = await openWs(`${n.url}/app/app-key?protocol=7`);
  cleanups.push(() => raw.close());
  const send = (s: string): void => raw.ws.send(s);
  send('not json');
  send('[1,2]');
  send('{"data":{}}');
  send('{"event":"pusher:launch","data":{}}');
  send('{"event":"pusher:subscribe","data":{"channel":"bad name!"}}');
  send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'x' }, deep: JSON.parse('['.repeat(200) + ']'.repeat(200)) as unknown }));
  const kind = (f: unknown): string => (f as { event: string }).event;
  await raw.waitFrames((f) => f.filter((x) => kind(x) === 'pusher:error').length >= 6, 5000, 'six errors');
  // docs/pusher.md: malformed input is pusher:error with code null and a message; the connection stays.
  for (const e of raw.frames.filter((x) => kind(x) === 'pusher:error')) {
    const data = (e as unknown as { data: { code: unknown; message: unknown } }).data;
    assert.equal(data.code, null, JSON.stringify(e));
    assert.equal(typeof data.message, 'string');
    assert.ok((data.message as string).length > 0);
  }
  // Bad auth: another socket's signature, none at all, a presence subscribe without channel_data, a forged
  // signature: each a subscription_error with status 401 (the documented AuthError), the connection staying.
  const established = JSON.parse((raw.frames[0] as unknown as { data: string }).data) as { socket_id: string };
  const lib = serverLib(n.url);
  const otherSocket = `${established.socket_id.split('.')[0]}.999999`;
  send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'private-a', auth: lib.authorizeChannel(otherSocket, 'private-a').auth } }));
  send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'private-b' } }));
  send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'presence-c', auth: lib.authorizeChannel(established.socket_id, 'presence-c').auth } }));
  send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'private-d', auth: 'app-key:' + 'f'.repeat(64) } }));
  const authErrors = (): { channel: string; data: { type: string; status: number } }[] =>
    raw.frames
      .filter((x) => kind(x) === 'pusher:subscription_error')
      .map((x) => {
        const f = x as unknown as { channel: string; data: string | { type: string; status: number } };
        return { channel: f.channel, data: typeof f.data === 'string' ? (JSON.parse(f.data) as { type: string; status: number }) : f.data };
      });
  await raw.waitFrames(() => authErrors().length >= 4, 5000, 'four auth refusals');
  assert.deepEqual(authErrors().map((e) => e.channel).sort(), ['presence-c', 'private-a', 'private-b', 'private-d']);
  for (const e of authErrors()) assert.deepEqual([e.data.type, e.data.status], ['AuthError', 401], JSON.stringify(e));
  raw.frames.length = 0;
  for (let i = 0; i < 40; i++) send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: `flood-${i}` } }));
  await raw.waitFrames((f) => f.some((x) => kind(x) === 'pusher:subscription_error'), 5000, 'the flood refused past maxChannelsPerConnection');
  const ok = raw.frames.filter((x) => kind(x) === 'pusher_internal:subscription_succeeded').length;
  assert.equal(ok, 20);
  await serverLib(n.url).trigger('control', 'still', 'fine');
  await control.waitEvent((e) => e.event === 'still', 'the control subscriber still served');
  // A frame over the limit is closed by the WebSocket layer (1009); the node goes on.
  raw.ws.send('x'.repeat(2 * 1024 * 1024));
  assert.equal((await raw.closed).code, 1009);
  await serverLib(n.url).trigger('control', 'still2', 'fine');
  await control.waitEvent((e) => e.event === 'still2', 'still served after the oversized frame');
});

test('a reconnecting pusher-js client: after the node closes it (4200) it reconnects, resubscribes and gets new events', async () => {
  const n = await node();
  const c = await client(n.url);
  await c.subscribe('live');
  const first = c.pusher.connection.socket_id;
  for (const s of n.server.node.openSessions()) if (s.options.transport === 'pusher') s.disconnect('broker_lost');
  await eventually(() => c.pusher.connection.state === 'connected' && c.pusher.connection.socket_id !== first, 10_000, 'reconnected');
  await eventually(() => n.server.node.hub.memberCount('live') === 1, 5000, 'resubscribed');
  await serverLib(n.url).trigger('live', 'again', 1);
  await c.waitEvent((e) => e.event === 'again', 'event after the reconnect');
});

test('a draining node closes Pusher connections with 4200 (reconnect at once, to another node)', async () => {
  const n = await startServer();
  const raw = await openWs(`${n.url}/app/app-key?protocol=7`);
  await raw.waitFrames((f) => f.length >= 1, 5000, 'connection_established');
  const closing = n.close();
  assert.equal((await raw.closed).code, 4200);
  await closing;
});

test('ping/pong: pusher:ping is answered with pusher:pong', async () => {
  const n = await node();
  const raw = await openWs(`${n.url}/app/app-key?protocol=7`);
  cleanups.push(() => raw.close());
  raw.ws.send('{"event":"pusher:ping","data":{}}');
  await raw.waitFrames((f) => f.some((x) => (x as unknown as { event: string }).event === 'pusher:pong'), 5000, 'pong');
});

test('outside --dev a public Pusher channel must be one Herald lets anyone subscribe; private channels stay the app\'s', async () => {
  const open = { appId: 'open', key: 'open-key', secret: 'open-secret-0123456789' };
  const closed = { appId: 'closed', key: 'closed-key', secret: 'closed-secret-0123456789' };
  const n = await node({
    dev: false,
    namespaces: { app1: { anonymous: true } },
    pusherApps: [
      { id: open.appId, key: open.key, secret: open.secret, channelPrefix: 'app1:' },
      { id: closed.appId, key: closed.key, secret: closed.secret },
    ] as never,
  });
  // The open app's channels live in the namespace app1, which allows anonymous subscription.
  const a = await client(n.url, { app: open });
  await a.subscribe('orders');
  const sub = await openStream(`${n.url}/sub?channel=app1:orders`);
  cleanups.push(() => sub.close());
  await serverLib(n.url, open).trigger('orders', 'placed', '1');
  await a.waitEvent((e) => e.event === 'placed', 'the open app\'s public channel');
  await sub.waitLines(1);
  assert.equal((JSON.parse(sub.lines[0]!) as string[])[1], 'app1:orders', 'the Herald channel is prefix + name');
  // The other app has no such namespace: a public channel there would be a Herald channel kept behind tokens.
  const b = await client(n.url, { app: closed });
  await assert.rejects(b.subscribe('user.42.inbox'), (err: Error & { detail?: { status?: number } }) => err.detail?.status === 403);
  await b.subscribe('private-user.42.inbox');
  await serverLib(n.url, closed).trigger('private-user.42.inbox', 'mail', 'x');
  await b.waitEvent((e) => e.event === 'mail', 'a signed private channel works outside --dev');
});

test('the /app/{key} upgrade is held to the request head bounds every reader applies: a long URL is 414, a big header block 431', async () => {
  const n = await node({ maxUrlBytes: 1024, maxHeaderBytes: 2048 });
  const control = await client(n.url);
  await control.subscribe('control');
  const { request } = await import('node:http');
  const status = (path: string, headers: Record<string, string> = {}): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = request(`${n.url}${path}`, {
        agent: false,
        headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': randomBytes(16).toString('base64'), ...headers },
      });
      req.on('upgrade', (_res, socket) => {
        socket.destroy();
        resolve(101);
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
  assert.equal(await status('/app/app-key?protocol=7'), 101);
  assert.equal(await status(`/app/app-key?protocol=7&pad=${'x'.repeat(1100)}`), 414);
  assert.equal(await status('/app/app-key?protocol=7', { 'X-Pad': 'y'.repeat(3000) }), 431);
  await serverLib(n.url).trigger('control', 'still', 'fine');
  await control.waitEvent((e) => e.event === 'still', 'the control subscriber still served');
});

test('JSON data: a Herald JSON publish reaches a pusher-js bind callback as the value; the frame carries it as a JSON string, as Pusher sends it', async () => {
  const n = await node();
  const c = await client(n.url);
  const ch = await c.subscribe('json-news');
  const bound: unknown[] = [];
  ch.bind('message', (data) => bound.push(data));
  ch.bind('Shipped', (data) => bound.push(data));
  const raw = await openWs(`${n.url}/app/app-key?protocol=7`);
  cleanups.push(() => raw.close());
  raw.ws.send(JSON.stringify({ event: 'pusher:subscribe', data: { channel: 'json-news' } }));
  const kind = (f: unknown): string => (f as { event: string }).event;
  await raw.waitFrames((f) => f.some((x) => kind(x) === 'pusher_internal:subscription_succeeded'), 5000, 'raw subscribed');
  const value = { order: 7, items: ['a', 'b'], paid: true };
  assert.equal((await publish(n.url, { channel: 'json-news', data: value })).status, 200);
  assert.equal((await publish(n.url, { channel: 'json-news', data: 'plain words' })).status, 200);
  // An envelope published as JSON (not as text) with object data: sent as Pusher sends a trigger's data.
  assert.equal((await publish(n.url, { channel: 'json-news', data: { event: 'Shipped', data: { id: 9 } } })).status, 200);
  await eventually(() => bound.length === 3, 5000, 'three events at the bind callbacks');
  assert.deepEqual(bound, [value, 'plain words', { id: 9 }], 'the bind callback gets the object published');
  await raw.waitFrames((f) => f.filter((x) => kind(x) === 'message' || kind(x) === 'Shipped').length === 3, 5000, 'three frames');
  const frames = raw.frames.filter((x) => kind(x) === 'message' || kind(x) === 'Shipped') as unknown as { data: unknown }[];
  for (const f of frames) assert.equal(typeof f.data, 'string', 'data is a JSON-encoded string in the frame');
  assert.deepEqual(JSON.parse(frames[0]!.data as string), value);
  assert.deepEqual(JSON.parse(frames[2]!.data as string), { id: 9 });
});

test('cache channels: a subscriber gets the last event first, or pusher:cache_miss; private and presence cache channels too', async () => {
  // The cache is the channel's history (the tests' nodes keep none unless asked).
  const n = await node({ historySize: 100 });
  const lib = serverLib(n.url);
  const first = await client(n.url);
  const missed: unknown[] = [];
  await first.subscribe('cache-price');
  await first.waitEvent((e) => e.event === 'pusher:cache_miss', 'pusher:cache_miss on an empty cache channel');
  assert.equal(first.events.filter((e) => e.event === 'pusher:cache_miss').length, 1);
  await lib.trigger('cache-price', 'price', { eur: 1 });
  await lib.trigger('cache-price', 'price', { eur: 2 });
  await first.waitEvent((e) => e.event === 'price' && (e.data as { eur: number }).eur === 2, 'live events');
  // A new subscriber: the last event only, once, and no cache_miss; then the live ones.
  const late = await client(n.url);
  const ch = await late.subscribe('cache-price');
  ch.bind('pusher:cache_miss', (d) => missed.push(d));
  await late.waitEvent((e) => e.event === 'price', 'the cached event');
  await lib.trigger('cache-price', 'price', { eur: 3 });
  await late.waitEvent((e) => e.event === 'price' && (e.data as { eur: number }).eur === 3, 'the next live event');
  await sleep(100);
  assert.deepEqual(late.events.filter((e) => e.event !== 'pusher:subscription_succeeded').map((e) => [e.event, e.data]), [
    ['price', { eur: 2 }],
    ['price', { eur: 3 }],
  ]);
  assert.deepEqual(missed, []);
  // A Herald publish is the last event as well.
  await publish(n.url, { channel: 'cache-price', data: { eur: 4 } });
  const third = await client(n.url);
  await third.subscribe('cache-price');
  await third.waitEvent((e) => e.event === 'message', 'a Herald publish cached');
  assert.deepEqual(third.events.find((e) => e.event === 'message')!.data, { eur: 4 });
  // Private and presence cache channels: authorized as usual, the same cache.
  await lib.trigger('private-cache-stock', 'level', { n: 5 });
  const priv = await client(n.url);
  await priv.subscribe('private-cache-stock');
  await priv.waitEvent((e) => e.event === 'level', 'the cached event on a private cache channel');
  const pres = await client(n.url, { user: { user_id: 'ann' } });
  const room = await pres.subscribe('presence-cache-room');
  await pres.waitEvent((e) => e.event === 'pusher:cache_miss', 'cache_miss on a presence cache channel');
  assert.equal(room.members!.count, 1);
  // Not a cache channel: neither.
  await lib.trigger('plain-price', 'price', { eur: 1 });
  const plain = await client(n.url);
  await plain.subscribe('plain-price');
  await sleep(200);
  assert.deepEqual(plain.events.filter((e) => e.event !== 'pusher:subscription_succeeded'), []);
});

test('cache channels keep nothing where the channel keeps no history: every subscriber is told pusher:cache_miss', async () => {
  const n = await node({ historySize: 0 });
  const lib = serverLib(n.url);
  await lib.trigger('cache-nohist', 'price', { eur: 1 });
  const c = await client(n.url);
  await c.subscribe('cache-nohist');
  await c.waitEvent((e) => e.event === 'pusher:cache_miss', 'cache_miss without history');
  assert.ok(!c.events.some((e) => e.event === 'price'));
});
