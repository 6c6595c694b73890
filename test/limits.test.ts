/** Bounds on every network input: URL, headers, header time, connections per node and per IP, slow consumers. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { HeraldConfig } from '../src/config.js';
import type { Logger, LogFields } from '../src/util/log.js';
import { parseHead, RawClient } from './helpers/raw.js';
import { eventually, openStream, publish, startServer, type TestServer } from './helpers/server.js';

type ErrorBody = { error: { code: string; message: string } };

async function fresh(t: { after(fn: () => Promise<void>): void }, config: Partial<HeraldConfig> = {}): Promise<TestServer> {
  const s = await startServer(config);
  t.after(() => s.close());
  return s;
}

/** Send raw bytes and return the parsed answer, which must come with the documented JSON error. */
async function exchange(url: string, bytes: string, options: { localAddress?: string } = {}) {
  const c = new RawClient(url, options);
  try {
    await c.write(bytes);
    await c.waitFor((r) => {
      const end = r.indexOf('\r\n\r\n');
      if (end < 0) return false;
      const length = /content-length: (\d+)/i.exec(r.slice(0, end));
      return length !== null && r.length >= end + 4 + Number(length[1]);
    }, 5000, 'a complete answer');
    const res = parseHead(c.received);
    return { ...res, error: JSON.parse(res.body) as ErrorBody };
  } finally {
    c.destroy();
  }
}

