/**
 * /metrics passes Prometheus' own linter (`promtool check metrics`, Debian's `prometheus` package, installed by
 * .ci/run) after traffic on every transport, with the embedded broker and with Redis, and every metric family has
 * samples. The Grafana dashboard in deploy/grafana/ references only metrics that exist.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { familiesOf, parseSamples, seriesNamesOf } from './helpers/metrics.js';
import { answerJson, startHookServer } from './helpers/hook-server.js';
import { rawExchange } from './helpers/raw.js';
import { startNodeOnRedis, startRedis, type RedisProcess } from './helpers/redis.js';
import { eventually, openStream, publish, startServer, type TestServer } from './helpers/server.js';
import { openWs } from './helpers/ws.js';

const stops: (() => Promise<void>)[] = [];
after(async () => {
  for (const stop of stops.reverse()) await stop();
});

/** Streams on every transport, publishes (one replayed by its idempotency key), a resume, refusals. */
async function traffic(node: TestServer): Promise<void> {
  const sub = await openStream(`${node.url}/sub?channel=chat:1`);
  const resumed = await openStream(`${node.url}/sub?channel=chat:1&since=`);
  const sse = await openStream(`${node.url}/sse?channel=plain`);
  const ws = await openWs(`${node.url}/ws`);
  try {
    assert.equal((await ws.request('subscribe', { channel: 'chat:1' })).type, 'reply');
    const before = node.server.node.sessionCount();
    const poll = fetch(`${node.url}/poll?channel=plain`).then((r) => r.text());
    await eventually(() => node.server.node.sessionCount() > before, 3000, 'poll waiting');
    for (const channel of ['chat:1', 'plain']) assert.equal((await publish(node.url, { channel, data: 'x' })).status, 200);
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${node.url}/api/publish`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Idempotency-Key': 'promtool-key-1' },
        body: JSON.stringify({ channel: 'plain', data: 'once' }),
      });
      assert.equal(res.status, 200);
    }
    await Promise.all([sub.waitLines(1), sse.waitLines(1), poll]);
    await fetch(`${node.url}/nowhere`);
    await rawExchange(node.url, 'FOO / HTTP/1.1\r\n\r\n', 1000).catch(() => '');
  } finally {
    for (const s of [sub, resumed, sse]) s.close();
    ws.close();
  }
}

function promtool(text: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.ifError(r.error);
  return { status: r.status, output: r.stdout + r.stderr };
}

function assertEveryFamilyHasSamples(text: string): void {
  const names = new Set(parseSamples(text).map((s) => s.name));
  for (const [family, type] of familiesOf(text)) {
    const sampled = type === 'histogram' ? names.has(`${family}_count`) : names.has(family);
    assert.ok(sampled, `family ${family} has no samples`);
  }
}

let memoryScrape = '';
/** A scrape of a node with the auth hook and webhooks on: their families exist only there. */
let hooksScrape = '';

test('promtool check metrics passes on the embedded broker after traffic', async () => {
  const node = await startServer({ historySize: 10, namespaces: { chat: { anonymous: true } } });
  stops.push(() => node.close());
  await traffic(node);
  memoryScrape = await (await fetch(`${node.url}/metrics`)).text();
  const r = promtool(memoryScrape);
  assert.equal(r.status, 0, r.output);
  assert.equal(r.output.trim(), '', 'no lint findings');
  assertEveryFamilyHasSamples(memoryScrape);
  // Histograms that traffic fed have observations (a linter passes empty ones too).
  for (const h of ['herald_publish_to_write_seconds', 'herald_broker_round_trip_seconds']) {
    assert.ok(parseSamples(memoryScrape).some((s) => s.name === `${h}_count` && s.value > 0), h);
  }
});

test('promtool check metrics passes with Redis after traffic', async () => {
  const redis: RedisProcess = await startRedis();
  stops.push(() => redis.stop());
  const node = await startNodeOnRedis(redis.url, { historySize: 10, namespaces: { chat: { anonymous: true } } });
  stops.push(() => node.close());
  await traffic(node);
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const r = promtool(text);
  assert.equal(r.status, 0, r.output);
  assert.equal(r.output.trim(), '', 'no lint findings');
  assertEveryFamilyHasSamples(text);
  assert.ok(parseSamples(text).some((s) => s.name === 'herald_broker_round_trip_seconds_count' && s.labels['op'] === 'history' && s.value > 0));
});

test('promtool check metrics passes with the auth hook and webhooks on, after traffic through both', async () => {
  const backend = await startHookServer((req, res) =>
    answerJson(res, 200, JSON.parse(req.body).cookies?.sid === 'ok' ? { allow: true, user: 'u' } : { allow: false }),
  );
  stops.push(() => backend.close());
  const node = await startServer({
    dev: false,
    metricsPublic: true,
    authHook: backend.url,
    authHookCookies: ['sid'],
    webhook: backend.url,
    webhookSecret: 'webhook-secret-0123456789',
    webhookBatchMs: 10,
  });
  stops.push(() => node.close());
  const s = await openStream(`${node.url}/sub?channel=p.hook`, { Cookie: 'sid=ok' });
  s.close();
  assert.equal((await fetch(`${node.url}/sub?channel=p.hook`, { headers: { Cookie: 'sid=no' } })).status, 403);
  await eventually(() => backend.requests.some((r) => r.body.includes('client_disconnected')), 5000, 'webhooks sent');
  const text = (hooksScrape = await (await fetch(`${node.url}/metrics`)).text());
  const r = promtool(text);
  assert.equal(r.status, 0, r.output);
  assert.equal(r.output.trim(), '', 'no lint findings');
  assertEveryFamilyHasSamples(text);
  assert.ok(parseSamples(text).some((x) => x.name === 'herald_auth_hook_duration_seconds_count' && x.value === 2));
});

test('promtool finds a bad exposition (the check can fail)', () => {
  const r = promtool('# HELP herald_x a counter without its suffix\n# TYPE herald_x counter\nherald_x 1\n');
  assert.notEqual(r.status, 0);
  assert.match(r.output, /_total/);
});

interface Panel {
  title: string;
  targets?: { expr: string }[];
}

test('the Grafana dashboard references only metrics that /metrics has', () => {
  assert.ok(memoryScrape !== '', 'runs after the embedded-broker scrape');
  const dashboard = JSON.parse(readFileSync('deploy/grafana/herald.json', 'utf8')) as {
    panels: Panel[];
    templating: { list: { query?: unknown }[] };
  };
  const exprs = dashboard.panels.flatMap((p) => {
    assert.ok(p.targets && p.targets.length > 0, `panel ${p.title} has queries`);
    return p.targets.map((t) => t.expr);
  });
  exprs.push(...dashboard.templating.list.map((v) => JSON.stringify(v.query ?? '')));
  assert.ok(hooksScrape !== '', 'runs after the auth hook and webhooks scrape');
  const known = new Set([...seriesNamesOf(memoryScrape), ...seriesNamesOf(hooksScrape)]);
  const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(?:herald|nodejs|process)_[a-z0-9_]+/g)].map((m) => m[0])));
  assert.ok(used.size >= 20, `the dashboard uses ${used.size} metrics`);
  const missing = [...used].filter((n) => !known.has(n));
  assert.deepEqual(missing, [], 'metrics the dashboard queries but /metrics does not have');
});
