/**
 * Unit tests of the shared wire rules (http/wire.ts): parseHead's verdicts byte by byte, the answer writer, and a
 * differential case against node:http's own parser (llhttp) on a plain server. The readers that use these rules
 * are tested end to end in test/http-differential.test.ts and test/wire-raw.test.ts.
 */
import assert from 'node:assert/strict';
import { createServer, STATUS_CODES } from 'node:http';
import net from 'node:net';
import { test } from 'node:test';
import { errorResponse, formatResponse, headWorthParsing, httpDate, originForm, parseHead, parseRequestLine, type HeadVerdict } from './wire.js';
import { HeraldError } from '../errors.js';

const LIMITS = { maxUrlBytes: 256, maxHeaderBytes: 1024 };
const verdict = (s: string): HeadVerdict => parseHead(Buffer.from(s, 'latin1'), LIMITS);
const kind = (s: string): string => {
  const v = verdict(s);
  return v.kind === 'refuse' ? `refuse ${v.error.status}` : v.kind;
};

test('a plain head: method, target, version, headers, length, body length, keep-alive', () => {
  const v = verdict('POST /api/publish?channel=a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-A:  b \r\n\r\nabcGET');
  assert.equal(v.kind, 'head');
  if (v.kind !== 'head') return;
  assert.equal(v.head.method, 'POST');
  assert.equal(v.head.path, '/api/publish');
  assert.equal(v.head.rawQuery, 'channel=a');
  assert.equal(v.head.version, '1.1');
  assert.equal(v.head.headers.get('x-a'), 'b');
  assert.equal(v.head.contentLength, 3);
  assert.equal(v.head.length, 'POST /api/publish?channel=a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-A:  b \r\n\r\n'.length);
  assert.equal(v.head.keepAlive, true);
  const ten = verdict('GET /sub HTTP/1.0\r\n\r\n');
  assert.ok(ten.kind === 'head' && ten.head.version === '1.0' && !ten.head.keepAlive);
  const close = verdict('GET /sub HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n');
  assert.ok(close.kind === 'head' && !close.head.keepAlive);
});

test('partial until the blank line, whatever the split', () => {
  const full = 'GET /sub?channel=a HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\n\r\n';
  for (let i = 0; i < full.length; i++) assert.equal(kind(full.slice(0, i)), 'partial', `first ${i} bytes`);
  assert.equal(kind(full), 'head');
});

test('refused as llhttp refuses them: 400', () => {
  for (const s of [
    'GET /sub HTTP/1.1\nHost: x\n\n', // LF-only line ends
    'GET /sub HTTP/1.1\r\nHost: x\n\r\n', // one bare LF
    'GET /sub HTTP/1.1\r\nHost: x\rY: z\r\n\r\n', // a bare CR
    'GET /sub HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n', // obs-fold
    'GET /sub HTTP/1.1\r\n Host: x\r\n\r\n', // whitespace before the first field
    'GET /sub HTTP/1.1\r\nHost : x\r\n\r\n', // whitespace before the colon
    'GET /sub HTTP/1.1\r\nHost\t: x\r\n\r\n',
    'GET /sub HTTP/1.1\r\n: x\r\nHost: x\r\n\r\n', // an empty name
    'GET /sub HTTP/1.1\r\nHost x\r\n\r\n', // no colon
    'GET /sub HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\n\r\n', // NUL
    'GET /sub HTTP/1.1\r\nHost: x\r\nX-A: a\u007fb\r\n\r\n', // DEL
    'POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}', // duplicate CL, even equal
    'POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\n{}',
    'POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}',
    'POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: -0\r\n\r\n',
    'POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 0x2\r\n\r\n{}',
    'POST /p HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n',
    'POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n',
    'GET /sub HTTP/1.1\r\n\r\n', // HTTP/1.1 without Host
  ]) {
    assert.equal(kind(s), 'refuse 400', JSON.stringify(s));
  }
});

test('not the plain case: deferred to node:http', () => {
  for (const s of [
    'GET http://h/sub HTTP/1.1\r\nHost: x\r\n\r\n', // absolute-form
    'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n', // asterisk-form
    'GET /sub\r\n\r\n', // HTTP/0.9
    'GET /sub HTTP/2.0\r\nHost: x\r\n\r\n',
    'GET  /sub HTTP/1.1\r\nHost: x\r\n\r\n', // two spaces
    'get /sub HTTP/1.1\r\nHost: x\r\n\r\n', // a method llhttp refuses: its answer, not ours
    '\r\nGET /sub HTTP/1.1\r\nHost: x\r\n\r\n', // an empty line first
    'POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n',
    'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
    'POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n',
    `GET /sub HTTP/1.1\r\nHost: x\r\n${'A: b\r\n'.repeat(101)}\r\n`,
    `GET /${'a'.repeat(300)} HTTP/1.1\r\n`, // a request line over the URL bound: node:http answers 414/431
  ]) {
    assert.equal(kind(s), 'defer', JSON.stringify(s));
  }
});

