/**
 * The /poll encoder's exact bytes: a batch element is a /sub line without its newline (the answer joins them into a
 * JSON array), and a position alone is no element (the answer's cursor carries it, and it must not end the wait).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Publication } from '../protocol/publication.js';
import { pollCodec, pollJsonCodec } from './poll.js';

const pub = (data: string, id?: string, json?: boolean): Publication => ({ channel: 'news', data, id, json, ts: 0 });
const text = (b: Buffer): string => b.toString('utf8');

test('/poll message element: the /sub line with its id, no newline; data JSON-escaped', () => {
  assert.equal(text(pollCodec.encode(pub('hi', '7-e'), 'news')), '["message","news","hi","7-e"]');
  assert.equal(text(pollCodec.encode(pub('hi'), 'news')), '["message","news","hi"]');
  assert.equal(text(pollCodec.encode(pub('a\nb"', '7-e'), 'news')), '["message","news","a\\nb\\"","7-e"]');
  assert.equal(text(pollCodec.encode(pub('{"a":1}', '7-e', true), 'news')), '["message","news","{\\"a\\":1}","7-e"]');
  assert.equal(text(pollJsonCodec.encode(pub('{"a":1}', '7-e', true), 'news')), '["message","news",{"a":1},"7-e"]');
  assert.notEqual(pollCodec.name, pollJsonCodec.name);
});

test('/poll reload, unsubscribed and presence elements; a position is empty', () => {
  assert.equal(text(pollCodec.encodeReload('news', 'oversized', '9-e', '9-e')), '["reload","news","oversized","9-e"]');
  assert.equal(text(pollCodec.encodeUnsubscribed!('news')), '["unsubscribed","news"]');
  assert.equal(text(pollCodec.encodePresence!('join', 'news', '{"id":"u1"}')), '["join","news",{"id":"u1"}]');
  assert.equal(pollCodec.encodePosition('news', '9-e', '9-e').length, 0);
});

test('/poll elements joined as the answer does are one valid JSON array', () => {
  const elements = [pollCodec.encode(pub('x\r\ny', '1-e'), 'news'), pollCodec.encodeReload('news', 'expired', '', '')];
  const batch = `[${elements.map(text).join(',')}]`;
  assert.deepEqual(JSON.parse(batch), [
    ['message', 'news', 'x\r\ny', '1-e'],
    ['reload', 'news', 'expired', ''],
  ]);
});
