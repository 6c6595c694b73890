/**
 * Issue 15's weaker points at the edges (docs/security.md "Hostile input: bounds and the cases tested"), each with a
 * control subscriber (helpers/guard.ts):
 * - trusted proxies: behind a listed proxy the per-IP limit counts the client named by X-Forwarded-For / Forwarded,
 *   and a client cannot escape its quota by writing its own X-Forwarded-For; without the setting the header is ignored;
 * - --dev: a Host that does not name this machine is refused on every path (DNS rebinding), and a keyless publish from
 *   another site's page is refused (CSRF), while curl-like clients and this machine's pages keep working;
 * - /metrics outside --dev needs its bearer token (or metricsPublic); /healthz and /readyz stay open.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkDevHost } from '../src/http/dev-guard.js';
import { ClientAddress } from '../src/http/client-address.js';
import { guarded } from './helpers/guard.js';
import { parseHead, RawClient, type ParsedResponse } from './helpers/raw.js';
import { openStream, startServer, TEST_API_KEY, type TestServer } from './helpers/server.js';
import { openWs } from './helpers/ws.js';

/** Send one request on a new connection; resolves with its response head. `keep` leaves a stream open. */
async function request(url: string, bytes: string, keep?: RawClient[]): Promise<ParsedResponse> {
  const c = new RawClient(url);
  await c.write(bytes);
  await c.waitFor((r) => r.includes('\r\n\r\n'), 5000, 'a response head');
  const head = parseHead(c.received);
  if (keep && head.status === 200) keep.push(c);
  else c.destroy();
  return head;
}

const sub = (channel: string, extra = ''): string => `GET /sub?channel=${channel} HTTP/1.1\r\nHost: localhost\r\n${extra}\r\n`;

function codeOf(head: ParsedResponse): string | undefined {
  try {
    return (JSON.parse(head.body) as { error?: { code: string } }).error?.code;
  } catch {
    return undefined;
  }
}

test('trusted proxy: the per-IP limit counts the client X-Forwarded-For names; a forged hop to its left changes nothing', async () => {
  const node = await startServer({ trustedProxies: ['127.0.0.1', '10.0.0.0/8'], maxConnectionsPerIp: 2 });
  const held: RawClient[] = [];
  try {
    await guarded(node, { url: `${node.url}/sub?channel=control`, channel: 'control' }, async (guard) => {
      const a = 'X-Forwarded-For: 203.0.113.1\r\n';
      assert.equal((await request(node.url, sub('p', a), held)).status, 200);
      assert.equal((await request(node.url, sub('p', a), held)).status, 200);
      const third = await request(node.url, sub('p', a), held);
      assert.equal(third.status, 429, 'client A is over its quota');
      // A's own forged hop on the left: the proxy appended A's real address, which is what counts.
      assert.equal((await request(node.url, sub('p', 'X-Forwarded-For: 198.51.100.7, 203.0.113.1\r\n'), held)).status, 429);
      // A hop that is one of our proxies (10.x) is skipped: the client is the hop before it.
      assert.equal((await request(node.url, sub('p', 'X-Forwarded-For: 203.0.113.1, 10.1.2.3\r\n'), held)).status, 429);
      await guard.tick();
      // Client B behind the same proxy has its own quota, by X-Forwarded-For or by Forwarded.
      assert.equal((await request(node.url, sub('p', 'X-Forwarded-For: 203.0.113.2\r\n'), held)).status, 200);
      assert.equal((await request(node.url, sub('p', 'Forwarded: for="203.0.113.2:4711";proto=http\r\n'), held)).status, 200);
      assert.equal((await request(node.url, sub('p', 'Forwarded: for=203.0.113.2\r\n'), held)).status, 429);
      // WebSocket upgrades and long polls count the same client.
      await assert.rejects(openWs(`${node.url}/ws`, { headers: { 'X-Forwarded-For': '203.0.113.1' } }), /429/);
      const poll = await request(node.url, 'GET /poll?channel=p HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 203.0.113.1\r\n\r\n');
      assert.equal(poll.status, 429);
      for (const c of held.splice(0)) c.destroy();
    });
  } finally {
    for (const c of held) c.destroy();
    await node.close();
  }
});