test('the limits: 414 for the URL, 431 for the header block, as soon as it is certain', () => {
  assert.equal(kind(`GET /${'a'.repeat(260)} HTTP/1.1\r\nHost: x\r\n\r\n`), 'refuse 414');
  assert.equal(kind(`GET /sub HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(1100)}\r\n\r\n`), 'refuse 431');
  // Still arriving, but past the bound: 431 now, not at the header timeout.
  assert.equal(kind(`GET /sub HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(1100)}\r\nX-B: `), 'refuse 431');
  assert.equal(kind(`GET /sub HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(900)}\r\n\r\n`), 'head');
});

test('repeated fields are kept as node:http keeps them', () => {
  const v = verdict('GET /s HTTP/1.1\r\nHost: a\r\nHost: b\r\nAuthorization: x\r\nAuthorization: y\r\nCookie: a=1\r\nCookie: b=2\r\nX-A: 1\r\nX-A: 2\r\n\r\n');
  assert.ok(v.kind === 'head');
  if (v.kind !== 'head') return;
  assert.equal(v.head.headers.get('host'), 'a');
  assert.equal(v.head.headers.get('authorization'), 'x');
  assert.equal(v.head.headers.get('cookie'), 'a=1; b=2');
  assert.equal(v.head.headers.get('x-a'), '1, 2');
  assert.ok(v.head.repeated.has('authorization'));
});

test('raw UTF-8 in the target is read (the one deliberate difference from llhttp)', () => {
  const v = parseHead(Buffer.from('GET /sub?channel=caf\u00c3\u00a9 HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1'), LIMITS);
  assert.ok(v.kind === 'head' && v.head.rawQuery === 'channel=caf\u00c3\u00a9');
});

test('parseRequestLine decides on the first line alone', () => {
  const l = parseRequestLine(Buffer.from('POST /api/publish HTTP/1.1\r\nHo', 'latin1'), LIMITS);
  assert.ok(l.kind === 'line' && l.method === 'POST' && l.target === '/api/publish' && l.end === 28);
  assert.equal(parseRequestLine(Buffer.from('POST /api/pub', 'latin1'), LIMITS).kind, 'partial');
});

test('headWorthParsing: once per completed line or crossed bound, not per byte', () => {
  const buf = Buffer.from('GET /sub HTTP/1.1\r\nHost: x', 'latin1');
  assert.equal(headWorthParsing(buf, 0, LIMITS), true);
  assert.equal(headWorthParsing(buf, 19, LIMITS), false);
  assert.equal(headWorthParsing(Buffer.alloc(LIMITS.maxUrlBytes + 40, 0x61), 10, LIMITS), true);
});

test('originForm: absolute-form targets become path and authority', () => {
  assert.deepEqual(originForm('http://localhost:8080/sub?x=1'), { target: '/sub?x=1', authority: 'localhost:8080' });
  assert.deepEqual(originForm('HTTPS://h'), { target: '/', authority: 'h' });
  assert.deepEqual(originForm('http://h?a'), { target: '/?a', authority: 'h' });
  assert.deepEqual(originForm('/sub'), { target: '/sub' });
  assert.deepEqual(originForm('foo://h/x'), { target: 'foo://h/x' });
});

test('formatResponse: status text from STATUS_CODES, Date, Content-Length, close', () => {
  const text = formatResponse(errorResponse(new HeraldError('unavailable'), true));
  assert.match(text, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
  assert.match(text, /\r\nDate: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n/);
  assert.match(text, /\r\nRetry-After: 1\r\n/);
  assert.match(text, /\r\nConnection: close\r\n\r\n\{"error":\{"code":"unavailable"/);
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  assert.match(text, new RegExp(`Content-Length: ${Buffer.byteLength(body)}\\r\\n`));
  for (const status of [200, 400, 404, 408, 413, 414, 431, 504]) {
    assert.ok(formatResponse({ status }).startsWith(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n`));
  }
  assert.equal(httpDate(Date.UTC(2026, 11, 3, 12, 0, 0)), 'Thu, 03 Dec 2026 12:00:00 GMT');
});

test('differential: parseHead accepts exactly where llhttp accepts, on a plain node:http server', async () => {
  const server = createServer((req, res) => res.end(`${req.method} ${req.url}`));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  const ask = (bytes: string): Promise<number> =>
    new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => c.end(Buffer.from(bytes, 'latin1')));
      let got = '';
      c.on('data', (d: Buffer) => (got += d.toString('latin1')));
      c.on('error', () => undefined);
      c.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(got)?.[1] ?? 0)));
    });
  try {
    const disagree: string[] = [];
    const values = ['b', 'a\tb', 'a\u00e9b', 'a\u0001b', 'a\u007fb', ''];
    const names = ['X-A', 'X A', 'X(A', "X'A", 'X~A'];
    const lengths = ['0', '00', ' 0', '0 ', '-0', '+0', '0x0', '1 ', ''];
    const cases: string[] = [];
    for (const n of names) for (const v of values) cases.push(`GET /s HTTP/1.1\r\nHost: x\r\n${n}: ${v}\r\n\r\n`);
    for (const l of lengths) cases.push(`POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: ${l}\r\n\r\n${l.trim() === '1' ? 'a' : ''}`);
    for (const c of cases) {
      const v = verdict(c);
      if (v.kind === 'defer') continue;
      const status = await ask(c);
      if ((v.kind === 'head') !== (status === 200)) disagree.push(`${JSON.stringify(c)}: ${v.kind} vs ${status}`);
    }
    assert.deepEqual(disagree, []);
  } finally {
    server.close();
  }
});
