/**
 * The publish fast path (src/http/fast-publish.ts): pipelined POST /api/publish requests on one connection are all
 * answered, in order, and reach subscribers in order; whatever the fast path does not handle goes to node:http
 * with its bytes intact, at a request boundary.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RawClient } from './helpers/raw.js';
import { openStream, startServer, TEST_API_KEY, type TestServer } from './helpers/server.js';

let node: TestServer;
before(async () => {
  node = await startServer({ dev: false });
});
after(() => node.close());

function publishRequest(channel: string, data: string, extra = ''): string {
  const body = JSON.stringify({ channel, data });
  return (
    'POST /api/publish HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
    `Authorization: Bearer ${TEST_API_KEY}\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

const answers = (received: string): string[] => received.match(/HTTP\/1\.1 \d{3}/g) ?? [];

test('100 pipelined publishes in one write: 100 answers in order, 100 messages in order', async (t) => {
  // A --dev node, so the subscriber needs no credential; the publishes still carry the API key.
  const dev = await startServer({ dev: true });
  t.after(() => dev.close());
  const live = await openStream(`${dev.url}/sub?channel=fast`);
  t.after(() => live.close());
  const c = new RawClient(dev.url);
  t.after(() => c.destroy());
  let batch = '';
  for (let i = 1; i <= 100; i++) batch += publishRequest('fast', String(i));
  await c.write(batch);
  await c.waitFor((r) => answers(r).length === 100, 5000, '100 answers');
  assert.deepEqual(new Set(answers(c.received)), new Set(['HTTP/1.1 200']));
  const lines = await live.waitLines(100);
  assert.deepEqual(lines, Array.from({ length: 100 }, (_, i) => `["message","fast","${i + 1}"]`));
});

test('a wrong key is answered 401 on its headers, and the connection closes before its body', async (t) => {
  const c = new RawClient(node.url);
  t.after(() => c.destroy());
  await c.write('POST /api/publish HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer nope\r\nContent-Length: 20\r\n\r\n');
  await c.waitClose();
  assert.deepEqual(answers(c.received), ['HTTP/1.1 401']);
  assert.match(c.received, /"code":"unauthorized"/);
});

test('bad JSON gets 400 and the connection stays usable', async (t) => {
  const c = new RawClient(node.url);
  t.after(() => c.destroy());
  const bad = '{"channel":';
  await c.write(
    `POST /api/publish HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${TEST_API_KEY}\r\nContent-Length: ${bad.length}\r\n\r\n${bad}` +
      publishRequest('after-bad', 'ok'),
  );
  await c.waitFor((r) => answers(r).length === 2, 5000, 'two answers');
  assert.deepEqual(answers(c.received), ['HTTP/1.1 400', 'HTTP/1.1 200']);
});

test('a body over the limit is refused with 413 and the connection closed', async (t) => {
  const small = await startServer({ dev: false, maxBodyBytes: 100 });
  t.after(() => small.close());
  const c = new RawClient(small.url);
  t.after(() => c.destroy());
  await c.write(`POST /api/publish HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${TEST_API_KEY}\r\nContent-Length: 5000\r\n\r\n`);
  await c.waitClose();
  assert.deepEqual(answers(c.received), ['HTTP/1.1 413']);
});

test('after publishes, a GET on the same connection is answered by node:http', async (t) => {
  const c = new RawClient(node.url);
  t.after(() => c.destroy());
  await c.write(publishRequest('mixed', '1') + publishRequest('mixed', '2') + 'GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
  await c.waitFor((r) => r.includes('"status":"ok"'), 5000, 'the health answer');
  assert.deepEqual(answers(c.received), ['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200']);
});

test('a chunked publish body is handed to node:http and published', async (t) => {
  const c = new RawClient(node.url);
  t.after(() => c.destroy());
  const body = JSON.stringify({ channel: 'chunky', data: 'x' });
  await c.write(
    `POST /api/publish HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${TEST_API_KEY}\r\nTransfer-Encoding: chunked\r\n\r\n` +
      `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`,
  );
  await c.waitFor((r) => r.includes('"id"'), 5000, 'the publish answer');
  assert.deepEqual(answers(c.received), ['HTTP/1.1 200']);
});
