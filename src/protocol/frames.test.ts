/**
 * The exact bytes of the wire formats the Hub and Session write: /sub (NDJSON), /sse (one channel and several) and
 * /ws (pre-framed and deflate payloads). Pure: a publication in, bytes compared to the documented ones
 * (docs/protocol.md). The /poll encoder is checked in transport/poll-codec.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chunk, ndjsonCodec, sseCodec, sseCursorCodec, type StreamCodec } from './frames.js';
import type { Publication } from './publication.js';
import { wsCodec, wsDeflateCodec } from './ws-frames.js';

const pub = (data: string, id?: string, json?: boolean): Publication => ({ channel: 'news', data, id, json, ts: 0 });
const text = (b: Buffer): string => b.toString('utf8');
/** The chunked framing, written out by hand (not with `chunk`): hex length, CRLF, body, CRLF. */
const chunked = (body: string): string => `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n`;

test('/sub seed lines: ["message",channel,data], no id without since; with since the id is the fourth element', () => {
  assert.equal(text(ndjsonCodec(false, false).encode(pub('hello', '7-e'), 'news')), '["message","news","hello"]\n');
  assert.equal(text(ndjsonCodec(false, true).encode(pub('hello', '7-e'), 'news')), '["message","news","hello","7-e"]\n');
  // A message without an id (a broker without history) has no fourth element even with ids asked for.
  assert.equal(text(ndjsonCodec(false, true).encode(pub('hello'), 'news')), '["message","news","hello"]\n');
});

test('/sub lines: data is JSON-escaped so a line is always one line (newlines, quotes, backslashes, controls)', () => {
  const data = 'a\nb\r"c"\\d\u0000\u2028é';
  const line = text(ndjsonCodec(false, false).encode(pub(data), 'news'));
  assert.equal(line, '["message","news","a\\nb\\r\\"c\\"\\\\d\\u0000\u2028é"]\n');
  assert.equal(line.indexOf('\n'), line.length - 1);
  assert.equal(line.indexOf('\r'), -1);
  assert.deepEqual(JSON.parse(line), ['message', 'news', data]);
});

test('/sub with jsonData: JSON data goes in as the value; plain text data stays a string', () => {
  const codec = ndjsonCodec(false, true, true);
  assert.equal(text(codec.encode(pub('{"a":[1,"x"]}', '7-e', true), 'news')), '["message","news",{"a":[1,"x"]},"7-e"]\n');
  assert.equal(text(codec.encode(pub('{"a":1}', '7-e'), 'news')), '["message","news","{\\"a\\":1}","7-e"]\n');
  // Without jsonData the JSON publication is text, exactly as before.
  assert.equal(text(ndjsonCodec(false, false).encode(pub('{"a":1}', '7-e', true), 'news')), '["message","news","{\\"a\\":1}"]\n');
});

test('/sub reload, position, unsubscribed, presence, disconnect, heartbeat', () => {
  const c = ndjsonCodec(false, true);
  assert.equal(text(c.encodeReload('news', 'expired', '9-e', 'ignored')), '["reload","news","expired","9-e"]\n');
  assert.equal(text(c.encodeReload('news', 'no_history', '', '')), '["reload","news","no_history",""]\n');
  assert.equal(text(c.encodePosition('news', '9-e', 'ignored')), '["position","news","9-e"]\n');
  assert.equal(text(c.encodeUnsubscribed!('news')), '["unsubscribed","news"]\n');
  assert.equal(text(c.encodePresence!('join', 'news', '{"id":"u1"}')), '["join","news",{"id":"u1"}]\n');
  assert.equal(text(c.encodeDisconnect('slow')), '["disconnect","slow",3002,true]\n');
  assert.equal(text(c.encodeDisconnect('slow', { code: 4000, reconnect: false })), '["disconnect","slow",4000,false]\n');
  assert.equal(text(c.heartbeat), '\n');
  assert.equal(c.preamble.length, 0);
  assert.equal(c.contentType, 'application/x-ndjson');
});

