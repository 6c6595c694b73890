/** GET /sub: HTTP streaming in the seed's NDJSON line format, on the wire. */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import type { HeraldConfig } from '../src/config.js';
import { dechunk, parseHead, RawClient } from './helpers/raw.js';
import { eventually, openStream, publish, startServer, type TestServer } from './helpers/server.js';
import { ManualClock } from '../src/util/clock.js';

let node: TestServer;
before(async () => {
  node = await startServer({ maxChannelsPerConnection: 5 });
});
after(() => node.close());

const errorBody = (lines: string[]): unknown => JSON.parse(lines.join('\n'));

test('one stream carries several channels, each line naming its channel', async (t) => {
  const s = await openStream(`${node.url}/sub?channel=abc&channel=def`);
  t.after(() => s.close());
  assert.equal(s.status, 200);
  assert.equal(s.headers['content-type'], 'application/x-ndjson');
  assert.equal(s.headers['transfer-encoding'], 'chunked');
  assert.equal(s.headers['cache-control'], 'no-cache, no-store');
  await publish(node.url, { channel: 'abc', data: '1' });
  await publish(node.url, { channel: 'def', data: '2' });
  await publish(node.url, { channel: 'other', data: 'not for us' });
  await publish(node.url, { channel: 'abc', data: '3' });
  assert.deepEqual(await s.waitLines(3), [
    '["message","abc","1"]',
    '["message","def","2"]',
    '["message","abc","3"]',
  ]);
});

test('payloads are JSON-escaped: quotes, newlines, CR, unicode stay inside one line', async (t) => {
  const s = await openStream(`${node.url}/sub?channel=esc`);
  t.after(() => s.close());
  const data = 'a "quoted"\nline\r\nand \\ backslash, ünïcödé ✓, \u2028';
  await publish(node.url, { channel: 'esc', data });
  const [line = ''] = await s.waitLines(1);
  assert.deepEqual(JSON.parse(line), ['message', 'esc', data]);
});

test('a channel repeated in one request is subscribed once', async (t) => {
  const n = await fresh(t);
  const s = await openStream(`${n.url}/sub?channel=dup&channel=dup`);
  t.after(() => s.close());
  assert.equal(n.server.node.hub.subscriptionCount(), 1);
  await publish(n.url, { channel: 'dup', data: 'once' });
  await publish(n.url, { channel: 'dup', data: 'twice' });
  assert.deepEqual(await s.waitLines(2), ['["message","dup","once"]', '["message","dup","twice"]']);
});

test('headers are sent only once the subscription is live: a publish right after them is received', async () => {
  // Many rounds, each on a fresh channel, so the broker subscription is always new when the headers go out.
  for (let i = 0; i < 50; i++) {
    const channel = `live-${i}`;
    const s = await openStream(`${node.url}/sub?channel=${channel}`);
    try {
      const res = await publish(node.url, { channel, data: String(i) });
      assert.equal(res.status, 200);
      assert.deepEqual(await s.waitLines(1, 2000), [`["message","${channel}","${i}"]`]);
    } finally {
      s.close();
    }
  }
});

test('the publish happens the instant the status line arrives (raw socket)', async (t) => {
  const c = new RawClient(node.url);
  t.after(() => c.destroy());
  await c.write('GET /sub?channel=instant HTTP/1.1\r\nHost: localhost\r\n\r\n');
  await c.waitFor((r) => r.startsWith('HTTP/1.1 200'), 5000, 'status line');
  // Publish in-process on the same tick: no HTTP round trip hides a late subscription.
  await node.server.node.broker.publish('instant', 'now');
  await c.waitFor((r) => dechunk(parseHead(r).body).includes('["message","instant","now"]\n'), 2000, 'message');
});

test('HTTP/1.0 clients get a plain (not chunked) stream that ends with the connection', async (t) => {
  const c = new RawClient(node.url);
  t.after(() => c.destroy());
  await c.write('GET /sub?channel=old HTTP/1.0\r\n\r\n');
  await c.waitFor((r) => r.includes('\r\n\r\n'), 5000, 'head');
  const head = parseHead(c.received);
  assert.equal(head.status, 200);
  assert.equal(head.headers['transfer-encoding'], undefined);
  assert.equal(head.headers['connection'], 'close');
  assert.equal(head.headers['content-type'], 'application/x-ndjson');
  await publish(node.url, { channel: 'old', data: 'x' });
  await publish(node.url, { channel: 'old', data: 'y' });
  await c.waitFor((r) => parseHead(r).body === '["message","old","x"]\n["message","old","y"]\n', 2000, 'two plain lines');
});

/** A server of the test's own, so its counters see only the test's connections. */
async function fresh(t: { after(fn: () => Promise<void>): void }, config: Partial<HeraldConfig> = {}): Promise<TestServer> {
  const s = await startServer(config);
  t.after(() => s.close());
  return s;
}

