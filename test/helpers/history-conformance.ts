/**
 * The history part of the broker conformance suite: every broker with the history capability must pass it
 * (memory, Redis, Redis Cluster). `historyConformance(name, open)` registers the cases; `open` gives a started broker
 * and the publications its handler received, and is called once per case.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { HistoryBroker, HistoryPolicy, Publication } from '../../src/broker/broker.js';
import { isReadStamp, parseMessageId } from '../../src/protocol/message-id.js';

export interface OpenedBroker {
  readonly broker: HistoryBroker;
  /** Publications the broker delivered to this node's handler, in order. */
  readonly received: Publication[];
  close(): Promise<void>;
}

const POLICY: HistoryPolicy = { size: 10, ttlMs: 60_000, metaTtlMs: 120_000 };

function channelName(): string {
  return `hc.${randomBytes(6).toString('hex')}`;
}

async function until(check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function historyConformance(name: string, open: () => Promise<OpenedBroker>): void {
  const withBroker = (title: string, fn: (b: OpenedBroker) => Promise<void>) =>
    test(`${name} history: ${title}`, async () => {
      const b = await open();
      try {
        await fn(b);
      } finally {
        await b.close();
      }
    });

  withBroker('ids are <offset>-<epoch>, consecutive from 1, and travel with the live message', async (b) => {
    const c = channelName();
    await b.broker.subscribe([c]);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await b.broker.publish(c, `m${i}`, { history: POLICY })).id!);
    const positions = ids.map((id) => parseMessageId(id));
    assert.deepEqual(positions.map((p) => p?.offset), [1, 2, 3]);
    assert.ok(positions.every((p) => p && p.epoch === positions[0]!.epoch), 'one epoch');
    await until(() => b.received.filter((p) => p.channel === c).length === 3, 'three live messages');
    assert.deepEqual(
      b.received.filter((p) => p.channel === c).map((p) => [p.data, p.id]),
      [['m0', ids[0]], ['m1', ids[1]], ['m2', ids[2]]],
    );
  });

  withBroker('history after a position returns the later messages in order; at the top, none', async (b) => {
    const c = channelName();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await b.broker.publish(c, `m${i}`, { history: POLICY })).id!);
    const since = parseMessageId(ids[1]!)!;
    const r = await b.broker.history(c, { since, limit: 100, policy: POLICY });
    assert.deepEqual(r.publications.map((p) => [p.data, p.id]), [['m2', ids[2]], ['m3', ids[3]], ['m4', ids[4]]]);
    assert.deepEqual(r.publications.map((p) => p.position?.offset), [3, 4, 5]);
    assert.equal(r.position.offset, 5);
    assert.equal(r.position.epoch, since.epoch);
    const top = await b.broker.history(c, { since: r.position, limit: 100, policy: POLICY });
    assert.deepEqual(top.publications, []);
    const limited = await b.broker.history(c, { since: { offset: 0, epoch: since.epoch }, limit: 2, policy: POLICY });
    assert.deepEqual(limited.publications.map((p) => p.data), ['m0', 'm1']);
  });

  withBroker('reading a channel never published creates nothing: a read stamp, from which the next publish resumes', async (b) => {
    const c = channelName();
    const r = await b.broker.history(c, { limit: 10, policy: POLICY });
    assert.equal(r.position.offset, 0);
    assert.ok(isReadStamp(r.position.epoch), `a read stamp: ${r.position.epoch}`);
    assert.deepEqual(r.publications, []);
    const still = await b.broker.history(c, { since: r.position, limit: 10, policy: POLICY });
    assert.equal(still.stampHolds, true, 'nothing published since the stamp');
    assert.ok(isReadStamp(still.position.epoch));
    const { id } = await b.broker.publish(c, 'first', { history: POLICY });
    const first = parseMessageId(id!)!;
    assert.equal(first.offset, 1);
    assert.ok(!isReadStamp(first.epoch), 'a real epoch');
    const after = await b.broker.history(c, { since: r.position, limit: 10, policy: POLICY });
    assert.equal(after.stampHolds, true, 'the epoch began after the stamp: nothing was missed');
    assert.deepEqual(after.position, first);
    assert.deepEqual(after.publications.map((p) => [p.data, p.id]), [['first', id]]);
  });

  withBroker('a read stamp does not hold once older than the position TTL, from elsewhere, or older than the epoch', async (b) => {
    const policy = { size: 10, ttlMs: 100, metaTtlMs: 300 };
    const c = channelName();
    const old = (await b.broker.history(c, { limit: 10, policy })).position;
    await sleep(400);
    await b.broker.publish(c, 'late', { history: policy });
    const late = await b.broker.history(c, { since: old, limit: 10, policy });
    assert.equal(late.stampHolds, false, 'an epoch could have come and gone since the stamp');
    assert.deepEqual(late.publications.map((p) => p.data), ['late'], 'the current epoch from its start');

    const d = channelName();
    const stamp = (await b.broker.history(d, { limit: 10, policy: POLICY })).position;
    const tail = stamp.epoch.slice(-1);
    const forged = { offset: 0, epoch: stamp.epoch.slice(0, -1) + (tail === '0' ? '1' : '0') };
    assert.equal((await b.broker.history(d, { since: forged, limit: 10, policy: POLICY })).stampHolds, false, 'another tag');
    assert.equal((await b.broker.history(d, { since: { offset: 3, epoch: stamp.epoch }, limit: 10, policy: POLICY })).stampHolds, false);

    // A channel whose epoch began before the stamp was issued (a stamp given for another channel).
    const e = channelName();
    await b.broker.publish(e, 'before', { history: POLICY });
    await sleep(5);
    const later = (await b.broker.history(channelName(), { limit: 10, policy: POLICY })).position;
    const mixed = await b.broker.history(e, { since: later, limit: 10, policy: POLICY });
    assert.equal(mixed.stampHolds, false);
  });

  withBroker('history keeps the last `size` messages', async (b) => {
    const c = channelName();
    const policy = { ...POLICY, size: 3 };
    let epoch = '';
    for (let i = 1; i <= 7; i++) epoch = parseMessageId((await b.broker.publish(c, `m${i}`, { history: policy })).id!)!.epoch;
    const r = await b.broker.history(c, { since: { offset: 0, epoch }, limit: 100, policy });
    assert.deepEqual(r.publications.map((p) => p.data), ['m5', 'm6', 'm7']);
    assert.equal(r.position.offset, 7);
  });

  withBroker('messages expire after the TTL, the position stays; after the meta TTL a new epoch starts', async (b) => {
    const c = channelName();
    const policy = { size: 10, ttlMs: 150, metaTtlMs: 600 };
    const first = parseMessageId((await b.broker.publish(c, 'old', { history: policy })).id!)!;
    await sleep(300);
    const r = await b.broker.history(c, { since: { offset: 0, epoch: first.epoch }, limit: 10, policy });
    assert.deepEqual(r.publications, [], 'messages expired');
    assert.deepEqual(r.position, first, 'position kept');
    await sleep(800);
    const { id } = await b.broker.publish(c, 'new', { history: policy });
    const next = parseMessageId(id!)!;
    assert.equal(next.offset, 1);
    assert.notEqual(next.epoch, first.epoch, 'a new generation');
  });

  withBroker("a position of another epoch gets the current epoch's messages from its start, and no stamp", async (b) => {
    const c = channelName();
    await b.broker.publish(c, 'x', { history: POLICY });
    await b.broker.publish(c, 'y', { history: POLICY });
    const r = await b.broker.history(c, { since: { offset: 5, epoch: 'otherepoch' }, limit: 10, policy: POLICY });
    assert.deepEqual(r.publications.map((p) => [p.data, p.position?.offset]), [['x', 1], ['y', 2]]);
    assert.equal(r.position.offset, 2);
    assert.notEqual(r.stampHolds, true);
  });

  withBroker('publishing without a history policy gives no id and keeps nothing', async (b) => {
    const c = channelName();
    await b.broker.subscribe([c]);
    const res = await b.broker.publish(c, 'live');
    assert.equal(res.id, undefined);
    await until(() => b.received.some((p) => p.channel === c), 'the live message');
    assert.equal(b.received.find((p) => p.channel === c)?.id, undefined);
    const r = await b.broker.history(c, { limit: 10, policy: POLICY });
    assert.equal(r.position.offset, 0);
  });

  withBroker('channels have separate histories', async (b) => {
    const a = channelName();
    const c = channelName();
    await b.broker.publish(a, 'a1', { history: POLICY });
    await b.broker.publish(a, 'a2', { history: POLICY });
    const { id } = await b.broker.publish(c, 'c1', { history: POLICY });
    assert.equal(parseMessageId(id!)?.offset, 1);
  });

  withBroker('data is kept verbatim (newlines, NUL, unicode, JSON)', async (b) => {
    const c = channelName();
    const data = 'line1\nline2\u0000tail ☃ {"a":[1,2]} \r\n';
    const { id } = await b.broker.publish(c, data, { history: POLICY });
    const p = parseMessageId(id!)!;
    const r = await b.broker.history(c, { since: { offset: 0, epoch: p.epoch }, limit: 10, policy: POLICY });
    assert.equal(r.publications[0]?.data, data);
  });
}
