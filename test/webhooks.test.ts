/**
 * Webhooks (issue 10 §4): a real receiver (node:http) gets signed batches of client connected / disconnected and
 * channel occupied / vacated; a receiver that fails then recovers gets the batch again (same id) until it takes it;
 * a flood overflows the bounded queue, counted in /metrics, without slowing the caller.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, test } from 'node:test';
import { resolveConfig } from '../src/config.js';
import { MetricsRegistry } from '../src/core/metrics.js';
import { createLogger } from '../src/util/log.js';
import { WebhookDispatcher, type WebhookEvent } from '../src/webhooks/dispatcher.js';
import { WebhookMetrics } from '../src/webhooks/metrics.js';
import { verifyWebhookSignature } from '../src/webhooks/signature.js';
import { answerJson, startHookServer, type HookRequest, type HookServer } from './helpers/hook-server.js';
import { parseSamples, valueOf } from './helpers/metrics.js';
import { eventually, openStream, startServer, type TestServer } from './helpers/server.js';

const SECRET = 'webhook-secret-0123456789';
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function receiver(respond?: Parameters<typeof startHookServer>[0]): Promise<HookServer> {
  const r = await startHookServer(respond);
  cleanups.push(() => r.close());
  return r;
}

async function node(webhook: string, extra: Record<string, unknown> = {}): Promise<TestServer> {
  const n = await startServer({ webhook, webhookSecret: SECRET, webhookBatchMs: 50, ...extra });
  cleanups.push(() => n.close());
  return n;
}

interface Batch {
  time_ms: number;
  events: { name: string; channel?: string; client?: string; transport?: string; channels?: string[]; reason?: string; node: string }[];
}

/** The signature as a receiver would check it, written here from the documented rule (not Herald's code). */
function checkSignature(r: HookRequest): void {
  const header = String(r.headers['x-herald-signature']);
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header);
  assert.ok(m, `signature header: ${header}`);
  const expected = createHmac('sha256', SECRET).update(`${m[1]}.${r.body}`).digest('hex');
  assert.equal(m[2], expected, 'HMAC-SHA256 of "<t>.<body>"');
  assert.ok(Math.abs(Date.now() / 1000 - Number(m[1])) < 60, 'timestamp is now');
}

/** A sample's value, 0 while the series has no sample yet. */
const count = (text: string, name: string, labels: Record<string, string>): number =>
  parseSamples(text)
    .filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))
    .reduce((sum, x) => sum + x.value, 0);

const events = (r: HookServer): Batch['events'] => r.requests.flatMap((q) => (JSON.parse(q.body) as Batch).events);

