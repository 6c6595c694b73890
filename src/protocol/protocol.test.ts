/**
 * Unit tests of the pure protocol rules a client's input meets first: message ids and resume cursors, channel names,
 * the JSON depth bound, JSON data and idempotency keys (docs/protocol.md). No I/O; the wire bytes are in frames.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HeraldError } from '../errors.js';
import { channelProblem, MAX_CHANNEL_BYTES } from './channel.js';
import { idempotencyKey, requestIdempotencyKey } from './idempotency.js';
import { dataText, JsonRefused, nestedDeeperThan, parseClientJson } from './json-bounds.js';
import { isJsonValue, jsonDataText } from './json-data.js';
import { formatMessageId, isReadStamp, parseCursor, parseMessageId } from './message-id.js';

const badRequest = (e: unknown): boolean => e instanceof HeraldError && e.code === 'bad_request';

test('message ids: <offset>-<epoch> round-trips; anything else is not an id', () => {
  assert.deepEqual(parseMessageId('7-abc'), { offset: 7, epoch: 'abc' });
  assert.deepEqual(parseMessageId('0-E1'), { offset: 0, epoch: 'E1' });
  assert.equal(formatMessageId({ offset: 42, epoch: 'Zz9' }), '42-Zz9');
  assert.equal(formatMessageId(parseMessageId('123456789012345-e')!), '123456789012345-e');
  for (const bad of ['', '-e', '7', '7-', '07-e', '1.5-e', '1-e-f', '1-é', ' 1-e', `1-${'a'.repeat(33)}`, '1234567890123456-e', 'x-e']) {
    assert.equal(parseMessageId(bad), undefined, JSON.stringify(bad));
  }
  // The longest epoch and offset still parse; the offset stays an exact integer.
  assert.deepEqual(parseMessageId(`999999999999999-${'a'.repeat(32)}`), { offset: 999999999999999, epoch: 'a'.repeat(32) });
});

test('read stamps are the epochs that start with S; broker epochs never do', () => {
  assert.equal(isReadStamp('S17000000000ab'), true);
  assert.equal(isReadStamp('e1'), false);
  assert.equal(isReadStamp('s1'), false);
});

test('cursors: one position per channel in order, empty means live only; a wrong count or shape is 400', () => {
  assert.deepEqual(parseCursor('3-e', 1), [{ offset: 3, epoch: 'e' }]);
  assert.deepEqual(parseCursor(' 3-e , ,0-f ', 3), [{ offset: 3, epoch: 'e' }, undefined, { offset: 0, epoch: 'f' }]);
  assert.deepEqual(parseCursor('', 1), [undefined]);
  assert.throws(() => parseCursor('3-e,4-e', 1), badRequest);
  assert.throws(() => parseCursor('3-e', 2), badRequest);
  assert.throws(() => parseCursor('3e', 1), badRequest);
  assert.throws(() => parseCursor('3-e,garbage', 2), badRequest);
});

test('channel names: 1 to 255 bytes of UTF-8, no control characters, no lone surrogates; globs are ordinary', () => {
  for (const ok of ['a', 'news', 'user:42', 'a*b?[c]', 'ü'.repeat(127), 'x'.repeat(MAX_CHANNEL_BYTES), '😀']) {
    assert.equal(channelProblem(ok), undefined, ok);
  }
  assert.match(channelProblem('')!, /empty/);
  assert.match(channelProblem('x'.repeat(MAX_CHANNEL_BYTES + 1))!, /over 255 bytes/);
  // 128 two-byte characters are 256 bytes: the bound is on bytes, not characters.
  assert.match(channelProblem('ü'.repeat(128))!, /over 255 bytes/);
  for (const control of ['a\nb', 'a\rb', 'a\u0000', '\u007f', '\u0085', 'tab\t']) {
    assert.match(channelProblem(control)!, /control character/, JSON.stringify(control));
  }
  assert.match(channelProblem('a\uD800b')!, /not valid UTF-8/);
  assert.match(channelProblem('\uDC00')!, /not valid UTF-8/);
});

test('JSON depth: exact at the bound, strings (with escaped quotes and brackets) do not count', () => {
  const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);
  const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');
  assert.equal(nestedDeeperThan(bytes(nested(64)), 64), false);
  assert.equal(nestedDeeperThan(bytes(nested(65)), 64), true);
  assert.equal(nestedDeeperThan(bytes(`{"a":${nested(63)}}`), 64), false);
  assert.equal(nestedDeeperThan(bytes(`{"a":${nested(64)}}`), 64), true);
  // Brackets inside strings, also after escaped quotes and backslashes, are text.
  const inString = JSON.stringify({ s: `\\"${'['.repeat(500)}\\` });
  assert.equal(nestedDeeperThan(bytes(inString), 2), false);
  assert.equal(nestedDeeperThan(bytes(`["\\\\", ${nested(3)}]`), 3), true);
  // Siblings do not add up: depth is nesting, not the number of brackets.
  assert.equal(nestedDeeperThan(bytes(`[${Array(200).fill('[]').join(',')}]`), 2), false);
});

test('parseClientJson: parses within the bound; too deep or not JSON is JsonRefused, never another error', () => {
  assert.deepEqual(parseClientJson(Buffer.from('{"a":[1,2]}'), 64), { a: [1, 2] });
  const deep = Buffer.from('['.repeat(100_000) + ']'.repeat(100_000));
  assert.throws(() => parseClientJson(deep, 64), (e: unknown) => e instanceof JsonRefused && /deeper than 64/.test(e.message));
  for (const bad of ['{', 'nul', '{"a":}', '\u00ff', '']) {
    assert.throws(() => parseClientJson(Buffer.from(bad), 64), (e: unknown) => e instanceof JsonRefused && e.message === 'not JSON');
  }
});

test('dataText: a string as is, a value as its JSON text, too long after re-serializing is tooLarge', () => {
  assert.equal(dataText('as is', 5), 'as is');
  assert.equal(dataText({ a: 1 }, 100), '{"a":1}');
  assert.equal(dataText([1e5], 8), '[100000]');
  assert.throws(() => dataText([1e5], 7), (e: unknown) => e instanceof JsonRefused && e.tooLarge);
  const cyclic: Record<string, unknown> = {};
  cyclic['self'] = cyclic;
  assert.throws(() => dataText(cyclic, 100), (e: unknown) => e instanceof JsonRefused && !e.tooLarge);
});

test('JSON data: valid JSON kept (CR and LF between tokens become spaces), anything else is not JSON data', () => {
  assert.equal(jsonDataText('{"a":1}'), '{"a":1}');
  assert.equal(jsonDataText('{\r\n"a": 1\n}'), '{  "a": 1 }');
  assert.deepEqual(JSON.parse(jsonDataText('[1,\n2]')!), [1, 2]);
  assert.equal(jsonDataText('not json'), undefined);
  assert.equal(jsonDataText('{"a":'), undefined);
  assert.equal(isJsonValue('text'), false);
  for (const value of [1, null, true, {}, []]) assert.equal(isJsonValue(value), true);
});

test('idempotency keys: 1-128 of letters, digits and -_.~+/=; header and body field must agree', () => {
  assert.equal(idempotencyKey(undefined, 'k'), undefined);
  assert.equal(idempotencyKey(null, 'k'), undefined);
  for (const ok of ['a', '0b1c2d3e-4f', 'base64+/==', 'x'.repeat(128), 'A.b_c~d']) assert.equal(idempotencyKey(ok, 'k'), ok);
  for (const bad of ['', 'x'.repeat(129), 'a:b', 'a b', 'é', 42, {}]) {
    assert.throws(() => idempotencyKey(bad, 'Idempotency-Key'), badRequest, JSON.stringify(bad));
  }
  assert.equal(requestIdempotencyKey('k1', undefined), 'k1');
  assert.equal(requestIdempotencyKey(undefined, 'k2'), 'k2');
  assert.equal(requestIdempotencyKey('k3', 'k3'), 'k3');
  assert.throws(() => requestIdempotencyKey('k3', 'k4'), badRequest);
});
