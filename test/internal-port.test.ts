/**
 * The internal listener (`internalPort`): /metrics (and the admin routes added to `operatorRoutes`) answer only
 * there, /healthz and /readyz on both ports, the metrics token rules hold on it, and it closes with the node.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, resolveConfig } from '../src/config.js';
import { sendJson } from '../src/http/respond.js';
import { parseHead, rawExchange } from './helpers/raw.js';
import { freePort } from './helpers/redis.js';
import { startServer } from './helpers/server.js';

const METRICS_TOKEN = 'internal-metrics-token-0123456789';

test('with internalPort: /metrics and operator routes only there, health on both, streams only public', async (t) => {
  const internalPort = await freePort();
  const node = await startServer({ internalPort });
  t.after(() => node.close());
  node.server.operatorRoutes.add('/admin/ping', (_req, res) => sendJson(res, 200, { pong: true }));
  const internal = node.server.internalUrl;
  assert.equal(internal, `http://127.0.0.1:${internalPort}`);

  assert.equal((await fetch(`${node.url}/metrics`)).status, 404, 'not on the public port');
  const metrics = await fetch(`${internal}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(await metrics.text(), /^herald_sessions \d+$/m);
  assert.equal((await fetch(`${node.url}/admin/ping`)).status, 404);
  // The admin dashboard (on in --dev) moves there too.
  assert.equal((await fetch(`${node.url}/admin`)).status, 404);
  const admin = await fetch(`${internal}/admin`);
  assert.equal(admin.status, 200);
  assert.match(admin.headers.get('content-type') ?? '', /^text\/html/);
  assert.deepEqual(await (await fetch(`${internal}/admin/ping`)).json(), { pong: true });
  for (const base of [node.url, internal]) {
    assert.equal((await fetch(`${base}/healthz`)).status, 200, base);
    assert.equal((await fetch(`${base}/readyz`)).status, 200, base);
  }
  // Client endpoints stay on the public port.
  assert.equal((await fetch(`${internal}/sub?channel=a`)).status, 404);
  assert.equal((await fetch(`${internal}/api/publish`, { method: 'POST', body: '{}' })).status, 404);
  // The --dev Host guard holds there too.
  const rebound = await rawExchange(internal!, 'GET /metrics HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n');
  assert.equal(parseHead(rebound).status, 403);
});

test('the metrics token rules hold on the internal port', async (t) => {
  const node = await startServer({ dev: false, internalPort: await freePort(), metricsToken: METRICS_TOKEN });
  t.after(() => node.close());
  const url = `${node.server.internalUrl}/metrics`;
  assert.equal((await fetch(url)).status, 401);
  assert.equal((await fetch(url, { headers: { Authorization: 'Bearer wrong-token-0123456789' } })).status, 401);
  assert.equal((await fetch(url, { headers: { Authorization: `Bearer ${METRICS_TOKEN}` } })).status, 200);
});

test('without internalPort the operator routes are on the public port', async (t) => {
  const node = await startServer();
  t.after(() => node.close());
  assert.equal(node.server.internalUrl, undefined);
  node.server.operatorRoutes.add('/admin/ping', (_req, res) => sendJson(res, 200, { pong: true }));
  assert.equal((await fetch(`${node.url}/admin/ping`)).status, 200);
  assert.equal((await fetch(`${node.url}/metrics`)).status, 200);
});

test('draining: the internal /readyz says 503 until the node stops, then the port is closed', async () => {
  const node = await startServer({ internalPort: await freePort(), drainTimeoutMs: 1000 });
  const internal = node.server.internalUrl!;
  // A held stream keeps the drain going for a moment.
  const held = await fetch(`${node.url}/sub?channel=d`);
  const closing = node.close();
  assert.equal((await fetch(`${internal}/readyz`)).status, 503);
  await closing;
  await held.body?.cancel().catch(() => undefined);
  await assert.rejects(fetch(`${internal}/healthz`));
});

test('config: internalPort must differ from port; internalHost must not be empty', () => {
  const dev = { dev: true };
  assert.throws(() => resolveConfig({ overrides: { ...dev, port: 9000, internalPort: 9000 } }), ConfigError);
  assert.throws(() => resolveConfig({ overrides: { ...dev, internalPort: 70000 } }), ConfigError);
  assert.throws(() => resolveConfig({ overrides: { ...dev, internalHost: '' } }), ConfigError);
  const c = resolveConfig({ flags: { dev: true, internalPort: '9100' } });
  assert.equal(c.internalPort, 9100);
  assert.equal(c.internalHost, '127.0.0.1');
  assert.equal(resolveConfig({ env: { HERALD_INTERNAL_HOST: '10.0.0.5' }, overrides: dev }).internalHost, '10.0.0.5');
});