test('a URL over maxUrlBytes is 414, on stream and other routes', async (t) => {
  const s = await fresh(t, { maxUrlBytes: 512 });
  for (const path of [`/sub?channel=${'a'.repeat(600)}`, `/healthz?x=${'a'.repeat(600)}`, `/sse?channel=a&pad=${'b'.repeat(600)}`]) {
    const res = await exchange(s.url, `GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    assert.equal(res.status, 414, path.slice(0, 20));
    assert.equal(res.error.error.code, 'uri_too_long');
  }
  // Just under the bound is fine.
  const ok = await fetch(`${s.url}/healthz?x=${'a'.repeat(400)}`);
  assert.equal(ok.status, 200);
});

test('headers over maxHeaderBytes are 431, on stream and other routes', async (t) => {
  const s = await fresh(t, { maxHeaderBytes: 2048 });
  for (const path of ['/sub?channel=a', '/healthz', '/api/publish']) {
    const res = await exchange(s.url, `GET ${path} HTTP/1.1\r\nHost: localhost\r\nX-Pad: ${'p'.repeat(4000)}\r\n\r\n`);
    assert.equal(res.status, 431, path);
    assert.equal(res.error.error.code, 'header_too_large');
  }
  // Larger than node:http's combined bound (URL + headers) too.
  const huge = await exchange(s.url, `GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Pad: ${'p'.repeat(20_000)}\r\n\r\n`);
  assert.equal(huge.status, 431);
  assert.equal(huge.error.error.code, 'header_too_large');
  assert.equal((await fetch(`${s.url}/healthz`, { headers: { 'X-Pad': 'p'.repeat(1000) } })).status, 200);
  const ok = await openStream(`${s.url}/sub?channel=a`, { 'X-Pad': 'p'.repeat(1000) });
  ok.close();
  assert.equal(ok.status, 200);
});

test('over maxConnections: 503, and the streams already open keep receiving', async (t) => {
  const s = await fresh(t, { maxConnections: 2 });
  const a = await openStream(`${s.url}/sub?channel=full`);
  const b = await openStream(`${s.url}/sse?channel=full`);
  t.after(() => {
    a.close();
    b.close();
  });
  const res = await exchange(s.url, 'GET /sub?channel=full HTTP/1.1\r\nHost: localhost\r\n\r\n');
  assert.equal(res.status, 503);
  assert.equal(res.error.error.code, 'unavailable');
  assert.match(res.error.error.message, /2/);
  await publish(s.url, { channel: 'full', data: 'still here' });
  assert.deepEqual(await a.waitLines(1), ['["message","full","still here"]']);
  // The API and health routes are not streams: they still answer.
  assert.equal((await fetch(`${s.url}/healthz`)).status, 200);
  // A freed slot can be taken again.
  a.close();
  await eventually(() => s.server.node.sessionCount() === 1, 2000, 'a slot freed');
  const c = await openStream(`${s.url}/sub?channel=full`);
  t.after(() => c.close());
  assert.equal(c.status, 200);
});

test('over maxConnectionsPerIp: 429 for that address only', async (t) => {
  const s = await fresh(t, { maxConnectionsPerIp: 2 });
  const held = [new RawClient(s.url), new RawClient(s.url)];
  t.after(() => held.forEach((c) => c.destroy()));
  for (const c of held) {
    await c.write('GET /sub?channel=ip HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await c.waitFor((r) => r.startsWith('HTTP/1.1 200'), 5000, 'a stream');
  }
  const res = await exchange(s.url, 'GET /sub?channel=ip HTTP/1.1\r\nHost: localhost\r\n\r\n');
  assert.equal(res.status, 429);
  assert.equal(res.error.error.code, 'too_many_requests');
  // Another source address (all of 127/8 is loopback) is not affected.
  const other = new RawClient(s.url, { localAddress: '127.0.0.2' });
  t.after(() => other.destroy());
  await other.write('GET /sub?channel=ip HTTP/1.1\r\nHost: localhost\r\n\r\n');
  await other.waitFor((r) => r.startsWith('HTTP/1.1 200'), 5000, 'a stream from 127.0.0.2');
  await publish(s.url, { channel: 'ip', data: 'all three' });
  for (const c of [...held, other]) await c.waitFor((r) => r.includes('all three'), 2000, 'the message');
});

test('header timeout: a client that connects and never sends is closed at headersTimeoutMs', async (t) => {
  const s = await fresh(t, { headersTimeoutMs: 600 });
  const c = new RawClient(s.url);
  t.after(() => c.destroy());
  await c.ready();
  const ms = await c.waitClose(4000);
  assert.ok(ms >= 500, `closed too early, after ${ms} ms`);
  assert.ok(ms <= 600 + 2400, `closed after ${ms} ms`);
  assertTimeoutAnswer(c.received);
});

/** A timed-out request is answered 408 request_timeout where the socket still takes it. */
function assertTimeoutAnswer(received: string): void {
  if (received === '') return;
  const res = parseHead(received);
  assert.equal(res.status, 408, received);
  assert.equal((JSON.parse(res.body) as ErrorBody).error.code, 'request_timeout');
}

for (const [name, request] of [
  ['a stream request', 'GET /sub?channel=slowloris HTTP/1.1\r\nHost: localhost\r\nX-A: b\r\n\r\n'],
  ['another request', 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-A: bbbbbbbbbbbbbbbbbbbbbbbbb\r\n\r\n'],
] as const) {
  test(`header timeout: ${name} sent one byte at a time is closed at headersTimeoutMs`, async (t) => {
    const s = await fresh(t, { headersTimeoutMs: 600 });
    const c = new RawClient(s.url);
    t.after(() => c.destroy());
    await c.ready();
    let i = 0;
    const drip = setInterval(() => {
      if (c.closed || i >= request.length) return clearInterval(drip);
      c.socket.write(request[i++] ?? '');
    }, 40);
    t.after(() => clearInterval(drip));
    const ms = await c.waitClose(5000);
    assert.ok(i < request.length, 'the request was never completed');
    assert.ok(ms >= 500 && ms <= 600 + 2400, `closed after ${ms} ms`);
    assertTimeoutAnswer(c.received);
    assert.equal(s.server.node.sessionCount(), 0);
  });
}

interface LogLine {
  level: string;
  msg: string;
  fields: LogFields | undefined;
}

function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (msg: string, fields?: LogFields) => void lines.push({ level, msg, fields });
  return { lines, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } };
}

test('a client that never reads is disconnected as slow once its queue fills; others are unaffected', async (t) => {
  const { logger, lines } = captureLogger();
  const s = await startServer({ maxQueueBytes: 64 * 1024, maxBodyBytes: 1 << 20, closeGraceMs: 1000 }, { logger });
  t.after(() => s.close());
  const node = s.server.node;

  const control = await openStream(`${s.url}/sub?channel=flood`);
  t.after(() => control.close());
  const slow = new RawClient(s.url, { read: false });
  t.after(() => slow.destroy());
  await slow.write('GET /sub?channel=flood&channel=slow-only HTTP/1.1\r\nHost: localhost\r\n\r\n');
  await eventually(() => node.hub.subscriptionCount() === 3, 2000, 'the slow client subscribed');
  assert.equal(node.broker.subscribedCount(), 2);

  // Flood until the slow client is cut off: the kernel buffers absorb a few MB before the node's queue fills.
  const payload = 'x'.repeat(256 * 1024);
  let sent = 0;
  while (node.hub.subscriptionCount() > 1 && sent < 400) {
    const res = await publish(s.url, { channel: 'flood', data: `${sent}:${payload}` });
    assert.equal(res.status, 200);
    sent++;
  }
  assert.equal(node.hub.subscriptionCount(), 1, `the slow client is still subscribed after ${sent} messages of 256 KiB`);
  // It never reads its last words: the node's ticker destroys its socket once closeGraceMs has passed (the paused
  // client cannot see that), and only then does it stop counting against the connection limits.
  const cutAt = Date.now();
  assert.equal(node.sessionCount(), 2, 'the slow client still counts while its socket is open');
  await eventually(() => node.sessionCount() === 1, 5000, 'the slow socket destroyed');
  const closedIn = Date.now() - cutAt;
  assert.ok(closedIn <= 1000 + 1500, `closed ${closedIn} ms after the cut`);

  // Its channels are released: slow-only is gone from the hub and the broker, flood is held by the control only.
  assert.equal(node.hub.subscriptionCount(), 1);
  assert.equal(node.hub.channelCount(), 1);
  await eventually(() => node.broker.subscribedCount() === 1, 2000, 'broker unsubscribed slow-only');

  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  assert.match(metrics, /^herald_disconnects_total\{reason="slow"\} 1$/m);
  const warning = lines.find((l) => l.level === 'warn' && /queue/.test(l.msg));
  assert.ok(warning, `no warning logged: ${JSON.stringify(lines)}`);
  assert.equal(warning.fields?.['limitBytes'], 64 * 1024);

  // The control subscriber got every message, in order.
  const got = await control.waitLines(sent, 10_000);
  got.forEach((line, i) => assert.ok(line.startsWith(`["message","flood","${i}:`), `line ${i} out of order`));
});