/** Every session gone, and with them every hub and broker subscription. */
async function drained(s: TestServer, what: string): Promise<void> {
  const n = s.server.node;
  await eventually(
    () => n.sessionCount() === 0 && n.hub.subscriptionCount() === 0 && n.hub.channelCount() === 0 && n.broker.subscribedCount() === 0,
    3000,
    `${what}: sessions ${n.sessionCount()}, hub ${n.hub.subscriptionCount()}/${n.hub.channelCount()}, broker ${n.broker.subscribedCount()}`,
  );
}

test('bytes sent after a stream started cannot inject a response', async (t) => {
  const s = await fresh(t);
  const c = new RawClient(s.url);
  t.after(() => c.destroy());
  // A pipelined second request in the same packet, then more requests once the stream runs.
  await c.write(
    'GET /sub?channel=inj HTTP/1.1\r\nHost: localhost\r\n\r\n' +
      'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n' +
      'GET /sub?channel=inj2 HTTP/1.1\r\nHost: localhost\r\n\r\n',
  );
  await c.waitFor((r) => r.includes('\r\n\r\n'), 5000, 'head');
  await c.write(
    'GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n' +
      'POST /api/publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: 31\r\n\r\n{"channel":"inj","data":"evil"}',
  );
  await new Promise((r) => setTimeout(r, 200));
  await publish(s.url, { channel: 'inj', data: 'good' });
  await publish(s.url, { channel: 'inj2', data: 'other stream' });
  await c.waitFor((r) => dechunk(parseHead(r).body).includes('good'), 2000, 'the message');
  await new Promise((r) => setTimeout(r, 100));
  const received = c.received;
  assert.equal(received.split('HTTP/1.').length - 1, 1, `exactly one response on the wire: ${JSON.stringify(received)}`);
  assert.equal(dechunk(parseHead(received).body), '["message","inj","good"]\n');
  c.destroy();
  await drained(s, 'after the client left');
});

test('stream requests pipelined behind a request on a kept-alive connection leave nothing behind', async (t) => {
  const errors: string[] = [];
  const quiet = (): void => undefined;
  const s = await startServer({}, { logger: { debug: quiet, info: quiet, warn: quiet, error: (m, f) => errors.push(`${m} ${JSON.stringify(f)}`) } });
  t.after(() => s.close());
  const c = new RawClient(s.url);
  t.after(() => c.destroy());
  await c.write(
    'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n' +
      'GET /sub?channel=p1 HTTP/1.1\r\nHost: localhost\r\n\r\n' +
      'GET /sub?channel=p2 HTTP/1.1\r\nHost: localhost\r\n\r\n',
  );
  await c.waitFor((r) => r.includes('application/x-ndjson'), 5000, 'the stream head');
  await new Promise((r) => setTimeout(r, 200));
  await publish(s.url, { channel: 'p1', data: 'one' });
  await publish(s.url, { channel: 'p2', data: 'two' });
  await new Promise((r) => setTimeout(r, 100));
  const responses = c.received.split('HTTP/1.1 ').length - 1;
  assert.ok(responses <= 2, `at most the health answer and one stream: ${JSON.stringify(c.received)}`);
  c.destroy();
  await drained(s, 'after the client left');
  assert.deepEqual(errors, [], 'a pipelined request is a client mistake, not an internal error');
});

test('a client that closes its stream releases its subscriptions at once', async (t) => {
  const s = await fresh(t);
  const c = new RawClient(s.url);
  t.after(() => c.destroy());
  await c.write('GET /sub?channel=bye&channel=bye2 HTTP/1.1\r\nHost: localhost\r\n\r\n');
  await c.waitFor((r) => r.includes('\r\n\r\n'), 5000, 'head');
  assert.equal(s.server.node.hub.subscriptionCount(), 2);
  assert.equal(s.server.node.broker.subscribedCount(), 2);
  // A graceful close (FIN), as curl does on Ctrl-C: no message is published that would reveal a dead socket.
  c.socket.end();
  await drained(s, 'after FIN');
});

test('a client that keeps sending on a held stream is cut off and its subscription released', async (t) => {
  const s = await fresh(t);
  const c = new RawClient(s.url);
  t.after(() => c.destroy());
  await c.write('GET /sub?channel=chatty HTTP/1.1\r\nHost: localhost\r\n\r\n');
  await c.waitFor((r) => r.includes('\r\n\r\n'), 5000, 'head');
  assert.equal(s.server.node.hub.channelCount(), 1);
  c.socket.write(Buffer.alloc(64 * 1024, 'x'));
  await c.waitClose(5000);
  await drained(s, 'after the flood');
});

