/**
 * The broker conformance suite, written once and run on every broker (memory, Redis, Redis Cluster): each point of
 * the contract in ./broker.ts is a case here. A test file calls `brokerConformance(name, fixture)`; see
 * test/broker-*.test.ts. Uses node's own test runner and assert, so it adds no dependency.
 *
 * Optional capabilities (history) add their cases here too, guarded by the capability's presence.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HeraldError } from '../../src/errors.js';
import type { Broker } from '../../src/broker/broker.js';
import type { Publication } from '../../src/protocol/publication.js';

export interface BrokerFixture {
  /** A new, started-by-the-suite broker on the shared backend (a new "node"). */
  newBroker(): Broker;
  /** True when two brokers from newBroker() reach each other (not the memory broker). */
  readonly multiNode: boolean;
  /** Publish as a plain client of the backend would (`PUBLISH`/`SPUBLISH` from redis-cli), where there is one. */
  rawPublish?(channel: string, data: string): Promise<void>;
  /** Stop the backend. */
  close(): Promise<void>;
}

/** A handler that records what it receives and lets a test wait for it. */
export class Collector {
  readonly received: Publication[] = [];
  readonly changes: boolean[] = [];
  private waiters: (() => void)[] = [];

  onPublication(p: Publication): void {
    this.received.push(p);
    for (const w of this.waiters.splice(0)) w();
  }

  onConnectionChange(ready: boolean): void {
    this.changes.push(ready);
  }

  on(channel: string): Publication[] {
    return this.received.filter((p) => p.channel === channel);
  }