test('connected, occupied, disconnected and vacated arrive signed and batched', async () => {
  const hook = await receiver();
  const n = await node(hook.url);
  const a = await openStream(`${n.url}/sub?channel=wh-a`);
  const b = await openStream(`${n.url}/sub?channel=wh-a&channel=wh-b`);
  await eventually(() => events(hook).length >= 4, 5000, 'connect events');
  a.close();
  b.close();
  await eventually(() => events(hook).filter((e) => e.name === 'channel_vacated').length >= 2, 5000, 'vacated events');
  const all = events(hook);
  const names = all.map((e) => `${e.name}:${e.channel ?? ''}`);
  // Each channel is occupied once (its first subscriber) and vacated once (its last).
  assert.equal(names.filter((x) => x === 'channel_occupied:wh-a').length, 1, names.join(' '));
  assert.equal(names.filter((x) => x === 'channel_occupied:wh-b').length, 1);
  assert.equal(names.filter((x) => x === 'channel_vacated:wh-a').length, 1);
  assert.equal(names.filter((x) => x === 'channel_vacated:wh-b').length, 1);
  const connected = all.filter((e) => e.name === 'client_connected');
  assert.equal(connected.length, 2);
  assert.deepEqual(connected.map((e) => e.channels), [['wh-a'], ['wh-a', 'wh-b']]);
  assert.ok(connected.every((e) => e.transport === 'sub' && e.node === n.server.node.nodeId));
  const gone = all.filter((e) => e.name === 'client_disconnected');
  assert.deepEqual(new Set(gone.map((e) => e.client)), new Set(connected.map((e) => e.client)));
  assert.ok(gone.every((e) => e.reason === 'client_gone'));
  // Only the clients' channels: nothing of the node's own (control channel, presence) shows.
  assert.deepEqual(
    new Set(all.filter((e) => e.name.startsWith('channel_')).map((e) => e.channel)),
    new Set(['wh-a', 'wh-b']),
  );
  // Occupied comes before the vacated of the same channel: one batch in flight keeps the order.
  assert.ok(names.indexOf('channel_occupied:wh-a') < names.indexOf('channel_vacated:wh-a'));
  // Batched: the two connects (opened within 50 ms) share a request at most as often as not; never one per event.
  assert.ok(hook.requests.length < all.length, `${hook.requests.length} requests for ${all.length} events`);
  for (const r of hook.requests) {
    assert.equal(r.method, 'POST');
    assert.equal(r.headers['content-type'], 'application/json');
    assert.match(String(r.headers['x-herald-webhook-id']), /^[A-Za-z0-9_-]{16}$/);
    checkSignature(r);
    assert.ok(verifyWebhookSignature(SECRET, r.body, String(r.headers['x-herald-signature'])));
    assert.equal(verifyWebhookSignature('another-secret-0123456', r.body, String(r.headers['x-herald-signature'])), false);
    assert.equal(verifyWebhookSignature(SECRET, r.body + ' ', String(r.headers['x-herald-signature'])), false);
  }
  // A recorded request replayed later is refused by the documented tolerance.
  const first = hook.requests[0]!;
  assert.equal(verifyWebhookSignature(SECRET, first.body, String(first.headers['x-herald-signature']), 300, Date.now() + 301_000), false);
  const metrics = await (await fetch(`${n.url}/metrics`)).text();
  assert.equal(valueOf(metrics, 'herald_webhook_delivered_total', { hook: 'herald' }), all.length);
  assert.equal(valueOf(metrics, 'herald_webhook_queue', { hook: 'herald' }), 0);
});

test('a receiver that fails, then recovers, gets the batch again under the same id, in order', async () => {
  const hook = await receiver((_req, res, n) => answerJson(res, n <= 2 ? 503 : 200, {}));
  const n = await node(hook.url, { webhookEvents: ['channel_occupied', 'channel_vacated'] });
  const s = await openStream(`${n.url}/sub?channel=wh-retry`);
  await eventually(() => hook.requests.length >= 3, 10_000, 'third attempt');
  const ids = hook.requests.slice(0, 3).map((r) => r.headers['x-herald-webhook-id']);
  assert.equal(new Set(ids).size, 1, 'every attempt of a batch carries one id');
  assert.deepEqual((JSON.parse(hook.requests[2]!.body) as Batch).events.map((e) => e.name), ['channel_occupied']);
  // Backoff: attempts are spaced, not hammered.
  s.close();
  await eventually(() => events(hook).some((e) => e.name === 'channel_vacated'), 10_000, 'vacated after recovery');
  const metrics = await (await fetch(`${n.url}/metrics`)).text();
  assert.equal(valueOf(metrics, 'herald_webhook_retries_total', { hook: 'herald' }), 2);
  assert.equal(valueOf(metrics, 'herald_webhook_attempts_total', { hook: 'herald', outcome: 'error' }), 2);
  assert.equal(valueOf(metrics, 'herald_webhook_delivered_total', { hook: 'herald' }), 2);
});

test('a receiver that answers 400 is not retried; one that never answers times out and is retried', async () => {
  const registry = new MetricsRegistry();
  const metrics = new WebhookMetrics(registry);
  const log = createLogger('silent');
  const rejecting = await receiver((_req, res) => answerJson(res, 400, { error: 'no' }));
  const d1 = new WebhookDispatcher<WebhookEvent>({ url: rejecting.url, name: 'herald', sign: () => ({}), batchMs: 0, metrics, log, retryBaseMs: 10 });
  d1.enqueue({ name: 'e1' });
  await eventually(() => rejecting.requests.length === 1, 5000, 'one attempt');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(rejecting.requests.length, 1);
  assert.equal(valueOf(registry.render(), 'herald_webhook_dropped_total', { hook: 'herald', reason: 'rejected' }), 1);
  await d1.close();

  const silent = await receiver(() => undefined); // never answers
  const d2 = new WebhookDispatcher<WebhookEvent>({
    url: silent.url,
    name: 'pusher',
    sign: () => ({}),
    batchMs: 0,
    timeoutMs: 200,
    maxAttempts: 2,
    retryBaseMs: 10,
    metrics,
    log,
  });
  d2.enqueue({ name: 'e2' });
  await eventually(() => count(registry.render(), 'herald_webhook_dropped_total', { hook: 'pusher', reason: 'failed' }) === 1, 10_000, 'dropped after 2 timeouts');
  assert.equal(silent.requests.length, 2);
  assert.equal(valueOf(registry.render(), 'herald_webhook_attempts_total', { hook: 'pusher', outcome: 'timeout' }), 2);
  await d2.close();
});

