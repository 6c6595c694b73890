/** The broker conformance suite on the workers' broker: WorkerBrokers reaching one BrokerHost (the primary's end) over its Unix socket. */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryBroker } from '../src/broker/memory.js';
import { BrokerHost } from '../src/cluster/broker-host.js';
import { PrimaryLink } from '../src/cluster/primary-link.js';
import { WorkerBroker } from '../src/cluster/worker-broker.js';
import { createLogger } from '../src/util/log.js';
import { brokerConformance } from './helpers/broker-conformance.js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { test } from 'node:test';
import { encodeFrame, Op } from '../src/cluster/frames.js';
import { HeraldError } from '../src/errors.js';

brokerConformance('workers (embedded broker in the primary)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-test-'));
  const host = new BrokerHost({
    socketPath: join(dir, 'workers.sock'),
    broker: new MemoryBroker(),
    log: createLogger('silent'),
    ownMetrics: () => '',
    machine: () => ({ expected: 0, restarts: 0, draining: false }),
  });
  await host.start();
  const links: PrimaryLink[] = [];
  return {
    newBroker: () => {
      const link = new PrimaryLink(join(dir, 'workers.sock'), links.length + 1);
      links.push(link);
      return new WorkerBroker(link);
    },
    multiNode: true,
    close: async () => {
      for (const link of links) link.close();
      await host.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

// SECURITY row 46: garbage on the workers' Unix socket. The peers are the machine's own processes (the socket sits in
// a 0700 directory), but a frame is still checked: a bad one closes that link or is answered ERR, and a good link
// beside it keeps working.

test('row 46: garbage frames on the workers\' socket close that link or are refused; a good link keeps working', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'herald-test-'));
  const socketPath = join(dir, 'workers.sock');
  const host = new BrokerHost({
    socketPath,
    broker: new MemoryBroker(),
    log: createLogger('silent'),
    ownMetrics: () => '',
    machine: () => ({ expected: 1, restarts: 0, draining: false }),
  });
  await host.start();
  const good = new WorkerBroker(new PrimaryLink(socketPath, 1));
  const got: string[] = [];
  await good.start({ onPublication: (p) => got.push(p.data) });
  await good.subscribe(['control']);
  const closes = (bytes: Buffer): Promise<boolean> =>
    new Promise((resolve) => {
      const s = connect(socketPath, () => s.write(bytes));
      const timer = setTimeout(() => {
        s.destroy();
        resolve(false);
      }, 3000);
      s.on('error', () => undefined);
      s.on('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  const header = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const body = (text: string): Buffer => Buffer.concat([header(Buffer.byteLength(text)), Buffer.from(text)]);
  assert.equal(await closes(header(0xffffffff)), true, 'a length over the bound');
  assert.equal(await closes(body('not json')), true, 'not JSON');
  assert.equal(await closes(body('{"op":1}')), true, 'not an array');
  assert.equal(await closes(body('["x"]')), true, 'no op number');
  assert.equal(await closes(body('[3]')), true, 'a request without an id');
  // Presence writes (pushes, no answer): a bad channel or member closes the link.
  assert.equal(await closes(body(`[${Op.PRESENCE_ADD},"bad\\u0000name",{"client":"abc-1","user":"","connectedAt":1}]`)), true, 'presence: bad channel');
  assert.equal(await closes(body(`[${Op.PRESENCE_ADD},"room",{"client":"not an id","user":"","connectedAt":1}]`)), true, 'presence: bad member');
  assert.equal(await closes(body(`[${Op.PRESENCE_REMOVE},"room",7]`)), true, 'presence: remove without a client');
  // Well-framed requests with bad fields are refused with an error, not acted on.
  const bad = new PrimaryLink(socketPath, 2);
  await bad.connect();
  await assert.rejects(bad.request(Op.PUBLISH, 42, 'data', null, null), (e: unknown) => e instanceof HeraldError && e.code === 'bad_request');
  await assert.rejects(bad.request(Op.SUB, 'not-a-list'), (e: unknown) => e instanceof HeraldError && e.code === 'bad_request');
  await assert.rejects(bad.request(99), (e: unknown) => e instanceof HeraldError && e.code === 'bad_request');
  await assert.rejects(bad.request(Op.PRESENCE_READ, 42, true, 10), (e: unknown) => e instanceof HeraldError && e.code === 'bad_request');
  bad.close();
  // The good link is untouched.
  await good.publish('control', 'still here');
  const deadline = Date.now() + 3000;
  while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(got, ['still here']);
  assert.equal(statSync(dir).mode & 0o077, 0, 'the socket directory is private');
  assert.ok(encodeFrame([Op.OK, 1, null]).length > 4);
  await good.close();
  await host.close();
  rmSync(dir, { recursive: true, force: true });
});
