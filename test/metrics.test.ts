/**
 * /metrics beyond the node counters (issue 9 §2): process, heap, event-loop and GC metrics, the fan-out and broker
 * round-trip histograms, per-namespace counters, the build info, and label sets that stay bounded whatever clients
 * send.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { ERROR_TABLE } from '../src/errors.js';
import { parseSamples, valueOf } from './helpers/metrics.js';
import { rawExchange } from './helpers/raw.js';
import { openStream, publish, startServer, type TestServer } from './helpers/server.js';

let node: TestServer;
before(async () => {
  node = await startServer({ historySize: 10, namespaces: { chat: { anonymous: true }, feed: {} } });
});
after(() => node.close());

const scrape = async (): Promise<string> => (await fetch(`${node.url}/metrics`)).text();

test('herald_build_info carries the package version, /healthz too', async () => {
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
  assert.equal(valueOf(await scrape(), 'herald_build_info', { version: pkg.version, nodejs: process.version }), 1);
  assert.equal(((await (await fetch(`${node.url}/healthz`)).json()) as { version: string }).version, pkg.version);
});

test('process and heap metrics read the live process', async () => {
  const text = await scrape();
  assert.ok(valueOf(text, 'process_resident_memory_bytes') > 10 * 1024 * 1024);
  assert.ok(valueOf(text, 'nodejs_heap_size_used_bytes') > 0);
  assert.ok(valueOf(text, 'nodejs_heap_size_total_bytes') >= valueOf(text, 'nodejs_heap_size_used_bytes'));
  assert.ok(valueOf(text, 'process_cpu_user_seconds_total') > 0);
  const start = valueOf(text, 'process_start_time_seconds');
  assert.ok(Math.abs(start - (Date.now() / 1000 - process.uptime())) < 5, `start time ${start}`);
});

test('event-loop lag shows a loop blocked for 200 ms', async () => {
  await scrape(); // resets the window
  await new Promise((r) => setTimeout(r, 30));
  const until = Date.now() + 200;
  while (Date.now() < until) {
    /* block the event loop */
  }
  await new Promise((r) => setTimeout(r, 30));
  const text = await scrape();
  assert.ok(valueOf(text, 'nodejs_eventloop_lag_max_seconds') >= 0.15, `max ${valueOf(text, 'nodejs_eventloop_lag_max_seconds')}`);
  assert.ok(valueOf(text, 'nodejs_eventloop_lag_p50_seconds') < 0.15);
});

test('GC pauses are counted by kind', async () => {
  // Short-lived garbage fills the young generation several times over: minor collections must run.
  let keep = 0;
  for (let i = 0; i < 200_000; i++) keep += JSON.stringify({ i, pad: 'x'.repeat(100) }).length;
  assert.ok(keep > 0);
  await new Promise((r) => setTimeout(r, 50)); // observers are told asynchronously
  const text = await scrape();
  assert.ok(valueOf(text, 'nodejs_gc_duration_seconds_count', { kind: 'minor' }) > 0);
  assert.equal(
    valueOf(text, 'nodejs_gc_duration_seconds_bucket', { kind: 'minor', le: '+Inf' }),
    valueOf(text, 'nodejs_gc_duration_seconds_count', { kind: 'minor' }),
  );
});

test('fan-out is timed once per publication, not per subscriber; broker round trips per operation', async (t) => {
  const streams = await Promise.all([1, 2, 3].map(() => openStream(`${node.url}/sub?channel=chat:room`)));
  t.after(() => streams.forEach((s) => s.close()));
  const before = await scrape();
  for (let i = 0; i < 5; i++) assert.equal((await publish(node.url, { channel: 'chat:room', data: `m${i}` })).status, 200);
  await Promise.all(streams.map((s) => s.waitLines(5)));
  // A resume reads the channel's history.
  const resumed = await openStream(`${node.url}/sub?channel=chat:room&since=`);
  t.after(() => resumed.close());
  const text = await scrape();
  const delta = (name: string, labels: Record<string, string> = {}): number => valueOf(text, name, labels) - valueOf(before, name, labels);
  assert.equal(delta('herald_publish_to_write_seconds_count'), 5, 'one observation per publication');
  assert.ok(valueOf(text, 'herald_publish_to_write_seconds_sum') > 0);
  assert.equal(delta('herald_broker_round_trip_seconds_count', { op: 'publish' }), 5);
  assert.ok(delta('herald_broker_round_trip_seconds_count', { op: 'history' }) >= 1);
  // Buckets are cumulative and end at the count.
  const buckets = parseSamples(text).filter((s) => s.name === 'herald_broker_round_trip_seconds_bucket' && s.labels['op'] === 'publish');
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value);
  assert.equal(buckets.at(-1)?.labels['le'], '+Inf');
  assert.equal(buckets.at(-1)?.value, valueOf(text, 'herald_broker_round_trip_seconds_count', { op: 'publish' }));
});

