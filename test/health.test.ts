/** GET /healthz, /readyz, /metrics; unknown routes; wrong methods; readiness and refusals while draining. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { parseHead, RawClient } from './helpers/raw.js';
import { openStream, publish, startServer, type TestServer } from './helpers/server.js';

type ErrorBody = { error: { code: string; message: string } };

let node: TestServer;
before(async () => {
  node = await startServer();
});
after(() => node.close());

test('GET /healthz is 200 {"status":"ok","version":...} with the package version', async () => {
  const res = await fetch(`${node.url}/healthz`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
  assert.deepEqual(await res.json(), { status: 'ok', version: pkg.version });
});

test('GET /readyz is 200 while the broker is up and the node is not draining', async () => {
  const res = await fetch(`${node.url}/readyz`);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: 'ready', broker: 'up', draining: false });
});

test('HEAD on the health routes answers without a body', async () => {
  for (const path of ['/healthz', '/readyz', '/metrics']) {
    const res = await fetch(node.url + path, { method: 'HEAD' });
    assert.equal(res.status, 200, path);
    assert.equal(await res.text(), '');
  }
});

test('GET /metrics is Prometheus text with the node counters', async (t) => {
  const s = await openStream(`${node.url}/sub?channel=m`);
  t.after(() => s.close());
  await publish(node.url, { channel: 'm', data: 'x' });
  await s.waitLines(1);
  await fetch(`${node.url}/nope`);
  const res = await fetch(`${node.url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  // Every sample line is `name{labels} value`, every metric has HELP and TYPE.
  for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) {
    assert.match(line, /^[a-z_][a-z0-9_]*(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? (-?\d+(\.\d+)?(e[-+]\d+)?|\+Inf|NaN)$/, line);
  }
  const value = (sample: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(sample + ' '));
    assert.ok(line, `no sample ${sample} in\n${text}`);
    return Number(line.slice(sample.length + 1));
  };
  assert.ok(value('herald_sessions') >= 1);
  assert.ok(value('herald_hub_channels') >= 1);
  assert.ok(value('herald_hub_subscriptions') >= 1);
  assert.ok(value('herald_broker_channels') >= 1);
  assert.ok(value('herald_delivered_total') >= 1);
  assert.ok(value('herald_connections_opened_total{transport="sub"}') >= 1);
  assert.ok(value('herald_published_total{source="api"}') >= 1);
  assert.ok(value('herald_rejected_requests_total{code="not_found"}') >= 1);
  assert.match(text, /# TYPE herald_disconnects_total counter/);
});

test('an unknown route is 404 with the JSON error', async () => {
  for (const path of ['/', '/nope', '/sub/', '/SUB?channel=a', '/api/publish/x']) {
    const res = await fetch(node.url + path);
    assert.equal(res.status, 404, path);
    assert.equal(((await res.json()) as ErrorBody).error.code, 'not_found', path);
  }
});

test('a wrong method is 405 with Allow and the JSON error', async () => {
  const cases: [string, string, string][] = [
    ['POST', '/healthz', 'GET'],
    ['DELETE', '/readyz', 'GET'],
    ['PUT', '/metrics', 'GET'],
    ['POST', '/sse?channel=a', 'GET'],
    ['PUT', '/api/publish', 'POST'],
  ];
  for (const [method, path, allow] of cases) {
    const res = await fetch(node.url + path, { method });
    assert.equal(res.status, 405, `${method} ${path}`);
    assert.equal(res.headers.get('allow'), allow, `${method} ${path}`);
    assert.equal(((await res.json()) as ErrorBody).error.code, 'method_not_allowed');
  }
});

test('a malformed request is 400 with the JSON error', async (t) => {
  for (const raw of ['GARBAGE\r\n\r\n', 'GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n', 'GET /sub?channel=a HTTP/1.1\r\nBad Header\r\n\r\n']) {
    await t.test(JSON.stringify(raw), async () => {
      const c = new RawClient(node.url);
      try {
        await c.write(raw);
        await c.waitFor((r) => r.includes('}'), 3000, 'an answer');
        const head = parseHead(c.received);
        assert.equal(head.status, 400);
        assert.equal((JSON.parse(head.body) as ErrorBody).error.code, 'bad_request');
      } finally {
        c.destroy();
      }
    });
  }
});

test('while draining: /readyz is 503 and a new stream is 503, on requests already under way', async (t) => {
  const s = await startServer({ drainTimeoutMs: 2000 });
  // close() is idempotent: the hook only matters when the test failed before draining.
  t.after(() => s.close());
  const held = await openStream(`${s.url}/sub?channel=d`);
  t.after(() => held.close());
  // Requests whose heads have begun before the drain, so they reach the node after it started.
  const ready = new RawClient(s.url);
  const stream = new RawClient(s.url);
  t.after(() => {
    ready.destroy();
    stream.destroy();
  });
  await ready.write('GET /readyz HTTP/1.1\r\nHost: localhost\r\n');
  await stream.write('GET /sub?channel=late HTTP/1.1\r\nHost: localhost\r\n');
  await new Promise((r) => setTimeout(r, 50));
  const closed = s.close();
  // The held stream is told to go elsewhere.
  assert.deepEqual(await held.waitLines(1), ['["disconnect","shutdown",3001,true]']);
  await ready.write('\r\n');
  await stream.write('\r\n');
  await ready.waitFor((r) => r.includes('}'), 3000, '/readyz answer');
  await stream.waitFor((r) => r.includes('}'), 3000, '/sub answer');
  const r = parseHead(ready.received);
  assert.equal(r.status, 503);
  assert.deepEqual(JSON.parse(r.body), { status: 'not ready', broker: 'up', draining: true });
  const sub = parseHead(stream.received);
  assert.equal(sub.status, 503);
  assert.equal((JSON.parse(sub.body) as ErrorBody).error.code, 'unavailable');
  ready.destroy();
  stream.destroy();
  await closed;
});

test('the health routes let allowed origins read them (the SDK probes /readyz from the page)', async () => {
  const allowed = await startServer({ allowedOrigins: ['https://app.example'] });
  try {
    for (const path of ['/healthz', '/readyz']) {
      const ok = await fetch(allowed.url + path, { headers: { Origin: 'https://app.example' } });
      assert.equal(ok.status, 200, path);
      assert.equal(ok.headers.get('access-control-allow-origin'), 'https://app.example', path);
      const other = await fetch(allowed.url + path, { headers: { Origin: 'https://evil.example' } });
      assert.equal(other.headers.get('access-control-allow-origin'), null, path);
    }
  } finally {
    await allowed.close();
  }
});
