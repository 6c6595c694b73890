import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryHistory } from '../src/broker/memory-history.js';
import { isReadStamp } from '../src/protocol/message-id.js';
import { MemoryBroker } from '../src/broker/memory.js';
import type { Publication } from '../src/protocol/publication.js';
import { historyConformance } from './helpers/history-conformance.js';

historyConformance('memory', async () => {
  const broker = new MemoryBroker();
  const received: Publication[] = [];
  await broker.start({ onPublication: (p) => received.push(p) });
  return { broker, received, close: () => broker.close() };
});

// The memory history's own bounds (issue 15 findings 3 and 4), with a fake clock.

const POLICY = { size: 100, ttlMs: 60_000, metaTtlMs: 600_000 };

test('memory history: reads of unknown channels store nothing', () => {
  const h = new MemoryHistory(1 << 20);
  for (let i = 0; i < 10_000; i++) {
    const r = h.read(`unknown.${i}`, { since: i % 2 ? { offset: 3, epoch: 'gone' } : undefined, limit: 100, policy: POLICY }, 1000);
    assert.ok(isReadStamp(r.position.epoch));
  }
  assert.equal(h.size(), 0);
  assert.deepEqual(h.usage(), { bytes: 0, channels: 0, evictions: 0 });
});

test('memory history: rings grow as messages come, and every byte is accounted back to zero', () => {
  const h = new MemoryHistory();
  h.append('one', 'x', POLICY, 1000);
  const small = h.usage().bytes;
  assert.ok(small < 700, `one message on a 100-message policy costs ${small} estimated bytes (no 100-slot ring)`);
  for (let i = 0; i < 150; i++) h.append('one', 'y'.repeat(10), POLICY, 1000);
  const full = h.usage().bytes;
  assert.ok(full > small * 20);
  h.sweep(1000 + POLICY.ttlMs); // messages expire, the position stays
  assert.ok(h.usage().bytes < small, `${h.usage().bytes} after expiry`);
  h.sweep(1000 + POLICY.metaTtlMs);
  assert.deepEqual(h.usage(), { bytes: 0, channels: 0, evictions: 0 });
});

test('memory history: over the bound, the least recently published channels lose their messages first, keeping their positions', () => {
  const h = new MemoryHistory(1 << 20);
  const stamp = h.read('quiet', { limit: 10, policy: POLICY }, 1000).position;
  const big = (s: string): string => s.padEnd(50_000, '.'); // so that one eviction makes room for a filler
  h.append('a', big('first'), POLICY, 1001);
  const b1 = h.append('b', big('second'), POLICY, 1002);
  h.append('a', big('again'), POLICY, 1003); // a is now more recent than b
  let t = 1004;
  let i = 0;
  for (; h.usage().evictions < 1; i++) h.append(`filler.${i}`, 'z'.repeat(1000), POLICY, t++);
  assert.ok(h.usage().bytes <= 1 << 20);
  const readA = h.read('a', { since: { offset: 0, epoch: 'x' }, limit: 10, policy: POLICY }, t);
  const readB = h.read('b', { since: b1.position!, limit: 10, policy: POLICY }, t);
  assert.deepEqual(readB.position, b1.position, 'b (published least recently) lost its messages but kept its position');
  assert.equal(readB.publications.length, 0);
  assert.equal(readA.position.offset, 2);
  assert.equal(readA.publications.length, 2, 'a was kept whole: it was published since');
  // A live subscriber of b sees its next message continue the same epoch: no reload.
  const b2 = h.append('b', 'next', POLICY, t++);
  assert.deepEqual(b2.position, { offset: 2, epoch: b1.position!.epoch });
  // Messages alone went so far: a stamp issued before still vouches.
  h.append('quiet', 'now', POLICY, t);
  assert.equal(h.read('quiet', { since: stamp, limit: 10, policy: POLICY }, t).stampHolds, true);

  // Once positions alone pass the bound, whole channels go, oldest first, and older stamps stop vouching.
  const stamp2 = h.read('quiet3', { limit: 10, policy: POLICY }, t).position;
  for (; !isReadStamp(h.read('filler.0', { limit: 10, policy: POLICY }, t).position.epoch); i++) {
    h.append(`filler.${i}`, 'z'.repeat(1000), POLICY, ++t);
  }
  assert.ok(h.usage().bytes <= 1 << 20);
  assert.ok(!isReadStamp(h.read(`filler.${i - 1}`, { limit: 10, policy: POLICY }, t).position.epoch), 'the newest kept');
  h.append('quiet3', 'now', POLICY, ++t);
  assert.equal(h.read('quiet3', { since: stamp2, limit: 10, policy: POLICY }, t).stampHolds, false);
  // A stamp issued after the last eviction (a later millisecond) vouches again.
  const fresh = h.read('quiet2', { limit: 10, policy: POLICY }, t + 1).position;
  h.append('quiet2', 'later', POLICY, t + 2);
  assert.equal(h.read('quiet2', { since: fresh, limit: 10, policy: POLICY }, t + 2).stampHolds, true);
});

test('memory history: one channel larger than the bound keeps its newest messages', () => {
  const h = new MemoryHistory(1 << 20);
  for (let i = 1; i <= 100; i++) h.append('big', `${i}:`.padEnd(20_000, '.'), POLICY, 1000);
  assert.ok(h.usage().bytes <= 1 << 20);
  const r = h.read('big', { since: { offset: 0, epoch: 'x' }, limit: 100, policy: POLICY }, 1000);
  assert.equal(r.position.offset, 100);
  const kept = r.publications.map((p) => p.position!.offset);
  assert.ok(kept.length > 1 && kept.length < 100, `${kept.length} kept`);
  assert.equal(kept[kept.length - 1], 100, 'the newest');
  assert.deepEqual(kept, Array.from({ length: kept.length }, (_, i) => 101 - kept.length + i), 'contiguous to the top');
});
