// The admin dashboard's HTTP edges outside --dev (issue 9 §1): off without a secret, the login and its limit, the
// cookie, the Origin and CSRF checks, the headers; and the node-to-node control channel no client can reach.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { NODE_CONTROL_CHANNEL } from '../src/broker/broker.js';
import { ADMIN_CSP } from '../src/http/admin/routes.js';
import { LOGIN_FAILURES_PER_ADDRESS } from '../src/http/admin/auth.js';
import { openStream, publish, startServer, type TestServer } from './helpers/server.js';

const ADMIN_SECRET = 'admin-secret-for-tests-0123456789';
let off: TestServer;
let on: TestServer;
before(async () => {
  off = await startServer({ dev: false, metricsPublic: true });
  on = await startServer({ dev: false, adminSecret: ADMIN_SECRET });
});
after(async () => {
  await off.close();
  await on.close();
});

const origin = (s: TestServer): string => s.url;

function login(s: TestServer, secret: string, headers: Record<string, string> = { Origin: origin(s) }): Promise<Response> {
  return fetch(`${s.url}/admin/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams({ secret }).toString(),
    redirect: 'manual',
  });
}

test('without an admin secret, outside --dev, every /admin path is 404', async () => {
  for (const path of ['/admin', '/admin/events', '/admin/api/session', '/admin/admin.js', '/admin/api/channel?name=x']) {
    const res = await fetch(`${off.url}${path}`);
    assert.equal(res.status, 404, path);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'not_found');
  }
  assert.equal((await login(off, ADMIN_SECRET)).status, 404);
});

test('login: the form, wrong secrets refused, a signed HttpOnly SameSite=Strict cookie, strict headers', async () => {
  const page = await fetch(`${on.url}/admin`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /name="secret"/);
  assert.equal(page.headers.get('content-security-policy'), ADMIN_CSP);
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(page.headers.get('cache-control'), 'no-store');
  assert.equal(page.headers.get('x-frame-options'), 'DENY');
  assert.equal(page.headers.get('set-cookie'), null, 'no cookie before the login');

  assert.equal((await login(on, 'wrong-secret-wrong-secret')).status, 401);
  assert.equal((await login(on, ADMIN_SECRET, {})).status, 403, 'no Origin');
  assert.equal((await login(on, ADMIN_SECRET, { Origin: 'http://evil.example' })).status, 403, 'another origin');
  assert.equal((await login(on, ADMIN_SECRET, { Origin: origin(on), 'Sec-Fetch-Site': 'cross-site' })).status, 403);

  const ok = await login(on, ADMIN_SECRET);
  assert.equal(ok.status, 303);
  assert.equal(ok.headers.get('location'), '/admin');
  const cookie = ok.headers.get('set-cookie') ?? '';
  assert.match(cookie, /^herald_admin=v1\.[^;]+; Path=\/admin; HttpOnly; SameSite=Strict; Max-Age=28800$/);
  const value = cookie.split(';')[0]!;
  const session = await fetch(`${on.url}/admin/api/session`, { headers: { Cookie: value } });
  assert.equal(session.status, 200);
  const { csrf, node } = (await session.json()) as { csrf: string; node: string };
  assert.equal(node, on.server.node.nodeId);
  assert.equal((await fetch(`${on.url}/admin`, { headers: { Cookie: value } })).headers.get('content-type'), 'text/html; charset=utf-8');

  // A forged or altered cookie is nobody.
  const tampered = value.slice(0, -2) + (value.endsWith('A') ? 'BB' : 'AA');
  assert.equal((await fetch(`${on.url}/admin/api/session`, { headers: { Cookie: tampered } })).status, 401);
  assert.equal((await fetch(`${on.url}/admin/events`, { headers: { Cookie: tampered } })).status, 401);

  // Actions: same origin and the CSRF token, both.
  const act = (headers: Record<string, string>): Promise<Response> =>
    fetch(`${on.url}/admin/api/publish`, { method: 'POST', headers: { Cookie: value, ...headers }, body: JSON.stringify({ channel: 'adm-h', data: 'x' }) });
  assert.equal((await act({ Origin: origin(on) })).status, 403, 'no CSRF token');
  assert.equal((await act({ Origin: origin(on), 'X-Herald-CSRF': csrf.slice(1) + 'x' })).status, 403, 'wrong CSRF token');
  assert.equal((await act({ Origin: 'http://evil.example', 'X-Herald-CSRF': csrf })).status, 403, 'another origin');
  assert.equal((await act({ 'X-Herald-CSRF': csrf })).status, 403, 'no Origin');
  const done = await act({ Origin: origin(on), 'X-Herald-CSRF': csrf });
  assert.equal(done.status, 200);
  assert.equal(done.headers.get('content-security-policy'), ADMIN_CSP);

  const disconnect = await fetch(`${on.url}/admin/api/disconnect`, {
    method: 'POST',
    headers: { Cookie: value, Origin: origin(on), 'X-Herald-CSRF': csrf },
    body: JSON.stringify({ client: `${on.server.node.nodeId}-zz` }),
  });
  assert.equal(disconnect.status, 404, 'no such client');
  assert.equal((await fetch(`${on.url}/admin/api/channel?name=%00herald%3Acontrol`, { headers: { Cookie: value } })).status, 400);
});

test('failed logins are limited per address: after the limit even the right secret waits', async () => {
  const s = await startServer({ dev: false, adminSecret: ADMIN_SECRET });
  try {
    for (let i = 0; i < LOGIN_FAILURES_PER_ADDRESS; i++) assert.equal((await login(s, `wrong-${i}-secret-secret`)).status, 401);
    const limited = await login(s, ADMIN_SECRET);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '60');
    assert.equal(limited.headers.get('set-cookie'), null);
  } finally {
    await s.close();
  }
});

test('the control channel cannot be reached by clients, and malformed control messages are dropped', async () => {
  const dev = await startServer();
  try {
    assert.equal((await publish(dev.url, { channel: NODE_CONTROL_CHANNEL, data: '{}' })).status, 400);
    const sub = await openStream(`${dev.url}/sub?channel=${encodeURIComponent(NODE_CONTROL_CHANNEL)}`);
    assert.equal(sub.status, 400);
    const control = dev.server.node.control;
    const before = control.dropped;
    const client = dev.server.node;
    const stream = await openStream(`${dev.url}/sub?channel=adm-ctl`);
    const id = client.sessionsOn('adm-ctl')[0]!.id;
    // Through the broker as another node would: garbage, a wrong shape, an unknown type; then a real disconnect.
    for (const data of ['not json', '[]', '{"type":"stats","from":"x"}', '{"type":"nope","from":"abc","body":{}}']) {
      await dev.server.node.broker.publish(NODE_CONTROL_CHANNEL, data);
    }
    assert.equal(control.dropped, before + 4);
    assert.equal(client.sessionsOn('adm-ctl').length, 1);
    await dev.server.node.broker.publish(NODE_CONTROL_CHANNEL, JSON.stringify({ type: 'disconnect', from: 'peer1', to: client.nodeId, body: { client: id } }));
    await stream.ended;
    assert.match(stream.lines.at(-1) ?? '', /"disconnected",3530/);
    assert.equal(client.broker.subscribedCount(), 0, 'the control channel is not counted as a client channel');
  } finally {
    await dev.close();
  }
});