  /** Resolves once `count` publications on `channel` arrived; rejects after timeoutMs. */
  async waitFor(channel: string, count: number, timeoutMs = 5000): Promise<Publication[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = this.on(channel);
      if (got.length >= count) return got;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${count} on ${channel}; got ${got.length}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Time for a message that should NOT arrive to have arrived anyway. */
const QUIET_MS = 150;

export async function startBroker(fixture: BrokerFixture): Promise<{ broker: Broker; seen: Collector }> {
  const broker = fixture.newBroker();
  const seen = new Collector();
  await broker.start(seen);
  // start() waits for one connection attempt only; on a loaded machine the first may time out and a retry succeed.
  const deadline = Date.now() + 10_000;
  while (!broker.isReady() && Date.now() < deadline) await sleep(20);
  return { broker, seen };
}

let unique = 0;
/** A channel name no other case uses (brokers in one suite share one backend). */
const fresh = (base: string): string => `${base}-${process.pid}-${++unique}`;

export function brokerConformance(name: string, makeFixture: () => Promise<BrokerFixture>): void {
  describe(`broker conformance: ${name}`, () => {
    let fixture: BrokerFixture;
    let a: { broker: Broker; seen: Collector };
    let b: { broker: Broker; seen: Collector } | undefined;

    before(async () => {
      fixture = await makeFixture();
      a = await startBroker(fixture);
      if (fixture.multiNode) b = await startBroker(fixture);
    });
    after(async () => {
      await a?.broker.close();
      await b?.broker.close();
      await fixture?.close();
    });

    test('is ready after start', () => {
      assert.equal(a.broker.isReady(), true);
    });

    test('a publication after subscribe resolves reaches the handler exactly once', async () => {
      const ch = fresh('once');
      await a.broker.subscribe([ch]);
      await a.broker.subscribe([ch]); // idempotent: still one delivery per publication
      await a.broker.publish(ch, 'x');
      const got = await a.seen.waitFor(ch, 1);
      await sleep(QUIET_MS);
      assert.equal(a.seen.on(ch).length, 1);
      assert.equal(got[0]?.data, 'x');
      assert.equal(typeof got[0]?.ts, 'number');
    });

    test('per channel, publications arrive in publish order', async () => {
      const ch = fresh('order');
      await a.broker.subscribe([ch]);
      const n = 200;
      await Promise.all(Array.from({ length: n }, (_, i) => a.broker.publish(ch, String(i))));
      const got = await a.seen.waitFor(ch, n);
      assert.deepEqual(got.map((p) => p.data), Array.from({ length: n }, (_, i) => String(i)));
    });

    test('data is delivered verbatim', async () => {
      const ch = fresh('verbatim');
      await a.broker.subscribe([ch]);
      const samples = ['', ' ', 'line1\nline2\r\n', '"quoted" \\ backslash', '{"json":[1,2]}', 'emoji 🚀 and é ☃', 'x'.repeat(64 * 1024), '\u0000nul'];
      for (const s of samples) await a.broker.publish(ch, s);
      const got = await a.seen.waitFor(ch, samples.length);
      assert.deepEqual(got.map((p) => p.data), samples);
    });

    test('channel names are opaque: no glob or pattern meaning', async () => {
      const patterns = ['news.*', 'a?c', '[ab]c', 'h{x}y', '*'].map((p) => `${fresh('pat')}:${p}`);
      await a.broker.subscribe(patterns);
      // Names a pattern would match, were it one.
      const literal = patterns.map((p) => p.replace(/\*|\?|\[ab\]/g, 'z')).filter((c) => !patterns.includes(c));
      for (const c of literal) await a.broker.publish(c, 'must-not-match');
      for (const c of patterns) await a.broker.publish(c, 'exact');
      for (const c of patterns) await a.seen.waitFor(c, 1);
      await sleep(QUIET_MS);
      for (const c of literal) assert.equal(a.seen.on(c).length, 0, `${c} matched a pattern`);
      for (const c of patterns) assert.deepEqual(a.seen.on(c).map((p) => p.data), ['exact']);
    });

    test('unsubscribe stops delivery; unknown channels are a no-op', async () => {
      const ch = fresh('unsub');
      await a.broker.subscribe([ch]);
      await a.broker.publish(ch, '1');
      await a.seen.waitFor(ch, 1);
      await a.broker.unsubscribe([ch]);
      await a.broker.unsubscribe([ch, fresh('never-subscribed')]);
      await a.broker.publish(ch, '2');
      await sleep(QUIET_MS);
      assert.deepEqual(a.seen.on(ch).map((p) => p.data), ['1']);
    });

    test('subscribedCount follows subscribe and unsubscribe', async () => {
      const before = a.broker.subscribedCount();
      const chs = [fresh('count'), fresh('count')];
      await a.broker.subscribe(chs);
      await a.broker.subscribe(chs);
      assert.equal(a.broker.subscribedCount(), before + 2);
      await a.broker.unsubscribe(chs);
      assert.equal(a.broker.subscribedCount(), before);
    });

    test('many channels subscribed in one tick all deliver (batched subscribe)', async () => {
      const chs = Array.from({ length: 300 }, () => fresh('many'));
      await Promise.all(chs.map((c) => a.broker.subscribe([c])));
      await Promise.all(chs.map((c) => a.broker.publish(c, c)));
      for (const c of chs) assert.equal((await a.seen.waitFor(c, 1))[0]?.data, c);
      await Promise.all(chs.map((c) => a.broker.unsubscribe([c])));
    });

    test('publishing to a channel nobody subscribed resolves', async () => {
      await a.broker.publish(fresh('nobody'), 'x');
    });

    test('a publication reaches every subscribed node once, and no other', async (t) => {
      if (!b) return t.skip('single-node broker');
      const ch = fresh('nodes');
      const other = fresh('nodes-other');
      await a.broker.subscribe([ch]);
      await b.broker.subscribe([ch, other]);
      await b.broker.publish(ch, 'from-b');
      await a.broker.publish(ch, 'from-a');
      await a.broker.publish(other, 'only-b');
      assert.deepEqual((await a.seen.waitFor(ch, 2)).map((p) => p.data).sort(), ['from-a', 'from-b']);
      assert.deepEqual((await b.seen.waitFor(ch, 2)).map((p) => p.data).sort(), ['from-a', 'from-b']);
      await b.seen.waitFor(other, 1);
      await sleep(QUIET_MS);
      assert.equal(a.seen.on(ch).length, 2);
      assert.equal(b.seen.on(ch).length, 2);
      assert.equal(a.seen.on(other).length, 0);
    });

    test('a plain publish from any client of the backend is delivered verbatim', async (t) => {
      if (!fixture.rawPublish) return t.skip('no outside publisher for this backend');
      const ch = fresh('raw');
      await a.broker.subscribe([ch]);
      if (b) await b.broker.subscribe([ch]);
      await fixture.rawPublish(ch, 'plain ☃ "publish"');
      assert.equal((await a.seen.waitFor(ch, 1))[0]?.data, 'plain ☃ "publish"');
      if (b) assert.equal((await b.seen.waitFor(ch, 1))[0]?.data, 'plain ☃ "publish"');
    });

    test('after close, publish and subscribe reject at once with unavailable', async () => {
      const c = await startBroker(fixture);
      await c.broker.close();
      assert.equal(c.broker.isReady(), false);
      const t0 = Date.now();
      await assert.rejects(c.broker.publish(fresh('closed'), 'x'), (err: unknown) => err instanceof HeraldError && err.code === 'unavailable');
      assert.ok(Date.now() - t0 < 100, 'publish after close must not wait');
    });
  });
}