test('errors before the stream starts are JSON statuses', async (t) => {
  const cases: [string, number, string][] = [
    ['/sub', 400, 'bad_request'],
    ['/sub?channel=', 400, 'invalid_channel'],
    ['/sub?channel=' + 'x'.repeat(256), 400, 'invalid_channel'],
    ['/sub?channel=a%0Ab', 400, 'invalid_channel'],
    ['/sub?channel=a%00b', 400, 'invalid_channel'],
    ['/sub?channel=1&channel=2&channel=3&channel=4&channel=5&channel=6', 400, 'too_many_channels'],
  ];
  const s = await fresh(t, { maxChannelsPerConnection: 5 });
  for (const [path, status, code] of cases) {
    await t.test(`${path.slice(0, 60)} → ${status}`, async () => {
      const r = await openStream(s.url + path);
      assert.equal(r.status, status);
      assert.match(String(r.headers['content-type']), /^application\/json/);
      await r.ended;
      const body = errorBody(r.lines) as { error: { code: string; message: string } };
      assert.equal(body.error.code, code);
      assert.equal(typeof body.error.message, 'string');
      assert.ok(body.error.message.length > 0);
    });
  }
  await drained(s, 'nothing subscribed by a refused request');
});

test('the too-many-channels answer names the limit', async () => {
  const s = await openStream(`${node.url}/sub?${Array.from({ length: 6 }, (_, i) => `channel=c${i}`).join('&')}`);
  await s.ended;
  assert.match(s.lines.join(''), /5/);
});

test('POST /sub is 405 with an Allow header', async () => {
  const res = await fetch(`${node.url}/sub?channel=abc`, { method: 'POST', body: 'x' });
  assert.equal(res.status, 405);
  assert.equal(res.headers.get('allow'), 'GET');
  assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'method_not_allowed');
});

test('a stream on a keep-alive connection after another request works', async (t) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const health = await new Promise<number>((resolve, reject) => {
    http.get(`${node.url}/healthz`, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });
  assert.equal(health, 200);
  const lines = await new Promise<string>((resolve, reject) => {
    const req = http.get(`${node.url}/sub?channel=ka`, { agent }, (res) => {
      assert.equal(res.statusCode, 200);
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        if (buf.includes('\n')) {
          req.destroy();
          resolve(buf);
        }
      });
      void publish(node.url, { channel: 'ka', data: 'kept' });
    });
    req.on('error', reject);
  });
  assert.equal(lines, '["message","ka","kept"]\n');
});

test('idle /sub streams get a heartbeat: an empty line, which NDJSON readers skip', async (t) => {
  // The node's ticker runs on a ManualClock: the heartbeat is due when the test moves time, not after real seconds.
  const clock = new ManualClock(Date.now());
  const s = await startServer({ heartbeatSeconds: 5 }, { clock });
  t.after(() => s.close());
  const stream = await openStream(`${s.url}/sub?channel=idle`);
  t.after(() => stream.close());
  clock.advance(4000);
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(stream.lines, [], 'no heartbeat before heartbeatSeconds');
  clock.advance(1000);
  assert.deepEqual(await stream.waitLines(1, 3500), ['']);
  await publish(s.url, { channel: 'idle', data: 'after' });
  const lines = await stream.waitLines(2, 3500);
  assert.ok(lines.includes('["message","idle","after"]'), JSON.stringify(lines));
});

test('HEAD /sub is 405: a stream has no HEAD', async (t) => {
  const s = await fresh(t);
  const res = await fetch(`${s.url}/sub?channel=a`, { method: 'HEAD' });
  assert.equal(res.status, 405);
  assert.equal(res.headers.get('allow'), 'GET');
});

test('raw UTF-8 in the URL (curl sends it unencoded) names the same channel as its percent-encoded form', async (t) => {
  const s = await fresh(t);
  const raw = new RawClient(s.url);
  t.after(() => raw.destroy());
  await raw.write(Buffer.concat([Buffer.from('GET /sub?channel=caf'), Buffer.from('é', 'utf8'), Buffer.from(' HTTP/1.1\r\nHost: localhost\r\n\r\n')]));
  await raw.waitFor((r) => r.startsWith('HTTP/1.1 200'), 5000, 'the stream');
  const encoded = await openStream(`${s.url}/sub?channel=${encodeURIComponent('café')}`);
  t.after(() => encoded.close());
  assert.equal(s.server.node.hub.channelCount(), 1, 'one channel, whichever way it was written');
  await publish(s.url, { channel: 'café', data: 'crème' });
  assert.deepEqual(await encoded.waitLines(1), ['["message","café","crème"]']);
  await raw.waitFor((r) => Buffer.from(r, 'latin1').toString('utf8').includes('["message","café","crème"]'), 2000, 'the message');
});
