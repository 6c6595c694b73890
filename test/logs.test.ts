/**
 * Logs (issue 9 §2): JSON or text lines, the access log (one line per request answered and per stream ended, with
 * the path but never the query), connection ids on lines about a connection, and credentials masked in every line.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { ConfigError, resolveConfig } from '../src/config.js';
import { sealChannel } from '../src/auth/sealed-key.js';
import { signToken } from '../src/auth/jwt.js';
import { createLogger, REDACTED, redact, redactText } from '../src/util/log.js';
import { rawExchange } from './helpers/raw.js';
import { eventually, openStream, publish, startServer, TEST_API_KEY, TEST_SECRET } from './helpers/server.js';
import { openWs } from './helpers/ws.js';

type Line = Record<string, string | number | boolean>;

/** A node whose log lines are kept (JSON) for the test to read. */
async function loggedNode(overrides: Parameters<typeof startServer>[0] = {}) {
  const raw: string[] = [];
  const node = await startServer({ accessLog: true, ...overrides }, { logger: createLogger('debug', (l) => raw.push(l)) });
  const lines = (): Line[] => raw.map((l) => JSON.parse(l) as Line);
  const access = (match: (l: Line) => boolean): Line | undefined => lines().find((l) => l['msg'] === 'access' && match(l));
  return { node, raw, lines, access };
}

