// Dead-peer detection on HTTP streams, from the node's one ticker: a /sub or /sse client whose socket stops draining
// (it stopped reading, or vanished while data was in flight) is freed within two heartbeat intervals, long before its
// queue would reach maxQueueBytes; a control subscriber is undisturbed and the counts return to baseline.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { eventually, openStream, publish, startServer, type TestServer } from './helpers/server.js';
import { ManualClock } from '../src/util/clock.js';

let node: TestServer;
// The node's ticker runs on a ManualClock: each heartbeat interval passes when the test moves time.
const clock = new ManualClock(Date.now());
before(async () => {
  node = await startServer({ heartbeatSeconds: 1, maxQueueBytes: 256 << 20, maxBodyBytes: 2 << 20 }, { clock });
});
after(() => node.close());

const counts = (): string =>
  [node.server.node.sessionCount(), node.server.node.hub.subscriptionCount(), node.server.node.broker.subscribedCount()].join();

for (const path of ['/sub', '/sse']) {
  test(`${path}: a client that stops reading while messages flow is freed as a dead peer`, async () => {
    const control = await openStream(`${node.url}${path}?channel=control`);
    const baseline = counts();
    const deadBefore = node.server.node.metrics.disconnects.get({ reason: 'dead_peer' });
    const u = new URL(node.url);
    const socket = net.connect(Number(u.port), u.hostname);
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => {
      socket.write(`GET ${path}?channel=flood HTTP/1.1\r\nHost: ${u.host}\r\n\r\n`);
      socket.once('data', () => {
        // Headers arrived: the stream is live. From now on this client reads nothing.
        socket.pause();
        resolve();
      });
    });
    const big = 'x'.repeat(512 * 1024);
    // Enough to fill both kernel buffers on loopback and leave bytes waiting in the server's socket.
    for (let i = 0; i < 32; i++) await publish(node.url, { channel: 'flood', data: big });
    await publish(node.url, { channel: 'control', data: 'still' });
    // First interval: the stalled socket's sent count is noted, not judged (it moved since the stream opened).
    clock.advance(1000);
    await new Promise((r) => setTimeout(r, 50));
    assert.notEqual(counts(), baseline, 'not freed after one interval');
    // Second interval: nothing drained since the first: freed.
    clock.advance(1000);
    await eventually(() => counts() === baseline, 2000, 'stalled client freed');
    assert.equal(node.server.node.metrics.disconnects.get({ reason: 'dead_peer' }), deadBefore + 1);
    // Heartbeats (empty lines, comments) come and go: wait for the message itself.
    await eventually(() => control.lines.some((l) => l.includes('"still"')), 3000, 'control message');
    socket.destroy();
    control.close();
  });
}
