/**
 * Pusher webhooks (issue 11 §4) to a real node:http receiver, checked with the official `pusher` library's
 * `webhook(...).isValid()`: channel_occupied / vacated, member_added / removed, client_event, batched; a receiver
 * that fails is retried; a flood past the queue bound is counted in /metrics.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PusherAppConfig } from '../src/config.js';
import { answerJson, startHookServer, type HookServer } from './helpers/hook-server.js';
import { eventually, startServer, type TestServer, fileCleanups } from './helpers/server.js';
import { pusherClient, serverLib, type TestPusherClient } from './helpers/pusher.js';

const cleanups = fileCleanups();

const APP = { appId: 'hooked', key: 'hooked-key', secret: 'hooked-secret-0123456789' };

function appWith(url: string, extra: Partial<PusherAppConfig> = {}): PusherAppConfig {
  return {
    id: APP.appId, key: APP.key, secret: APP.secret, allowedOrigins: [], clientEvents: true, channelPrefix: '',
    webhooks: [{ url, events: ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event', 'cache_miss'] }],
    maxConnections: 0, maxEventBytes: 10_240, maxClientEventsPerSecond: 10, maxPresenceMembers: 100, ...extra,
  };
}

async function setup(overrides: Parameters<typeof startServer>[0] = {}): Promise<{ n: TestServer; hook: HookServer }> {
  const hook = await startHookServer();
  cleanups.push(() => hook.close());
  const n = await startServer({ webhookBatchMs: 50, pusherApps: [appWith(hook.url)], ...overrides });
  cleanups.push(() => n.close());
  return { n, hook };
}

async function client(url: string, user?: string): Promise<TestPusherClient> {
  const c = await pusherClient(url, { app: APP, ...(user ? { user: { user_id: user } } : {}) });
  cleanups.push(() => c.close());
  return c;
}

type Event = { name: string; channel: string; [k: string]: unknown };

/** Every event the receiver got, after checking each request with the pusher library. */
function received(hook: HookServer): Event[] {
  const lib = serverLib('http://127.0.0.1:1', APP);
  return hook.requests.flatMap((r) => {
    const wh = lib.webhook({ headers: r.headers as Record<string, string>, rawBody: r.body });
    assert.ok(wh.isValid(), 'the pusher library accepts the signature');
    return wh.getEvents() as Event[];
  });
}

test('webhooks: occupied, member_added, client_event, member_removed, vacated, signed as Pusher signs them', async () => {
  const { n, hook } = await setup();
  const ann = await client(n.url, 'ann');
  const bob = await client(n.url, 'bob');
  await ann.subscribe('presence-room');
  const ch = await bob.subscribe('presence-room');
  ch.trigger('client-hi', { x: 1 });
  await ann.waitEvent((e) => e.event === 'client-hi', 'client event relayed');
  bob.close();
  await eventually(() => received(hook).some((e) => e.name === 'member_removed'), 5000, 'member_removed');
  ann.close();
  await eventually(() => received(hook).some((e) => e.name === 'channel_vacated'), 5000, 'channel_vacated');
  const events = received(hook);
  assert.equal(events.filter((e) => e.name === 'channel_occupied').length, 1, 'one occupied for the one channel');
  assert.equal(events[0]!.name, 'channel_occupied');
  assert.equal(events[0]!.channel, 'presence-room');
  assert.deepEqual(events.filter((e) => e.name === 'member_added').map((e) => e['user_id']).sort(), ['ann', 'bob']);
  const ce = events.find((e) => e.name === 'client_event')!;
  assert.equal(ce['event'], 'client-hi');
  assert.equal(ce['data'], '{"x":1}');
  assert.equal(ce['user_id'], 'bob');
  assert.match(String(ce['socket_id']), /^\d+\.\d+$/);
  assert.deepEqual(events.filter((e) => e.name === 'member_removed').map((e) => e['user_id']).sort(), ['ann', 'bob']);
  // member_removed is sent once the cluster's members are read, so it may follow channel_vacated (docs/pusher.md).
  assert.equal(events.filter((e) => e.name === 'channel_vacated').length, 1);
  assert.ok(hook.requests.length < events.length, 'events are batched');
  assert.equal(hook.requests[0]!.headers['x-pusher-key'], APP.key);
  // A forged body fails the library's check.
  const lib = serverLib('http://127.0.0.1:1', APP);
  const r = hook.requests[0]!;
  assert.equal(lib.webhook({ headers: r.headers as Record<string, string>, rawBody: r.body.replace('presence-room', 'presence-other') }).isValid(), false);
});

test('webhooks: a failing receiver is retried; a flood past webhookQueueSize is dropped and counted in /metrics', async () => {
  const { n, hook } = await setup({ webhookQueueSize: 5, webhookBatchSize: 100 });
  hook.respond = (req, res, i) => answerJson(res, i === 1 ? 503 : 200, {});
  const c = await client(n.url);
  await c.subscribe('first');
  await eventually(() => hook.requests.length >= 2, 10_000, 'the retry after a 503');
  assert.equal(hook.requests[0]!.headers['x-herald-webhook-id'], hook.requests[1]!.headers['x-herald-webhook-id'], 'same batch id');
  assert.ok(received(hook).every((e) => e.name === 'channel_occupied' && e.channel === 'first'));
  // Hold the receiver, then subscribe 30 channels: the queue holds 5 and counts the rest.
  hook.respond = () => new Promise(() => undefined);
  for (let i = 0; i < 30; i++) await c.subscribe(`flood-${i}`);
  const metrics = async (): Promise<string> => (await fetch(`${n.url}/metrics`)).text();
  const text = await metrics();
  const dropped = /herald_webhook_dropped_total\{hook="pusher",reason="overflow"\} (\d+)/.exec(text);
  assert.ok(dropped && Number(dropped[1]) >= 20, `overflow counted: ${dropped?.[0]}`);
});

test('webhooks: cache_miss when a cache channel subscriber finds nothing cached; none once something is', async () => {
  const { n, hook } = await setup({ historySize: 100 });
  const lib = serverLib(n.url, APP);
  const a = await client(n.url);
  await a.subscribe('cache-score');
  await eventually(() => received(hook).some((e) => e.name === 'cache_miss'), 5000, 'cache_miss');
  assert.deepEqual(received(hook).filter((e) => e.name === 'cache_miss').map((e) => e.channel), ['cache-score']);
  assert.equal((await lib.trigger('cache-score', 'goal', { home: 1 })).status, 200);
  const b = await client(n.url);
  await b.subscribe('cache-score');
  await b.waitEvent((e) => e.event === 'goal', 'the cached event');
  const c = await client(n.url);
  await c.subscribe('private-cache-score');
  await eventually(() => received(hook).filter((e) => e.name === 'cache_miss').length === 2, 5000, 'the second cache_miss');
  assert.deepEqual(received(hook).filter((e) => e.name === 'cache_miss').map((e) => e.channel), ['cache-score', 'private-cache-score']);
});