test('chunked framing wraps each frame in its own chunk (length in hex of the UTF-8 bytes)', () => {
  const c = ndjsonCodec(true, true);
  const line = '["message","news","héllo","7-e"]\n';
  assert.equal(text(c.encode(pub('héllo', '7-e'), 'news')), chunked(line));
  assert.equal(text(c.encodePosition('news', '9-e', '')), chunked('["position","news","9-e"]\n'));
  assert.equal(text(c.heartbeat), '1\r\n\n\r\n');
  assert.equal(text(chunk('x'.repeat(26))), `1a\r\n${'x'.repeat(26)}\r\n`);
  assert.notEqual(c.name, ndjsonCodec(false, true).name, 'chunked and plain frames must not share a Hub group');
});

test('codec names differ wherever bytes differ (the Hub groups subscribers by name)', () => {
  const codecs: StreamCodec[] = [];
  for (const ch of [false, true]) {
    for (const json of [false, true]) {
      codecs.push(ndjsonCodec(ch, false, json), ndjsonCodec(ch, true, json), sseCodec(ch, 2000, json), sseCursorCodec(ch, 2000, json));
    }
  }
  const names = codecs.map((c) => c.name).concat([wsCodec.name, wsDeflateCodec.name]);
  assert.equal(new Set(names).size, names.length, names.join(' '));
});

test('/sse one channel: the id is the message id, data the /sub line; retry preamble; comment heartbeat', () => {
  const c = sseCodec(false, 2000);
  assert.equal(text(c.encode(pub('hi', '7-e'), 'news')), 'id: 7-e\ndata: ["message","news","hi","7-e"]\n\n');
  assert.equal(text(c.encode(pub('hi'), 'news')), 'data: ["message","news","hi"]\n\n');
  assert.equal(text(c.preamble), 'retry: 2000\n\n');
  assert.equal(text(c.heartbeat), ':\n\n');
  assert.equal(c.contentType, 'text/event-stream; charset=utf-8');
  assert.equal(c.withCursor, undefined);
});

test('/sse: newlines in data cannot end the event or start a field (they are JSON-escaped)', () => {
  const data = 'line1\n\ndata: forged\r\nid: 99-x\rend';
  const event = text(sseCodec(false, 2000).encode(pub(data, '7-e'), 'news'));
  assert.equal(event, `id: 7-e\ndata: ${JSON.stringify(['message', 'news', data, '7-e'])}\n\n`);
  // Exactly the framing's own line ends: after id, after data, and the blank line.
  assert.equal(event.split('\n').length - 1, 3);
  assert.equal(event.indexOf('\r'), -1);
  assert.deepEqual(JSON.parse(event.split('\n')[1]!.slice('data: '.length)), ['message', 'news', data, '7-e']);
});

test('/sse reload and position are named events carrying the connection cursor as id', () => {
  const c = sseCodec(false, 2000);
  assert.equal(
    text(c.encodeReload('news', 'epoch', '3-f', '3-f')),
    'id: 3-f\nevent: reload\ndata: ["reload","news","epoch","3-f"]\n\n',
  );
  assert.equal(text(c.encodePosition('news', '4-f', '4-f')), 'id: 4-f\nevent: position\ndata: ["position","news","4-f"]\n\n');
  // Presence moves no position: no id.
  assert.equal(text(c.encodePresence!('leave', 'news', '{"id":"u1"}')), 'event: leave\ndata: ["leave","news",{"id":"u1"}]\n\n');
  assert.equal(text(c.encodeDisconnect('shutdown')), 'event: disconnect\ndata: ["disconnect","shutdown",3001,true]\n\n');
  assert.equal(text(c.encodeUnsubscribed!('news')), 'event: unsubscribed\ndata: ["unsubscribed","news"]\n\n');
});

test('/sse chunked: each event is one chunk, the preamble too', () => {
  const c = sseCodec(true, 1500);
  assert.equal(text(c.encode(pub('hi', '7-e'), 'news')), chunked('id: 7-e\ndata: ["message","news","hi","7-e"]\n\n'));
  assert.equal(text(c.preamble), chunked('retry: 1500\n\n'));
});