test('per-namespace counters: configured namespaces by name, every other channel as default', async (t) => {
  const chat = await openStream(`${node.url}/sub?channel=chat:a`);
  const plain = await openStream(`${node.url}/sub?channel=lobby`);
  // A prefix that is no configured namespace is the default namespace: channel names never become labels.
  const stranger = `user-input-${Date.now()}:x`;
  const unknown = await openStream(`${node.url}/sub?channel=${stranger}`);
  t.after(() => [chat, plain, unknown].forEach((s) => s.close()));
  const before = await scrape();
  await publish(node.url, { channel: 'chat:a', data: '1' });
  await publish(node.url, { channel: 'lobby', data: '2' });
  await publish(node.url, { channel: stranger, data: '3' });
  await publish(node.url, { channel: 'nobody-listens', data: '4' });
  await Promise.all([chat.waitLines(1), plain.waitLines(1), unknown.waitLines(1)]);
  const text = await scrape();
  const delta = (name: string, namespace: string): number =>
    valueOf(text, name, { namespace }) - valueOf(before, name, { namespace });
  assert.equal(delta('herald_namespace_published_total', 'chat'), 1);
  assert.equal(delta('herald_namespace_published_total', 'default'), 3);
  assert.equal(delta('herald_namespace_messages_total', 'chat'), 1);
  assert.equal(delta('herald_namespace_messages_total', 'default'), 2, 'a publication with no local subscriber is not fanned out');
  assert.equal(delta('herald_namespace_delivered_total', 'chat'), 1);
  assert.equal(delta('herald_namespace_delivered_total', 'default'), 2);
  assert.equal(valueOf(text, 'herald_namespace_published_total', { namespace: 'feed' }), 0);
  const namespaces = new Set(parseSamples(text).filter((s) => s.name.startsWith('herald_namespace_')).map((s) => s.labels['namespace']));
  assert.deepEqual([...namespaces].sort(), ['chat', 'default', 'feed']);
});

test('label values stay bounded: no parser codes, no paths, no channel names', async () => {
  // Malformed requests of several kinds: each is counted under one of Herald's own error codes.
  for (const raw of ['FOO / HTTP/1.1\r\n\r\n', 'GET / HTTP/9.9\r\n\r\n', 'GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n', '\x16\x03\x01\x00\xa5']) {
    await rawExchange(node.url, raw, 1000).catch(() => '');
  }
  await fetch(`${node.url}/no-such-path-${Date.now()}`);
  const text = await scrape();
  assert.doesNotMatch(text, /HPE_|no-such-path|user-input/);
  const codes = new Set(Object.keys(ERROR_TABLE).concat('other'));
  for (const s of parseSamples(text).filter((x) => x.name === 'herald_rejected_requests_total')) {
    assert.ok(codes.has(s.labels['code'] ?? ''), `code label ${s.labels['code']}`);
  }
  assert.ok(valueOf(text, 'herald_rejected_requests_total', { code: 'bad_request' }) >= 1);
});

test('a counter given a fixed label set files anything else under "other"', async () => {
  node.server.node.metrics.rejected.inc({ code: 'HPE_INVALID_METHOD' });
  const text = await scrape();
  assert.doesNotMatch(text, /HPE_INVALID_METHOD/);
  assert.ok(valueOf(text, 'herald_rejected_requests_total', { code: 'other' }) >= 1);
});
