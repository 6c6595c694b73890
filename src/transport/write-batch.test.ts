/**
 * Unit tests of the per-turn write batch (transport/write-batch.ts) on a real loopback socket pair: frames of one
 * turn reach the socket together at the turn's end, in order, as one write system call (a corked writev); a frame
 * past the batch bound goes out at once behind what waited; a dropped batch is never written.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { BATCH_MAX_BYTES, BatchedWriter } from './write-batch.js';

async function pair(): Promise<{ client: net.Socket; server: net.Socket; received: () => string; close: () => void }> {
  const listener = net.createServer();
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  const port = (listener.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => listener.once('connection', r));
  const client = net.connect(port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', r));
  const server = await accepted;
  let text = '';
  client.setEncoding('latin1');
  client.on('data', (d: string) => (text += d));
  return {
    client, server, received: () => text,
    close: () => {
      client.destroy();
      server.destroy();
      listener.close();
    },
  };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(() => setImmediate(r)));

test('frames of one turn leave together at its end, in order, in one writev', async () => {
  const p = await pair();
  try {
    let writes = 0;
    let writevs = 0;
    // Count what reaches the stream's implementation: one call is one system call on a free socket.
    const s = p.server as net.Socket & { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
    const w0 = s._write.bind(s);
    const wv0 = s._writev.bind(s);
    s._write = (...a: unknown[]) => (writes++, w0(...a));
    s._writev = (...a: unknown[]) => (writevs++, wv0(...a));
    const w = new BatchedWriter(p.server);
    w.batch(Buffer.from('a\n'));
    w.batch(Buffer.from('b\n'));
    w.batch(Buffer.from('c\n'));
    assert.equal(p.server.bytesWritten, 0, 'nothing written before the turn ends');
    assert.equal(w.pendingBytes(), 6);
    await turn();
    assert.equal(writes + writevs, 1, `one write for the turn (writes ${writes}, writevs ${writevs})`);
    assert.equal(writevs, 1);
    assert.equal(w.pendingBytes(), 0);
    w.batch(Buffer.from('d\n'));
    await turn();
    assert.equal(writes, 1, 'a lone frame is one plain write');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(p.received(), 'a\nb\nc\nd\n');
  } finally {
    p.close();
  }
});

test('a frame past the batch bound is written at once, after what waited; a dropped batch is never written', async () => {
  const p = await pair();
  try {
    const w = new BatchedWriter(p.server);
    w.batch(Buffer.from('first\n'));
    const big = Buffer.alloc(BATCH_MAX_BYTES, 'x');
    w.batch(big);
    assert.equal(w.pendingBytes(), 0, 'flushed with the big frame');
    assert.ok(p.server.bytesWritten >= big.length + 6);
    w.batch(Buffer.from('never\n'));
    w.drop();
    await turn();
    await new Promise((r) => setTimeout(r, 100));
    const got = p.received();
    assert.ok(got.startsWith('first\nxxx'), 'order kept');
    assert.equal(got.length, 6 + big.length, 'the dropped frame was not written');
  } finally {
    p.close();
  }
});