test('no trusted proxies (the default): X-Forwarded-For is ignored, the peer is the client', async () => {
  const node = await startServer({ maxConnectionsPerIp: 2 });
  const held: RawClient[] = [];
  try {
    await guarded(node, { url: `${node.url}/sub?channel=control`, channel: 'control' }, async () => {
      // The control holds one of 127.0.0.1's two.
      assert.equal((await request(node.url, sub('p', 'X-Forwarded-For: 203.0.113.1\r\n'), held)).status, 200);
      assert.equal((await request(node.url, sub('p', 'X-Forwarded-For: 203.0.113.2\r\n'), held)).status, 429);
      for (const c of held.splice(0)) c.destroy();
    });
  } finally {
    for (const c of held) c.destroy();
    await node.close();
  }
  // The parsing rules, directly.
  const clients = new ClientAddress(['127.0.0.1', '::1', '10.0.0.0/8']);
  const h = (headers: Record<string, string>) => (name: string) => headers[name];
  assert.equal(clients.of('::ffff:127.0.0.1', h({ 'x-forwarded-for': '203.0.113.9' })), '203.0.113.9');
  assert.equal(clients.of('127.0.0.1', h({ 'x-forwarded-for': '[2001:db8::1]:443, 10.0.0.2' })), '2001:db8::1');
  assert.equal(clients.of('127.0.0.1', h({ 'x-forwarded-for': '203.0.113.9:5000' })), '203.0.113.9');
  assert.equal(clients.of('127.0.0.1', h({ 'x-forwarded-for': 'garbage' })), '127.0.0.1', 'a bad hop: the peer');
  assert.equal(clients.of('127.0.0.1', h({})), '127.0.0.1', 'no header: the peer');
  assert.equal(clients.of('192.0.2.1', h({ 'x-forwarded-for': '203.0.113.9' })), '192.0.2.1', 'an untrusted peer cannot name a client');
});

test('trusted proxy in --dev: a client forwarded from elsewhere is not "this machine", so it cannot publish without a key', async () => {
  const node = await startServer({ trustedProxies: ['127.0.0.1'] });
  try {
    await guarded(node, { url: `${node.url}/sub?channel=control`, channel: 'control' }, async () => {
      const watcher = await openStream(`${node.url}/sub?channel=fwd`);
      const body = '{"channel":"fwd","data":"x"}';
      const head = (xff: string): string =>
        `POST /api/publish HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n${xff}Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
      const remote = await request(node.url, head('X-Forwarded-For: 203.0.113.5\r\n'));
      assert.equal(remote.status, 401);
      const local = await request(node.url, head('X-Forwarded-For: 127.0.0.1\r\n'));
      assert.equal(local.status, 200, 'forwarded from this machine itself');
      await watcher.waitLines(1);
      assert.deepEqual(watcher.lines, ['["message","fwd","x"]'], 'only the local publish arrived');
      watcher.close();
    });
  } finally {
    await node.close();
  }
});

test('--dev: a Host that does not name this machine gets 403 host_not_allowed on every path, streams and upgrades too', async () => {
  const node = await startServer({});
  try {
    await guarded(node, { url: `${node.url}/sub?channel=control`, channel: 'control' }, async () => {
      const evil = 'Host: rebind.evil.example:8080\r\n';
      const body = '{"channel":"control","data":"evil"}';
      const requests: [string, string][] = [
        ['/sub (front reader)', `GET /sub?channel=h HTTP/1.1\r\n${evil}\r\n`],
        ['/sse', `GET /sse?channel=h HTTP/1.1\r\n${evil}\r\n`],
        ['/poll', `GET /poll?channel=h HTTP/1.1\r\n${evil}\r\n`],
        ['/healthz', `GET /healthz HTTP/1.1\r\n${evil}\r\n`],
        ['/metrics', `GET /metrics HTTP/1.1\r\n${evil}\r\n`],
        ['publish (fast path)', `POST /api/publish HTTP/1.1\r\n${evil}Content-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`],
        ['publish (node:http, chunked)', `POST /api/publish HTTP/1.1\r\n${evil}Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`],
        ['/ws upgrade', `GET /ws HTTP/1.1\r\n${evil}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`],
      ];
      for (const [what, bytes] of requests) {
        const head = await request(node.url, bytes);
        assert.equal(head.status, 403, `${what}: ${head.status} ${head.body}`);
        assert.equal(codeOf(head), 'host_not_allowed', what);
      }
      for (const host of ['localhost:8080', '127.0.0.1', '127.0.0.2:9', '[::1]:8080', 'app.localhost:3000', 'LOCALHOST']) {
        const head = await request(node.url, `GET /healthz HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
        assert.equal(head.status, 200, `Host ${host}`);
      }
      // HTTP/1.0 without Host: no browser sent it.
      assert.equal((await request(node.url, 'GET /healthz HTTP/1.0\r\n\r\n')).status, 200);
    });
  } finally {
    await node.close();
  }
  assert.doesNotThrow(() => checkDevHost({ dev: true, host: 'devbox.lan' }, 'devbox.lan:8080'), 'the configured host');
  assert.throws(() => checkDevHost({ dev: true, host: '0.0.0.0' }, '0.0.0.0:8080'), /host_not_allowed|refused/);
  assert.doesNotThrow(() => checkDevHost({ dev: false, host: '0.0.0.0' }, 'anything.example'), 'no Host check outside --dev');
});