test('access log: requests with path, status, bytes and duration, never the query', async (t) => {
  const { node, raw, access } = await loggedNode();
  t.after(() => node.close());
  assert.equal((await fetch(`${node.url}/healthz?token=query-secret-1`)).status, 200);
  assert.equal((await fetch(`${node.url}/nowhere?key=query-secret-2`)).status, 404);
  // A first request on a fresh connection is a publish the front reader answers itself.
  assert.equal((await rawExchange(node.url, publishRequest('{"channel":"c","data":"x"}'))).split(' ')[1], '200');
  // A stream refused before it started, by the front reader.
  await rawExchange(node.url, 'GET /sub?token=query-secret-3 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  await eventually(() => access((l) => l['path'] === '/sub') !== undefined, 3000, 'the refused stream line');
  const health = access((l) => l['path'] === '/healthz');
  assert.ok(health, 'a line for /healthz');
  assert.equal(health['method'], 'GET');
  assert.equal(health['status'], 200);
  assert.equal(health['transport'], 'http');
  assert.ok((health['bytes'] as number) > 0);
  assert.ok((health['ms'] as number) >= 0);
  assert.equal(access((l) => l['path'] === '/nowhere')?.['status'], 404);
  const pub = access((l) => l['path'] === '/api/publish');
  assert.equal(pub?.['status'], 200);
  assert.equal(pub?.['method'], 'POST');
  assert.equal(access((l) => l['path'] === '/sub')?.['status'], 401);
  assert.doesNotMatch(raw.join(''), /query-secret|\?/);
});

test('access log: a stream ended has its transport, connection id, bytes and reason', async (t) => {
  const { node, access, raw } = await loggedNode();
  t.after(() => node.close());
  const s = await openStream(`${node.url}/sub?channel=logged`);
  await publish(node.url, { channel: 'logged', data: 'hello' });
  await s.waitLines(1);
  s.close();
  await eventually(() => access((l) => l['transport'] === 'sub') !== undefined, 3000, 'the stream line');
  const line = access((l) => l['transport'] === 'sub')!;
  assert.equal(line['path'], '/sub');
  assert.equal(line['status'], 200);
  assert.equal(line['reason'], 'client_gone');
  assert.match(String(line['conn']), new RegExp(`^${node.server.node.nodeId}-[0-9a-z]+$`));
  assert.ok((line['bytes'] as number) > 'hello'.length);

  const ws = await openWs(`${node.url}/ws`);
  const token = await signToken({ channels: ['w'], secret: TEST_SECRET });
  const connected = await ws.request('connect', { token });
  const client = String(connected.result?.['client']);
  ws.close();
  await eventually(() => access((l) => l['transport'] === 'ws') !== undefined, 3000, 'the WebSocket line');
  const wsLine = access((l) => l['transport'] === 'ws')!;
  assert.equal(wsLine['status'], 101);
  assert.equal(wsLine['conn'], client, 'the id the client was told');
  assert.ok(!raw.join('').includes(token), 'the token is in no line');
});

test('a slow client: its warning and its access line name the same connection', async (t) => {
  const { node, lines, access } = await loggedNode({ maxQueueBytes: 1024, maxBodyBytes: 1 << 20, heartbeatSeconds: 3600, closeGraceMs: 200 });
  t.after(() => node.close());
  // A client that stops reading once its stream started: its queue fills and it is cut as slow.
  const socket = net.connect(Number(new URL(node.url).port), '127.0.0.1');
  t.after(() => socket.destroy());
  socket.on('error', () => undefined);
  socket.write('GET /sub?channel=slowpoke HTTP/1.1\r\nHost: localhost\r\n\r\n');
  await new Promise((r) => socket.once('data', r));
  socket.pause();
  const slow = (): number => node.server.node.metrics.disconnects.get({ reason: 'slow' });
  const payload = 'p'.repeat(256 * 1024);
  for (let i = 0; i < 400 && slow() === 0; i++) await publish(node.url, { channel: 'slowpoke', data: payload });
  assert.equal(slow(), 1, 'the stalled client was cut as slow');
  await eventually(() => access((l) => l['reason'] === 'slow') !== undefined, 5000, 'the access line of the slow stream');
  const warning = lines().find((l) => l['level'] === 'warn' && /queue full/.test(String(l['msg'])));
  assert.ok(warning, 'the slow warning');
  assert.match(String(warning['conn']), new RegExp(`^${node.server.node.nodeId}-`));
  assert.equal(access((l) => l['reason'] === 'slow')?.['conn'], warning['conn']);
});

test('redact: credential fields and credentials inside text are masked', () => {
  const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJjaGFubmVscyI6WyJhIl19.c2lnbmF0dXJl';
  const out = redact({
    token: 'tok-1',
    authorization: 'Bearer abc',
    cookie: 'herald_token=xyz',
    apiKey: 'k-1',
    api_key: 'k-2',
    secret: 's-1',
    previousSecret: 's-2',
    sealedKey: 'sk-1',
    key: 'sk-2',
    metricsToken: 'mt-1',
    path: '/sub',
    err: `Error: refused Bearer ${TEST_API_KEY} for ${jwt}`,
    url: 'redis://default:hunter2pass@10.0.0.1:6379',
    query: '/sub?channel=a&token=t-9&key=k-9',
    count: 3,
  });
  for (const f of ['token', 'authorization', 'cookie', 'apiKey', 'api_key', 'secret', 'previousSecret', 'sealedKey', 'key', 'metricsToken']) {
    assert.equal(out[f], REDACTED, f);
  }
  assert.equal(out['path'], '/sub');
  assert.equal(out['count'], 3);
  assert.equal(out['err'], `Error: refused Bearer ${REDACTED} for ${REDACTED}`);
  assert.equal(out['url'], `redis://default:${REDACTED}@10.0.0.1:6379`);
  assert.equal(out['query'], `/sub?channel=a&token=${REDACTED}&key=${REDACTED}`);
  assert.equal(redactText('no secrets here: channel=news'), 'no secrets here: channel=news');
});

test('the logger masks the message text too, in both formats', () => {
  for (const format of ['json', 'text'] as const) {
    const out: string[] = [];
    const log = createLogger('info', (l) => out.push(l), format);
    log.warn(`bad header Authorization: Bearer ${TEST_API_KEY}`, { detail: `token=${TEST_SECRET}` });
    assert.equal(out.length, 1);
    assert.ok(!out[0]!.includes(TEST_API_KEY) && !out[0]!.includes(TEST_SECRET), out[0]);
  }
});

test('no credential reaches the log: API key, token, sealed key, cookie, in text format too', async (t) => {
  const raw: string[] = [];
  const node = await startServer(
    { accessLog: true, tokenCookie: 'herald_token', logFormat: 'text' },
    { logger: createLogger('debug', (l) => raw.push(l), 'text') },
  );
  t.after(() => node.close());
  const token = await signToken({ channels: ['secret-chan'], secret: TEST_SECRET });
  const key = sealChannel('secret-chan', { secret: TEST_SECRET });
  const streams = await Promise.all([
    openStream(`${node.url}/sub?token=${token}`),
    openStream(`${node.url}/sse?key=${encodeURIComponent(key)}`),
    openStream(`${node.url}/sub`, { Authorization: `Bearer ${token}` }),
    openStream(`${node.url}/sse`, { Cookie: `herald_token=${token}` }),
  ]);
  assert.deepEqual(streams.map((s) => s.status), [200, 200, 200, 200]);
  assert.equal((await publish(node.url, { channel: 'secret-chan', data: 'x' })).status, 200);
  assert.equal((await publish(node.url, { channel: 'secret-chan', data: 'x' }, 'wrong-key-0123456789')).status, 401);
  // node:http's path: a second request on a kept-alive connection.
  await fetch(`${node.url}/healthz?token=${token}`, { headers: { Authorization: `Bearer ${TEST_API_KEY}` } });
  await fetch(`${node.url}/api/publish?token=${token}`, { method: 'POST', headers: { Authorization: `Bearer ${TEST_API_KEY}` }, body: '{' });
  for (const s of streams) s.close();
  await eventually(() => raw.filter((l) => / access .*transport=(sub|sse)/.test(l)).length >= 4, 3000, 'stream lines');
  const text = raw.join('');
  for (const secret of [TEST_API_KEY, token, key, encodeURIComponent(key), 'wrong-key-0123456789']) {
    assert.ok(!text.includes(secret), `a credential in the log:\n${text}`);
  }
  // The text format: TIME LEVEL message key=value ...
  assert.match(text, /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO access method=GET path=\/healthz status=200 bytes=\d+ ms=\d+ transport=http remote=127\.0\.0\.1$/m);
});

test('text format: a value cannot forge a line or a field', () => {
  const out: string[] = [];
  createLogger('info', (l) => out.push(l), 'text').info('access', { path: '/x\n2026-01-01T00:00:00Z ERROR forged status=500', note: 'a=b', esc: '\u001b[31m' });
  assert.equal(out.length, 1);
  assert.equal(out[0]!.split('\n').length, 2, 'one line, then the newline');
  assert.match(out[0]!, / path="\/x\\n2026-01-01T00:00:00Z ERROR forged status=500" note="a=b" esc="\\u001b\[31m"\n$/);
});

test('config: logFormat is json or text; accessLog is a boolean', () => {
  assert.equal(resolveConfig({ overrides: { dev: true } }).logFormat, 'json');
  assert.equal(resolveConfig({ env: { HERALD_LOG_FORMAT: 'text', HERALD_ACCESS_LOG: 'true' }, overrides: { dev: true } }).accessLog, true);
  assert.throws(() => resolveConfig({ env: { HERALD_LOG_FORMAT: 'xml' }, overrides: { dev: true } }), ConfigError);
});

function publishRequest(body: string): string {
  return (
    `POST /api/publish HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${TEST_API_KEY}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}
