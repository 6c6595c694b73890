/**
 * The raw-socket cases of issue 12 ("tried as a new user would"), each sent to a Herald node and to a node that
 * gives every connection to node:http alone: the answers must be the same, and come at once (not at the header
 * timeout).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { bothOutcomes, describe, startOraclePair, type OraclePair } from './helpers/http-oracle.js';
import { RawClient, parseHead } from './helpers/raw.js';
import { TEST_API_KEY } from './helpers/server.js';

let pair: OraclePair;
before(async () => {
  pair = await startOraclePair();
});
after(() => pair.close());

async function same(bytes: string, expected: string, answers = 1): Promise<void> {
  const started = Date.now();
  const { herald, node } = await bothOutcomes(pair, [Buffer.from(bytes, 'latin1')], answers);
  assert.equal(describe(node), expected, `node:http's answer to ${JSON.stringify(bytes)}`);
  assert.equal(describe(herald), describe(node), `Herald's answer to ${JSON.stringify(bytes)}`);
  // The header timeout is 1 s here: an answer that waited for it would show.
  assert.ok(Date.now() - started < 900, `answered in ${Date.now() - started} ms`);
}

test('an LF-only request to /sub is answered 400 at once, as node:http answers it', async () => {
  await same('GET /sub?channel=a HTTP/1.1\nHost: localhost\n\n', '400:bad_request');
  await same('GET /sub?channel=a HTTP/1.1\r\nHost: localhost\n\r\n', '400:bad_request');
  await same('POST /api/publish HTTP/1.1\nHost: localhost\nContent-Length: 2\n\n{}', '400:bad_request');
});

test('HTTP/1.1 without Host is 400 on every reader; HTTP/1.0 without Host is served', async () => {
  await same('GET /sub?channel=a HTTP/1.1\r\n\r\n', '400:bad_request');
  await same('GET /healthz HTTP/1.1\r\n\r\n', '400:bad_request');
  const body = '{"channel":"a","data":"x"}';
  await same(`POST /api/publish HTTP/1.1\r\nContent-Length: ${body.length}\r\n\r\n${body}`, '400:bad_request');
  await same('GET /sub?channel=a HTTP/1.0\r\n\r\n', '200 application/x-ndjson');
});

test('an absolute-form target is routed by its path (RFC 9112 §3.2.2), not 404', async () => {
  await same('GET http://localhost/sub?channel=a HTTP/1.1\r\nHost: localhost\r\n\r\n', '200 application/x-ndjson chunked');
  await same('GET http://localhost:8080/healthz HTTP/1.1\r\nHost: localhost\r\n\r\n', '200 application/json');
  const body = '{"channel":"a","data":"x"}';
  await same(
    `POST http://localhost/api/publish HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${TEST_API_KEY}\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    '200 application/json',
  );
  // The target's authority is the host (the RFC: Host is then ignored): --dev still refuses a foreign one.
  await same('GET http://evil.example/sub?channel=a HTTP/1.1\r\nHost: localhost\r\n\r\n', '403:host_not_allowed');
});

test('asterisk-form: OPTIONS * is 204 with Allow; another method with * is 400', async () => {
  await same('OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n', '204');
  await same('GET * HTTP/1.1\r\nHost: localhost\r\n\r\n', '400:bad_request');
});

test('fast-publish answers, and every raw-socket refusal, carry a Date header', async () => {
  const body = '{"channel":"a","data":"x"}';
  const c = new RawClient(pair.herald.url);
  try {
    await c.write(`POST /api/publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    await c.waitClose(3000);
    const res = parseHead(c.received);
    assert.equal(res.status, 200);
    assert.ok(!Number.isNaN(Date.parse(res.headers['date'] ?? '')), `Date: ${res.headers['date']}`);
    assert.ok(Math.abs(Date.parse(res.headers['date'] ?? '') - Date.now()) < 5000);
  } finally {
    c.destroy();
  }
  for (const bytes of ['GET /sub?channel=a HTTP/1.1\r\nHost: localhost\r\nX-A: a\u0001b\r\n\r\n', 'POST /api/publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}', 'GET /x HTTP/1.1\r\nHost: loc\r\n x\r\n\r\n']) {
    const r = new RawClient(pair.herald.url);
    try {
      await r.write(Buffer.from(bytes, 'latin1'));
      await r.waitClose(3000);
      const res = parseHead(r.received);
      assert.equal(res.status, 400, bytes);
      assert.match(res.headers['date'] ?? '', /GMT$/, `${JSON.stringify(bytes)}: ${r.received}`);
    } finally {
      r.destroy();
    }
  }
});

test('requests node:http accepts that are not the plain case get node:http\'s answer', async () => {
  // Many header lines, a body on a stream request, Transfer-Encoding, an upgrade header, Expect, leading CRLF.
  await same(`GET /sub?channel=a HTTP/1.1\r\nHost: localhost\r\n${'X-A: b\r\n'.repeat(150)}\r\n`, '200 application/x-ndjson chunked');
  await same('GET /sub?channel=a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc', '400:bad_request');
  await same('GET /sub?channel=a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', '400:bad_request');
  await same('\r\nGET /sub?channel=a HTTP/1.1\r\nHost: localhost\r\n\r\n', '200 application/x-ndjson chunked');
  await same('GET /sub?channel=a HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n', '200 application/x-ndjson chunked');
});

test('a request pipelined behind a stream on node:http\'s path is never answered, however the bytes are split', async () => {
  // 120 header lines: not the plain case, so the stream is node:http's. The request behind it once tripped
  // node:http's own ordering assertion (ERR_INTERNAL_ASSERTION in resOnFinish) and took the process down.
  const stream = `GET /sub?channel=behind HTTP/1.1\r\nHost: localhost\r\n${Array.from({ length: 120 }, (_, i) => `X-Many-${i}: v\r\n`).join('')}\r\n`;
  const bytes = Buffer.from(`${stream}GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n`, 'latin1');
  for (const at of [[70, 732], [stream.length], [stream.length - 2], [10, stream.length + 5]]) {
    const parts: Buffer[] = [];
    let from = 0;
    for (const i of [...at, bytes.length]) {
      parts.push(bytes.subarray(from, i));
      from = i;
    }
    const { herald, node } = await bothOutcomes(pair, parts, 2);
    assert.equal(describe(herald), '200 application/x-ndjson chunked', `split at ${at.join(',')}`);
    assert.equal(describe(node), '200 application/x-ndjson chunked', `split at ${at.join(',')}`);
  }
  // Both nodes are still up.
  await same('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n', '200 application/json');
});

test('a publish with two Authorization fields and a foreign Host: the --dev Host check answers first, on both readers', async () => {
  const body = '{"channel":"a","data":"x"}';
  const twice = `Authorization: Bearer ${TEST_API_KEY}\r\nAuthorization: Bearer other\r\n`;
  await same(`POST /api/publish HTTP/1.1\r\nHost: evil.example\r\n${twice}Content-Length: ${body.length}\r\n\r\n${body}`, '403:host_not_allowed');
  await same(`POST /api/publish HTTP/1.1\r\nHost: localhost\r\n${twice}Content-Length: ${body.length}\r\n\r\n${body}`, '400:bad_request');
});
