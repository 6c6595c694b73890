/**
 * The Hub alone, with no socket and no real broker: a broker that records its subscribe/unsubscribe calls, members
 * that record the frames handed to them, and encoders that count their calls. Checks that a publication is encoded
 * once per (format, label) group and that every member of a group gets the very same Buffer.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Broker, BrokerHandler, PublishResult } from '../broker/broker.js';
import type { FrameEncoder } from '../protocol/frames.js';
import type { Publication } from '../protocol/publication.js';
import { createLogger } from '../util/log.js';
import { Hub, type HubMember } from './hub.js';

/** Records the node-level broker calls; `failSubscribe` makes the next subscribe reject. */
class RecordingBroker implements Broker {
  readonly kind = 'recording';
  calls: string[] = [];
  failSubscribe = false;
  async start(_handler: BrokerHandler): Promise<void> {}
  async subscribe(channels: readonly string[]): Promise<void> {
    this.calls.push(`sub ${channels.join(',')}`);
    if (this.failSubscribe) throw new Error('broker down');
  }
  async unsubscribe(channels: readonly string[]): Promise<void> {
    this.calls.push(`unsub ${channels.join(',')}`);
  }
  async publish(): Promise<PublishResult> {
    throw new Error('not used here');
  }
  isReady(): boolean {
    return true;
  }
  subscribedCount(): number {
    return 0;
  }
  async close(): Promise<void> {}
}

/** An encoder whose frames say who made them, and which counts its calls. */
function countingEncoder(name: string): FrameEncoder & { calls: number } {
  const encoder = {
    name,
    calls: 0,
    encode(p: Publication, label: string): Buffer {
      encoder.calls++;
      return Buffer.from(`${name}|${label}|${p.data}`);
    },
    encodeReload: (): Buffer => Buffer.alloc(0),
    encodePosition: (): Buffer => Buffer.alloc(0),
  };
  return encoder;
}

class Member implements HubMember {
  got: { frame: Buffer; label: string; id: string | undefined; position: boolean }[] = [];
  send(frame: Buffer, publication: Publication, label: string): void {
    this.got.push({ frame, label, id: publication.id, position: publication.position !== undefined });
  }
}

function newHub(): { hub: Hub; broker: RecordingBroker } {
  const broker = new RecordingBroker();
  return { hub: new Hub(broker, createLogger('silent')), broker };
}

const pub = (channel: string, data: string, id?: string): Publication => ({ channel, data, id, ts: 0 });