test('/sse several channels: the shared body has no id; withCursor puts the connection cursor in front, then frames', () => {
  const plain = sseCursorCodec(false, 2000);
  const body = plain.encode(pub('hi', '7-e'), 'news');
  assert.equal(text(body), 'data: ["message","news","hi","7-e"]\n\n');
  assert.equal(text(plain.withCursor!(body, '7-e,2-g')), 'id: 7-e,2-g\ndata: ["message","news","hi","7-e"]\n\n');
  const ch = sseCursorCodec(true, 2000);
  const chBody = ch.encode(pub('hi', '7-e'), 'news');
  assert.equal(text(chBody), 'data: ["message","news","hi","7-e"]\n\n', 'the shared body stays unframed');
  assert.equal(text(ch.withCursor!(chBody, '7-e,2-g')), chunked('id: 7-e,2-g\ndata: ["message","news","hi","7-e"]\n\n'));
  assert.equal(text(ch.encodeReload('news', 'expired', '', '0-g,2-g')), chunked('id: 0-g,2-g\nevent: reload\ndata: ["reload","news","expired",""]\n\n'));
});

test('/sse jsonData: the JSON value in data, still one line', () => {
  const c = sseCodec(false, 2000, true);
  assert.equal(text(c.encode(pub('{"t":"a b"}', '7-e', true), 'news')), 'id: 7-e\ndata: ["message","news",{"t":"a b"},"7-e"]\n\n');
});

/** An unmasked final text frame written out by hand: FIN+text, then the 7-bit or 16-bit length, then the payload. */
function textFrame(payload: string): Buffer {
  const body = Buffer.from(payload, 'utf8');
  const head = body.length < 126 ? Buffer.from([0x81, body.length]) : Buffer.from([0x81, 126, body.length >> 8, body.length & 0xff]);
  return Buffer.concat([head, body]);
}

test('/ws message frame: one RFC 6455 text frame of the documented JSON; id only where the message has one', () => {
  assert.deepEqual(wsCodec.encode(pub('hi', '7-e'), 'news'), textFrame('{"type":"message","channel":"news","data":"hi","id":"7-e"}'));
  assert.deepEqual(wsCodec.encode(pub('hi'), 'news'), textFrame('{"type":"message","channel":"news","data":"hi"}'));
  assert.deepEqual(wsCodec.encode(pub('[1,{"a":null}]', '7-e', true), 'news'), textFrame('{"type":"message","channel":"news","data":[1,{"a":null}],"id":"7-e"}'));
  const escaped = 'a\n"b"\\';
  assert.deepEqual(wsCodec.encode(pub(escaped), 'news'), textFrame(`{"type":"message","channel":"news","data":${JSON.stringify(escaped)}}`));
});

test('/ws frame length: 125 bytes fits the 7-bit length, 126 takes the 16-bit form, multi-byte UTF-8 counted in bytes', () => {
  const over = '{"type":"message","channel":"news","data":""}'.length;
  const fits = wsCodec.encode(pub('x'.repeat(125 - over)), 'news');
  assert.equal(fits[1], 125);
  assert.equal(fits.length, 127);
  const big = wsCodec.encode(pub('x'.repeat(126 - over)), 'news');
  assert.deepEqual([...big.subarray(0, 4)], [0x81, 126, 0, 126]);
  const utf = wsCodec.encode(pub('é'.repeat(100)), 'news');
  assert.deepEqual(utf, textFrame(`{"type":"message","channel":"news","data":"${'é'.repeat(100)}"}`));
  assert.equal(utf.readUInt16BE(2), over + 200);
});

test('/ws reload, position, unsubscribed, presence; the deflate codec gives the same JSON unframed', () => {
  assert.deepEqual(wsCodec.encodeReload('news', 'expired', '9-e', 'x'), textFrame('{"type":"reload","channel":"news","reason":"expired","id":"9-e"}'));
  assert.deepEqual(wsCodec.encodePosition('news', '9-e', 'x'), textFrame('{"type":"position","channel":"news","id":"9-e"}'));
  assert.deepEqual(wsCodec.encodeUnsubscribed!('news'), textFrame('{"type":"unsubscribed","channel":"news","reason":"forbidden"}'));
  assert.deepEqual(wsCodec.encodePresence!('join', 'news', '{"id":"u1"}'), textFrame('{"type":"join","channel":"news","member":{"id":"u1"}}'));
  assert.equal(text(wsDeflateCodec.encode(pub('hi', '7-e'), 'news')), '{"type":"message","channel":"news","data":"hi","id":"7-e"}');
  assert.equal(text(wsDeflateCodec.encodePosition('news', '9-e', '')), '{"type":"position","channel":"news","id":"9-e"}');
});