test('a flood overflows the bounded queue, counted, without slowing the caller; the rest is delivered once', async () => {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const hook = await receiver(async (_req, res) => {
    await gate;
    answerJson(res, 200, {});
  });
  const registry = new MetricsRegistry();
  const d = new WebhookDispatcher<WebhookEvent & { i: number }>({
    url: hook.url,
    name: 'herald',
    sign: () => ({}),
    batchSize: 50,
    batchMs: 0,
    queueSize: 1000,
    metrics: new WebhookMetrics(registry),
    log: createLogger('silent'),
    timeoutMs: 20_000,
  });
  cleanups.push(() => d.close(100));
  const started = performance.now();
  let accepted = 0;
  for (let i = 0; i < 100_000; i++) if (d.enqueue({ name: 'flood', i })) accepted++;
  const ms = performance.now() - started;
  // 100,000 enqueues with a receiver that hangs: bounded work per call, on a loaded machine well under a second.
  assert.ok(ms < 2000, `100,000 enqueues took ${ms.toFixed(0)} ms`);
  assert.equal(accepted, 1000);
  assert.ok(d.pending() <= 1000);
  assert.equal(valueOf(registry.render(), 'herald_webhook_dropped_total', { hook: 'herald', reason: 'overflow' }), 99_000);
  assert.equal(valueOf(registry.render(), 'herald_webhook_queue', { hook: 'herald' }), 1000);
  release();
  await eventually(() => count(registry.render(), 'herald_webhook_delivered_total', { hook: 'herald' }) === 1000, 20_000, 'the queued 1000');
  const got = hook.requests.flatMap((r) => (JSON.parse(r.body) as { events: { i: number }[] }).events.map((e) => e.i));
  assert.deepEqual(got, [...Array(1000).keys()], 'each accepted event once, in order');
  assert.ok(hook.requests.every((r) => (JSON.parse(r.body) as { events: unknown[] }).events.length <= 50));
});

test('SIGTERM: the drain\'s disconnects (reason shutdown) and vacated channels are sent before the node stops', async () => {
  const hook = await receiver();
  const n = await startServer({ webhook: hook.url, webhookSecret: SECRET, webhookBatchMs: 60_000, webhookBatchSize: 1000 });
  const s = await openStream(`${n.url}/sub?channel=wh-drain`);
  // A minute's batching: nothing is sent before the drain, so what arrives is the close's last attempt.
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(hook.requests.length, 0);
  await n.close();
  await s.ended;
  const names = events(hook).map((e) => `${e.name}:${e.reason ?? e.channel ?? ''}`);
  // A client's channels are occupied as it joins them, before it counts as connected; vacated as it leaves them.
  assert.deepEqual(names, ['channel_occupied:wh-drain', 'client_connected:', 'channel_vacated:wh-drain', 'client_disconnected:shutdown']);
  checkSignature(hook.requests[0]!);
});

test('a webhook URL needs a secret; bad URLs and event names stop start-up', () => {
  assert.throws(() => resolveConfig({ overrides: { dev: true, webhook: 'http://127.0.0.1:9/x' } }), /HERALD_WEBHOOK_SECRET/);
  assert.throws(() => resolveConfig({ overrides: { dev: true, webhook: 'ftp://x', webhookSecret: SECRET } }), /webhook.*http/);
  assert.throws(
    () => resolveConfig({ overrides: { dev: true, webhook: 'http://x/', webhookSecret: SECRET, webhookEvents: ['client_kicked'] } }),
    /client_kicked/,
  );
});