/** Lets the Hub's chained broker calls (promise callbacks) run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('fan-out encodes once per group and hands every member of the group the same Buffer', async () => {
  const { hub } = newHub();
  const enc = countingEncoder('a');
  const members = [new Member(), new Member(), new Member()];
  for (const m of members) await hub.join('news', 'news', enc, m);
  hub.onPublication(pub('news', 'hello'));
  assert.equal(enc.calls, 1);
  const frames = members.map((m) => m.got.map((g) => g.frame));
  for (const f of frames) assert.equal(f.length, 1);
  // The very same object, not equal copies: nothing is allocated per subscriber.
  assert.equal(frames[1]![0], frames[0]![0]);
  assert.equal(frames[2]![0], frames[0]![0]);
  assert.equal(frames[0]![0]!.toString(), 'a|news|hello');
  assert.equal(hub.deliveries, 3);
  assert.equal(hub.publications, 1);
});

test('two formats and two labels on one channel: one encode per (format, label), each member its own group\'s bytes', async () => {
  const { hub } = newHub();
  const a = countingEncoder('a');
  const b = countingEncoder('b');
  const [m1, m2, m3, m4] = [new Member(), new Member(), new Member(), new Member()];
  await hub.join('news', 'news', a, m1);
  await hub.join('news', 'news', a, m2);
  await hub.join('news', 'news', b, m3);
  await hub.join('news', 'alias', a, m4);
  hub.onPublication(pub('news', 'x'));
  assert.equal(a.calls, 2); // labels news and alias
  assert.equal(b.calls, 1);
  assert.equal(m1.got[0]!.frame, m2.got[0]!.frame);
  assert.equal(m3.got[0]!.frame.toString(), 'b|news|x');
  assert.equal(m4.got[0]!.frame.toString(), 'a|alias|x');
  assert.equal(m4.got[0]!.label, 'alias');
  assert.equal(hub.deliveries, 4);
});

test('a publication reaches only the members of its own channel; one on a channel with no member is dropped', async () => {
  const { hub } = newHub();
  const enc = countingEncoder('a');
  const onNews = new Member();
  const onSport = new Member();
  await hub.join('news', 'news', enc, onNews);
  await hub.join('sport', 'sport', enc, onSport);
  hub.onPublication(pub('news', 'n1'));
  hub.onPublication(pub('weather', 'w1'));
  assert.deepEqual(onNews.got.map((g) => g.frame.toString()), ['a|news|n1']);
  assert.deepEqual(onSport.got, []);
  assert.equal(enc.calls, 1);
  assert.equal(hub.publications, 1);
});

test('the first member subscribes the node at the broker, the last one leaving unsubscribes it, in order', async () => {
  const { hub, broker } = newHub();
  const enc = countingEncoder('a');
  const [m1, m2] = [new Member(), new Member()];
  await hub.join('news', 'news', enc, m1);
  await hub.join('news', 'news', enc, m2);
  assert.deepEqual(broker.calls, ['sub news']);
  hub.leave('news', 'news', enc, m1);
  await settle();
  assert.deepEqual(broker.calls, ['sub news'], 'one member is still there');
  hub.leave('news', 'news', enc, m2);
  await settle();
  assert.deepEqual(broker.calls, ['sub news', 'unsub news']);
  await hub.join('news', 'news', enc, m1);
  assert.deepEqual(broker.calls, ['sub news', 'unsub news', 'sub news']);
});

test('a member that left gets nothing more; the others still do', async () => {
  const { hub } = newHub();
  const enc = countingEncoder('a');
  const [stays, goes] = [new Member(), new Member()];
  await hub.join('news', 'news', enc, stays);
  await hub.join('news', 'news', enc, goes);
  hub.leave('news', 'news', enc, goes);
  hub.onPublication(pub('news', 'after'));
  assert.equal(goes.got.length, 0);
  assert.equal(stays.got.length, 1);
  assert.equal(hub.deliveries, 1);
});

test('leave under another label or another format removes nothing (a member is its (format, label) membership)', async () => {
  const { hub } = newHub();
  const a = countingEncoder('a');
  const b = countingEncoder('b');
  const m = new Member();
  await hub.join('news', 'news', a, m);
  hub.leave('news', 'other', a, m);
  hub.leave('news', 'news', b, m);
  hub.leave('nowhere', 'nowhere', a, m);
  assert.equal(hub.memberCount('news'), 1);
  hub.onPublication(pub('news', 'still'));
  assert.equal(m.got.length, 1);
});

test('joining twice under the same label and format is one membership (one frame per publication)', async () => {
  const { hub } = newHub();
  const enc = countingEncoder('a');
  const m = new Member();
  await hub.join('news', 'news', enc, m);
  await hub.join('news', 'news', enc, m);
  assert.equal(hub.memberCount('news'), 1);
  assert.equal(hub.subscriptionCount(), 1);
  hub.onPublication(pub('news', 'once'));
  assert.equal(m.got.length, 1);
});

test('counts: channels, members per channel, (member, channel) pairs, names and members listed', async () => {
  const { hub } = newHub();
  const a = countingEncoder('a');
  const b = countingEncoder('b');
  const [m1, m2, m3] = [new Member(), new Member(), new Member()];
  await hub.join('news', 'news', a, m1);
  await hub.join('news', 'news', b, m2);
  await hub.join('sport', 'sport', a, m1);
  await hub.join('sport', 'alias', a, m3);
  assert.equal(hub.channelCount(), 2);
  assert.equal(hub.memberCount('news'), 2);
  assert.equal(hub.memberCount('sport'), 2);
  assert.equal(hub.memberCount('weather'), 0);
  assert.equal(hub.subscriptionCount(), 4);
  assert.deepEqual([...hub.channelNames()].sort(), ['news', 'sport']);
  assert.deepEqual(new Set(hub.membersOf('news')), new Set([m1, m2]));
  const groups: string[] = [];
  hub.forEachGroup('sport', (label, members) => groups.push(`${label}:${[...members].length}`));
  assert.deepEqual(groups.sort(), ['alias:1', 'sport:1']);
  hub.leave('sport', 'sport', a, m1);
  hub.leave('sport', 'alias', a, m3);
  assert.equal(hub.channelCount(), 1);
  assert.equal(hub.subscriptionCount(), 2);
  assert.equal(hub.memberCount('sport'), 0);
});

test('occupancy is told on the first join and the last leave only', async () => {
  const { hub } = newHub();
  const told: string[] = [];
  hub.occupancyObserver = (channel, occupied) => told.push(`${channel} ${occupied}`);
  const enc = countingEncoder('a');
  const [m1, m2] = [new Member(), new Member()];
  await hub.join('news', 'news', enc, m1);
  await hub.join('news', 'news', enc, m2);
  hub.leave('news', 'news', enc, m1);
  assert.deepEqual(told, ['news true']);
  hub.leave('news', 'news', enc, m2);
  assert.deepEqual(told, ['news true', 'news false']);
});

test('a broker subscription that fails rejects the join with unavailable and leaves nothing behind', async () => {
  const { hub, broker } = newHub();
  broker.failSubscribe = true;
  const m = new Member();
  await assert.rejects(hub.join('news', 'news', countingEncoder('a'), m), { code: 'unavailable' });
  assert.equal(hub.channelCount(), 0);
  assert.equal(hub.subscriptionCount(), 0);
  hub.onPublication(pub('news', 'lost'));
  assert.equal(m.got.length, 0);
});

test('a Herald id is parsed once for every member; an id that is not Herald\'s stays opaque', async () => {
  const { hub } = newHub();
  const enc = countingEncoder('a');
  const [m1, m2] = [new Member(), new Member()];
  await hub.join('news', 'news', enc, m1);
  await hub.join('news', 'news', enc, m2);
  hub.onPublication(pub('news', 'x', '5-1'));
  hub.onPublication(pub('news', 'y', 'not-an-id'));
  assert.deepEqual(
    m1.got.map((g) => [g.id, g.position]),
    [
      ['5-1', true],
      ['not-an-id', false],
    ],
  );
  assert.deepEqual(m2.got.map((g) => g.position), [true, false]);
});

test('fan-out observer: one call per publication with members, with the frames handed out', async () => {
  const { hub } = newHub();
  const seen: string[] = [];
  hub.observeFanOut((channel, delivered, seconds) => {
    assert.ok(seconds >= 0);
    seen.push(`${channel} ${delivered}`);
  });
  const enc = countingEncoder('a');
  await hub.join('news', 'news', enc, new Member());
  await hub.join('news', 'news', enc, new Member());
  hub.onPublication(pub('news', 'x'));
  hub.onPublication(pub('empty', 'y'));
  assert.deepEqual(seen, ['news 2']);
});

test('takeBusiest: channels by publications since the last call, then reset', async () => {
  const { hub } = newHub();
  const enc = countingEncoder('a');
  await hub.join('a', 'a', enc, new Member());
  await hub.join('b', 'b', enc, new Member());
  await hub.join('b', 'b', enc, new Member());
  hub.onPublication(pub('a', '1'));
  hub.onPublication(pub('b', '1'));
  hub.onPublication(pub('b', '2'));
  assert.deepEqual(hub.takeBusiest(10), [
    { channel: 'b', messages: 2, subscribers: 2 },
    { channel: 'a', messages: 1, subscribers: 1 },
  ]);
  assert.deepEqual(hub.takeBusiest(10), []);
  hub.onPublication(pub('a', '2'));
  assert.deepEqual(hub.takeBusiest(1), [{ channel: 'a', messages: 1, subscribers: 1 }]);
});