test('--dev: a keyless publish from another site (Origin, Sec-Fetch-Site) is refused 403; curl, this machine\'s pages and allowed origins publish', async () => {
  const node = await startServer({ allowedOrigins: ['https://app.example'] });
  try {
    await guarded(node, { url: `${node.url}/sub?channel=control`, channel: 'control' }, async () => {
      const watcher = await openStream(`${node.url}/sub?channel=csrf`);
      const form = (extra: string, data: string, chunked = false): string => {
        const body = `{"channel":"csrf","data":"${data}"}`;
        return chunked
          ? `POST /api/publish HTTP/1.1\r\nHost: localhost:8080\r\nContent-Type: text/plain\r\n${extra}Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`
          : `POST /api/publish HTTP/1.1\r\nHost: localhost:8080\r\nContent-Type: text/plain\r\n${extra}Content-Length: ${body.length}\r\n\r\n${body}`;
      };
      const refused: [string, string][] = [
        ['evil origin', form('Origin: https://evil.example\r\n', 'e1')],
        ['evil origin, node:http path', form('Origin: https://evil.example\r\n', 'e2', true)],
        ['null origin', form('Origin: null\r\n', 'e3')],
        ['cross-site fetch metadata', form('Sec-Fetch-Site: cross-site\r\n', 'e4')],
      ];
      for (const [what, bytes] of refused) {
        const head = await request(node.url, bytes);
        assert.equal(head.status, 403, `${what}: ${head.status} ${head.body}`);
        assert.equal(codeOf(head), 'origin_not_allowed', what);
      }
      const allowed: [string, string][] = [
        ['curl (no Origin)', form('', 'ok1')],
        ['a page on this machine', form('Origin: http://localhost:3000\r\nSec-Fetch-Site: same-site\r\n', 'ok2')],
        ['an allowed origin', form('Origin: https://app.example\r\nSec-Fetch-Site: cross-site\r\n', 'ok3')],
        ['an evil page with the API key (not CSRF: it holds the key)', form(`Origin: https://evil.example\r\nAuthorization: Bearer ${TEST_API_KEY}\r\n`, 'ok4')],
      ];
      for (const [what, bytes] of allowed) assert.equal((await request(node.url, bytes)).status, 200, what);

      await watcher.waitLines(4);
      assert.deepEqual(
        watcher.lines.map((l) => (JSON.parse(l) as string[])[2]),
        ['ok1', 'ok2', 'ok3', 'ok4'],
        'nothing from the refused pages arrived',
      );
      watcher.close();
    });
  } finally {
    await node.close();
  }
});

test('--dev /ws: any page may open and subscribe (no allowedOrigins), but its keyless publish is refused', async () => {
  const node = await startServer({});
  try {
    await guarded(node, { url: `${node.url}/sub?channel=control`, channel: 'control' }, async () => {
      const watcher = await openStream(`${node.url}/sub?channel=csrf`);
      const evilWs = await openWs(`${node.url}/ws`, { origin: 'https://evil.example' });
      const denied = await evilWs.request('publish', { channel: 'csrf', data: 'evil' });
      assert.equal(denied.error?.code, 'origin_not_allowed');
      assert.equal((await evilWs.request('subscribe', { channel: 'csrf' })).type, 'reply');
      evilWs.close();
      const localWs = await openWs(`${node.url}/ws`, { origin: 'http://127.0.0.1:5173' });
      assert.equal((await localWs.request('publish', { channel: 'csrf', data: 'local' })).type, 'reply');
      localWs.close();
      await watcher.waitLines(1);
      assert.deepEqual(watcher.lines, ['["message","csrf","local"]']);
      watcher.close();
    });
  } finally {
    await node.close();
  }
});

async function metricsStatus(node: TestServer, token?: string): Promise<number> {
  const res = await fetch(`${node.url}/metrics`, token === undefined ? {} : { headers: { Authorization: `Bearer ${token}` } });
  const text = await res.text();
  if (res.status === 200) assert.match(text, /^# HELP herald_/m);
  return res.status;
}

test('/metrics outside --dev: 401 without its token, 200 with it or with metricsPublic; /healthz and /readyz stay open', async () => {
  const token = 'metrics-token-0123456789abcdef';
  const open = { dev: false, defaultNamespace: { anonymous: true } };
  const closed = await startServer(open);
  const withToken = await startServer({ ...open, metricsToken: token });
  const publicMetrics = await startServer({ ...open, metricsPublic: true });
  const dev = await startServer({});
  try {
    await guarded(withToken, { url: `${withToken.url}/sub?channel=control`, channel: 'control' }, async () => {
      assert.equal(await metricsStatus(closed), 401, 'no token configured: closed');
      assert.equal(await metricsStatus(closed, token), 401);
      assert.equal(await metricsStatus(withToken), 401);
      assert.equal(await metricsStatus(withToken, 'wrong-token-0123456789abcdef'), 401);
      assert.equal(await metricsStatus(withToken, TEST_API_KEY), 401, 'a publish key is not the metrics token');
      assert.equal(await metricsStatus(withToken, token), 200);
      assert.equal(await metricsStatus(publicMetrics), 200);
      assert.equal(await metricsStatus(dev), 200, '--dev: open');
      for (const n of [closed, withToken]) {
        assert.equal((await fetch(`${n.url}/healthz`)).status, 200);
        assert.equal((await fetch(`${n.url}/readyz`)).status, 200);
      }
    });
  } finally {
    await Promise.all([closed, withToken, publicMetrics, dev].map((n) => n.close()));
  }
});
