/** Reading what a client missed (against the real in-memory broker) and fitting a replay to a client's queue. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { HistoryPolicy } from '../broker/broker.js';
import { MemoryBroker } from '../broker/memory.js';
import { parseMessageId, type StreamPosition } from '../protocol/message-id.js';
import type { Publication } from '../protocol/publication.js';
import { fitReplay, readMissed } from './recovery.js';

const policy: HistoryPolicy = { size: 3, ttlMs: 60_000, metaTtlMs: 120_000 };
const broker = new MemoryBroker();
await broker.start({ onPublication: () => undefined });
after(() => broker.close());

/** Publish `n` messages on `channel`; returns their positions. */
async function publish(channel: string, n: number): Promise<StreamPosition[]> {
  const out: StreamPosition[] = [];
  for (let i = 0; i < n; i++) {
    const { id } = await broker.publish(channel, `m${i + 1}`, { history: policy });
    out.push(parseMessageId(id!)!);
  }
  return out;
}

const data = (ps: readonly Publication[]): string[] => ps.map((p) => p.data);

test('a client just behind gets exactly the messages it missed', async () => {
  const [p1, , p3] = await publish('behind', 3);
  const outcome = await readMissed(broker, policy, 'behind', p1);
  assert.equal(outcome.reload, undefined);
  assert.deepEqual(data(outcome.publications), ['m2', 'm3']);
  assert.deepEqual(outcome.position, p3);
});

test('a client up to date gets nothing and no reload', async () => {
  const ps = await publish('uptodate', 2);
  const outcome = await readMissed(broker, policy, 'uptodate', ps[1]);
  assert.deepEqual(outcome, { publications: [], position: ps[1] });
});

test('a position older than what is kept is a reload `expired`', async () => {
  const [p1] = await publish('expired', 5); // history keeps the last 3
  const outcome = await readMissed(broker, policy, 'expired', p1);
  assert.equal(outcome.reload, 'expired');
  assert.deepEqual(outcome.publications, []);
});

test('a position of another epoch is a reload `epoch` then the kept messages of the current one', async () => {
  const ps = await publish('epoch', 2);
  const outcome = await readMissed(broker, policy, 'epoch', { offset: 9, epoch: 'other' });
  assert.equal(outcome.reload, 'epoch');
  assert.deepEqual(data(outcome.publications), ['m1', 'm2']);
  assert.deepEqual(outcome.reloadAt, { offset: 0, epoch: ps[0]!.epoch });
});

test('a position beyond the channel is a reload `epoch`; no history at all is `no_history`', async () => {
  const [p1] = await publish('beyond', 1);
  assert.equal((await readMissed(broker, policy, 'beyond', { offset: 50, epoch: p1!.epoch })).reload, 'epoch');
  assert.equal((await readMissed(broker, undefined, 'beyond', p1)).reload, 'no_history');
  assert.deepEqual(await readMissed(broker, undefined, 'beyond', undefined), { publications: [] });
});

test('a client without a position gets the position, and a reload only when told why it may have missed some', async () => {
  const ps = await publish('fresh', 1);
  assert.deepEqual(await readMissed(broker, policy, 'fresh', undefined), { publications: [], position: ps[0] });
  assert.equal((await readMissed(broker, policy, 'fresh', undefined, 'broker_lost')).reload, 'broker_lost');
});

function pubs(n: number): Publication[] {
  return Array.from({ length: n }, (_, i) => ({ channel: 'c', data: `m${i + 1}`, position: { offset: i + 1, epoch: 'e' }, ts: 0 }));
}

test('fitReplay: a replay that fits is kept; a stream whose replay does not fit reloads `oversized`', () => {
  const outcome = { publications: pubs(3), position: { offset: 3, epoch: 'e' } };
  const stream = (fit: number) => ({ fitting: () => fit, inPieces: false, hasUnsent: () => false });
  assert.equal(fitReplay(outcome, stream(3)), outcome);
  assert.deepEqual(fitReplay(outcome, stream(2)), { publications: [], position: { offset: 3, epoch: 'e' }, reload: 'oversized' });
});

test('fitReplay: a poll is cut after what fits, and reloads only when nothing fits and it holds nothing', () => {
  const outcome = { publications: pubs(3), position: { offset: 3, epoch: 'e' } };
  const poll = (fit: number, unsent: boolean) => ({ fitting: () => fit, inPieces: true, hasUnsent: () => unsent });
  assert.deepEqual(fitReplay(outcome, poll(2, false)), { publications: pubs(2), position: { offset: 2, epoch: 'e' } });
  assert.deepEqual(fitReplay(outcome, poll(0, true)), { publications: [], position: undefined });
  assert.equal(fitReplay(outcome, poll(0, false)).reload, 'oversized');
});
