/**
 * The publish fast path's input buffer (src/http/byte-queue.ts) against the obvious model (one concatenated Buffer),
 * over random pushes and consumes: borrowed chunks, growth, compaction and emptying all keep the bytes exact.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteQueue } from '../src/http/byte-queue.js';

test('ByteQueue holds exactly the bytes pushed and not consumed, through growth and compaction', () => {
  let seed = 42;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const q = new ByteQueue();
  let model = Buffer.alloc(0);
  let next = 0;
  const pushed: [Buffer, Buffer][] = [];
  for (let step = 0; step < 5000; step++) {
    if (random(3) > 0) {
      // Sizes from 1 byte to past the queue's first capacity (16 KB), so every branch of push runs.
      const size = random(10) === 0 ? 1 + random(40_000) : 1 + random(300);
      const chunk = Buffer.alloc(size);
      for (let i = 0; i < size; i++) chunk[i] = next++ & 0xff;
      const copy = Buffer.from(chunk);
      q.push(chunk);
      pushed.push([chunk, copy]);
      model = Buffer.concat([model, copy]);
    } else {
      const n = random(model.length + 1);
      q.consume(n);
      model = model.subarray(n);
    }
    assert.equal(q.length, model.length);
    assert.ok(q.view().equals(model), `step ${step}: queue bytes differ from the model`);
  }
  // A read chunk the queue held as it is was never written into.
  assert.ok(pushed.every(([chunk, copy]) => chunk.equals(copy)));
  const rest = q.takeAll();
  assert.ok(rest.equals(model));
  assert.equal(q.length, 0);
});

test('ByteQueue never writes into a read chunk it holds as it is', () => {
  const q = new ByteQueue();
  const first = Buffer.from('abcdef');
  q.push(first);
  q.consume(2);
  q.push(Buffer.from('ghi'));
  assert.equal(first.toString(), 'abcdef');
  assert.equal(q.view().toString(), 'cdefghi');
});
