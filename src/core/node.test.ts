/**
 * The node's one ticker on a ManualClock: heartbeats, credential expiry, the close grace and the embedded broker's
 * history TTL, each checked by moving time by hand instead of waiting real seconds.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DisconnectReason } from '../errors.js';
import type { BrokerHandler } from '../broker/broker.js';
import { MemoryBroker } from '../broker/memory.js';
import { resolveConfig } from '../config.js';
import { ndjsonCodec } from '../protocol/frames.js';
import { ManualClock } from '../util/clock.js';
import { createLogger } from '../util/log.js';
import { createNodeMetrics, MetricsRegistry } from './metrics.js';
import { HeraldNode } from './node.js';
import type { SessionSink } from './session.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

/** A sink that counts heartbeats and remembers how it ended. */
class Recording implements SessionSink {
  frames: string[] = [];
  heartbeats = 0;
  closedWith: DisconnectReason | undefined;
  destroyed = false;
  write(bytes: Buffer): void {
    this.frames.push(bytes.toString('utf8'));
  }
  bufferedBytes(): number {
    return 0;
  }
  destroy(): void {
    this.destroyed = true;
  }
  heartbeat(): void {
    this.heartbeats++;
  }
  close(reason: DisconnectReason): void {
    this.closedWith = reason;
  }
}

async function started(overrides: Record<string, unknown> = {}) {
  const clock = new ManualClock(T0);
  const config = resolveConfig({ overrides: { dev: true, heartbeatSeconds: 5, closeGraceMs: 3000, logLevel: 'silent', ...overrides } });
  const broker = new MemoryBroker({ clock });
  const node = new HeraldNode(broker, config, createLogger('silent'), createNodeMetrics(new MetricsRegistry()), undefined, clock);
  await node.start();
  return { clock, node, broker };
}

test('heartbeats come once per heartbeatSeconds, on the clock the node was given', async () => {
  const { clock, node } = await started();
  const session = await node.openSession(ndjsonCodec(false), [{ channel: 'c', label: 'c' }], {
    transport: 'sub',
    remoteAddress: '127.0.0.1',
    maxQueueBytes: 1 << 20,
  });
  const sink = new Recording();
  session.attach(sink);
  clock.advance(4999);
  assert.equal(sink.heartbeats, 0);
  clock.advance(1);
  assert.equal(sink.heartbeats, 1);
  clock.advance(10_000);
  assert.equal(sink.heartbeats, 3);
  await node.stop();
});

test('expired credentials end the session within a tick; a socket that stays open is destroyed after the grace', async () => {
  const { clock, node } = await started();
  const session = await node.openSession(ndjsonCodec(false), [{ channel: 'c', label: 'c' }], {
    transport: 'sub',
    remoteAddress: '127.0.0.1',
    maxQueueBytes: 1 << 20,
    expiresAt: T0 + 2500,
  });
  const sink = new Recording();
  session.attach(sink);
  clock.advance(2000);
  assert.equal(sink.closedWith, undefined);
  clock.advance(1000);
  assert.equal(sink.closedWith, 'expired');
  assert.equal(node.sessionsOn('c').length, 0, 'its channels are left at once');
  assert.equal(node.sessionCount(), 1, 'still counted until its socket closes');
  clock.advance(2000);
  assert.equal(sink.destroyed, false);
  clock.advance(1000);
  assert.equal(sink.destroyed, true, 'closeGraceMs after its last words');
  session.clientGone();
  assert.equal(node.sessionCount(), 0);
  await node.stop();
});

test('the embedded broker keeps history for its TTL on the same clock', async () => {
  const { clock, node, broker } = await started();
  const policy = { size: 10, ttlMs: 60_000, metaTtlMs: 120_000 };
  const { id } = await broker.publish('h', 'one', { history: policy });
  const start = { offset: 0, epoch: id!.slice(id!.indexOf('-') + 1) };
  clock.advance(59_000);
  const before = await broker.history('h', { since: start, limit: 10, policy });
  assert.deepEqual(before.publications.map((p) => p.data), ['one']);
  clock.advance(2000);
  const after = await broker.history('h', { since: start, limit: 10, policy });
  assert.equal(after.publications.length, 0, 'expired after ttlMs without a publication');
  await node.stop();
});

test('ManualClock runs timers in time order, a timer due twice twice, and never after stop', () => {
  const clock = new ManualClock(0);
  const seen: string[] = [];
  const a = clock.every(300, () => seen.push(`a${clock.now()}`));
  clock.every(500, () => seen.push(`b${clock.now()}`));
  clock.advance(1000);
  assert.deepEqual(seen, ['a300', 'b500', 'a600', 'a900', 'b1000']);
  a.stop();
  clock.advance(600);
  assert.deepEqual(seen.slice(5), ['b1500']);
  assert.equal(clock.now(), 1600);
});

/** A MemoryBroker whose deliveries to the node can be cut (`dropping`) while it keeps publishing into history. */
function lossyBroker(clock: ManualClock): { broker: MemoryBroker; setDropping(on: boolean): void } {
  const inner = new MemoryBroker({ clock });
  let dropping = false;
  const broker = new Proxy(inner, {
    get(target, key) {
      if (key === 'start') {
        return (handler: BrokerHandler) =>
          target.start({ ...handler, onPublication: (p) => (dropping ? undefined : handler.onPublication(p)) });
      }
      const value: unknown = Reflect.get(target, key);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { broker, setDropping: (on) => (dropping = on) };
}

test('a live message that skips offsets is held, the missed ones are read from history, and all arrive once in order', async () => {
  const clock = new ManualClock(T0);
  const config = resolveConfig({ overrides: { dev: true, historySize: 10, logLevel: 'silent' } });
  const { broker, setDropping } = lossyBroker(clock);
  const node = new HeraldNode(broker, config, createLogger('silent'), createNodeMetrics(new MetricsRegistry()), undefined, clock);
  await node.start();
  const session = await node.openSession(
    ndjsonCodec(false),
    [{ channel: 'g', label: 'g' }],
    { transport: 'sub', remoteAddress: '127.0.0.1', maxQueueBytes: 1 << 20 },
    { since: [undefined] },
  );
  const sink = new Recording();
  session.attach(sink);
  await node.publish('g', 'm1', { source: 'api' });
  setDropping(true);
  await node.publish('g', 'm2', { source: 'api' });
  await node.publish('g', 'm3', { source: 'api' });
  setDropping(false);
  await node.publish('g', 'm4', { source: 'api' });
  await node.publish('g', 'm5', { source: 'api' });
  // The history read is a promise: let it settle.
  for (let i = 0; i < 5 && sink.frames.filter((f) => f.includes('"message"')).length < 5; i++) await new Promise((r) => setImmediate(r));
  const data = sink.frames.filter((f) => f.includes('"message"')).map((f) => (JSON.parse(f) as string[])[2]);
  assert.deepEqual(data, ['m1', 'm2', 'm3', 'm4', 'm5']);
  assert.equal(session.positionOf('g')?.offset, 5);
  await node.stop();
});
