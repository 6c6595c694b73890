/**
 * Malformed requests on the wire, to both readers (Herald's front reader for fresh stream requests, node:http for the
 * rest). Each gets a 4xx answer or a closed connection: never a 5xx, a hang, a crash, or a stream opened by mistake.
 * A control subscriber on the same node keeps receiving its messages in order throughout (test/helpers/guard.ts).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { guarded } from './helpers/guard.js';
import { RawClient } from './helpers/raw.js';
import { startServer, type TestServer } from './helpers/server.js';

let node: TestServer;
before(async () => {
  node = await startServer({ headersTimeoutMs: 1000 });
});
after(() => node.close());

const CASES: [string, string | Buffer][] = [
  ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
  ['HTTP/0.9 style', 'GET /sub?channel=a\r\n'],
  ['unknown version', 'GET /sub?channel=a HTTP/3.7\r\nHost: localhost\r\n\r\n'],
  ['lower-case method', 'get /sub?channel=a HTTP/1.1\r\nHost: localhost\r\n\r\n'],
  ['absolute-form target', 'GET http://evil.example/sub?channel=a HTTP/1.1\r\nHost: localhost\r\n\r\n'],
  ['asterisk target on GET', 'GET * HTTP/1.1\r\nHost: localhost\r\n\r\n'],
  ['LF-only line ends', 'GET /sub?channel=a HTTP/1.1\nHost: localhost\n\n'],
  ['header without a colon', 'GET /sub?channel=a HTTP/1.1\r\nHost x\r\n\r\n'],
  ['space before the colon', 'GET /sub?channel=a HTTP/1.1\r\nHost : x\r\n\r\n'],
  ['folded header line', 'GET /sub?channel=a HTTP/1.1\r\nHost: localhost\r\nX-A: b\r\n c\r\n\r\n'],
  ['NUL in a header', 'GET /sub?channel=a HTTP/1.1\r\nHost: x\u0000y\r\n\r\n'],
  ['NUL in the target', 'GET /sub?channel=a\u0000 HTTP/1.1\r\nHost: localhost\r\n\r\n'],
  ['a stream request with a body', 'GET /sub?channel=a HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello'],
  ['a stream request with Transfer-Encoding', 'GET /sub?channel=a HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ['Content-Length and Transfer-Encoding on publish', 'POST /api/publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ['two Content-Lengths on publish', 'POST /api/publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}'],
  ['negative Content-Length', 'POST /api/publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n'],
  ['a bad chunk size', 'POST /api/publish HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n'],
  ['binary junk', Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 131 + 7) % 256))],
  ['a TLS ClientHello', Buffer.from('160301020001000200030300000000000000000000000000000000000000000000000000000000', 'hex')],
];

test('malformed requests get a 4xx or a closed connection, and disturb nobody', async (t) => {
  await guarded(node, { url: `${node.url}/sub?channel=control`, channel: 'control' }, async (guard) => {
    for (const [name, bytes] of CASES) {
      await t.test(name, async () => {
        const c = new RawClient(node.url);
        try {
          await c.write(bytes).catch(() => undefined);
          // The answer, or the connection closed; a request that is merely incomplete is closed at the header timeout.
          await Promise.race([c.waitClose(4000), c.waitFor((r) => /^HTTP\/1\.1 \d{3}/.test(r) && r.includes('\r\n\r\n'), 4000, 'an answer')]);
          const m = /^HTTP\/1\.1 (\d{3})/.exec(c.received);
          if (m?.[1]) {
            const status = Number(m[1]);
            assert.ok(status >= 400 && status < 500, `${name}: answered ${status}: ${JSON.stringify(c.received.slice(0, 300))}`);
          }
          assert.equal(c.received.split('HTTP/1.1 ').length - 1 <= 1, true, `${name}: one answer at most`);
        } finally {
          c.destroy();
        }
        await guard.tick();
      });
    }
  });
});

test('a request line without a version (HTTP/0.9 style) never gets chunked framing', async (t) => {
  // node:http admits it; whatever the answer, a client that cannot know HTTP/1.1 must not get chunk sizes in its data.
  const c = new RawClient(node.url);
  t.after(() => c.destroy());
  await c.write('GET /sub?channel=v09\r\n\r\n');
  await Promise.race([c.waitClose(3000), c.waitFor((r) => r.includes('\r\n\r\n'), 3000, 'an answer')]);
  assert.doesNotMatch(c.received, /transfer-encoding: chunked/i);
});
