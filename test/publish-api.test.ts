/** POST /api/publish: bodies, answers, API keys, size bounds. Real HTTP clients only. */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { parseHead, RawClient } from './helpers/raw.js';
import { openStream, publish, startServer, TEST_API_KEY, type TestServer } from './helpers/server.js';

type ErrorBody = { error: { code: string; message: string } };

let dev: TestServer;
let prod: TestServer;
before(async () => {
  dev = await startServer({ maxBodyBytes: 1024, maxChannelsPerConnection: 3 });
  prod = await startServer({ dev: false });
});
after(async () => {
  await dev.close();
  await prod.close();
});

/** A publish with no Authorization header at all. */
async function publishWithoutKey(url: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${url}/api/publish`, { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as unknown };
}

function assertError(res: { status: number; body: unknown }, status: number, code: string): void {
  assert.equal(res.status, status, JSON.stringify(res.body));
  const body = res.body as ErrorBody;
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
}

test('one channel: answers {"id"} and the message reaches the subscriber', async (t) => {
  const s = await openStream(`${dev.url}/sub?channel=p1`);
  t.after(() => s.close());
  const res = await publish(dev.url, { channel: 'p1', data: 'hello' });
  assert.equal(res.status, 200);
  assert.ok(res.body !== null && typeof res.body === 'object' && 'id' in res.body, JSON.stringify(res.body));
  assert.deepEqual(await s.waitLines(1), ['["message","p1","hello"]']);
});

test('several channels: answers {"ids"} in order and every channel gets the message', async (t) => {
  const s = await openStream(`${dev.url}/sub?channel=m1&channel=m2`);
  t.after(() => s.close());
  const res = await publish(dev.url, { channels: ['m1', 'm2'], data: 'both' });
  assert.equal(res.status, 200);
  const ids = (res.body as { ids: unknown[] }).ids;
  assert.equal(Array.isArray(ids), true);
  assert.equal(ids.length, 2);
  assert.deepEqual((await s.waitLines(2)).sort(), ['["message","m1","both"]', '["message","m2","both"]']);
});

test('data that is not a string is published as its JSON text', async (t) => {
  const s = await openStream(`${dev.url}/sub?channel=json`);
  t.after(() => s.close());
  await publish(dev.url, { channel: 'json', data: { a: [1, 2], b: 'x' } });
  await publish(dev.url, { channel: 'json', data: 42 });
  await publish(dev.url, { channel: 'json', data: null });
  await publish(dev.url, { channel: 'json', data: '' });
  assert.deepEqual(await s.waitLines(4), [
    '["message","json","{\\"a\\":[1,2],\\"b\\":\\"x\\"}"]',
    '["message","json","42"]',
    '["message","json","null"]',
    '["message","json",""]',
  ]);
});

test('a publish to a channel nobody listens to succeeds', async () => {
  assert.equal((await publish(dev.url, { channel: 'nobody', data: 'x' })).status, 200);
});

test('bad bodies are 400 with the documented error', async (t) => {
  const cases: [string, unknown, string][] = [
    ['invalid JSON', '{"channel":', 'bad_request'],
    ['not an object', '[1,2]', 'bad_request'],
    ['a string', '"x"', 'bad_request'],
    ['data missing', { channel: 'a' }, 'bad_request'],
    ['channel missing', { data: 'x' }, 'bad_request'],
    ['channel and channels', { channel: 'a', channels: ['b'], data: 'x' }, 'bad_request'],
    ['channels empty', { channels: [], data: 'x' }, 'bad_request'],
    ['empty channel', { channel: '', data: 'x' }, 'invalid_channel'],
    ['channel over 255 bytes', { channel: 'é'.repeat(128), data: 'x' }, 'invalid_channel'],
    ['control character', { channel: 'a\u0007b', data: 'x' }, 'invalid_channel'],
    ['channel not a string', { channel: 7, data: 'x' }, 'invalid_channel'],
    ['too many channels', { channels: ['a', 'b', 'c', 'd'], data: 'x' }, 'too_many_channels'],
  ];
  for (const [name, body, code] of cases) {
    await t.test(name, async () => assertError(await publish(dev.url, body), 400, code));
  }
});

test('a body over maxBodyBytes is 413, declared or chunked', async (t) => {
  const big = { channel: 'big', data: 'x'.repeat(2000) };
  await t.test('with Content-Length', async () => assertError(await publish(dev.url, big), 413, 'payload_too_large'));
  await t.test('chunked, without a length', async () => {
    const res = await new Promise<{ status: number; body: unknown }>((resolve, reject) => {
      const req = http.request(`${dev.url}/api/publish`, { method: 'POST', agent: false }, (r) => {
        let text = '';
        r.setEncoding('utf8').on('data', (d: string) => (text += d));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body: JSON.parse(text) as unknown }));
      });
      req.on('error', reject);
      for (let i = 0; i < 10; i++) req.write('x'.repeat(200));
      req.end();
    });
    assertError(res, 413, 'payload_too_large');
  });
  await t.test('the node still publishes afterwards', async () => {
    assert.equal((await publish(dev.url, { channel: 'big', data: 'small' })).status, 200);
  });
});

test('outside --dev: no API key, a wrong one, or one of another length is 401', async (t) => {
  await t.test('missing', async () => assertError(await publishWithoutKey(prod.url, { channel: 'a', data: 'x' }), 401, 'unauthorized'));
  await t.test('wrong', async () =>
    assertError(await publish(prod.url, { channel: 'a', data: 'x' }, TEST_API_KEY.replace(/.$/, '!')), 401, 'unauthorized'));
  await t.test('other length', async () =>
    assertError(await publish(prod.url, { channel: 'a', data: 'x' }, TEST_API_KEY + 'x'), 401, 'unauthorized'));
  await t.test('not a bearer', async () => {
    const res = await fetch(`${prod.url}/api/publish`, {
      method: 'POST',
      headers: { Authorization: `Basic ${Buffer.from('u:' + TEST_API_KEY).toString('base64')}` },
      body: JSON.stringify({ channel: 'a', data: 'x' }),
    });
    assertError({ status: res.status, body: await res.json() }, 401, 'unauthorized');
  });
  await t.test('the right key', async () => assert.equal((await publish(prod.url, { channel: 'a', data: 'x' })).status, 200));
});

test('in --dev, loopback clients publish without a key, but a wrong key is still refused', async () => {
  assert.equal((await publishWithoutKey(dev.url, { channel: 'a', data: 'x' })).status, 200);
  assertError(await publish(dev.url, { channel: 'a', data: 'x' }, 'wrong'), 401, 'unauthorized');
});

test('outside --dev, an anonymous /sub is 401', async () => {
  const s = await openStream(`${prod.url}/sub?channel=a`);
  await s.ended;
  assert.equal(s.status, 401);
  assert.equal((JSON.parse(s.lines.join('')) as ErrorBody).error.code, 'unauthorized');
});

test('GET /api/publish is 405 with Allow: POST... and JSON', async () => {
  const res = await fetch(`${dev.url}/api/publish`);
  assert.equal(res.status, 405);
  assert.equal(((await res.json()) as ErrorBody).error.code, 'method_not_allowed');
});

test('a refused publish body is never taken for a next request', async (t) => {
  // Refused before the body is read (wrong key): the body, shaped like a request, must not be answered.
  const body = 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n';
  const c = new RawClient(prod.url);
  t.after(() => c.destroy());
  await c.write(`POST /api/publish HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer nope\r\nContent-Length: ${body.length}\r\n\r\n`);
  await c.waitFor((r) => r.includes('}'), 5000, 'the 401');
  await c.write(body).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(parseHead(c.received).status, 401);
  assert.equal(c.received.split('HTTP/1.1 ').length - 1, 1, c.received);
});
