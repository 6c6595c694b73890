/**
 * The history part of the broker conformance suite: every broker with the history capability must pass it
 * (memory, Redis, Redis Cluster). `historyConformance(name, open)` registers the cases; `open` gives a started broker
 * and the publications its handler received, and is called once per case.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { HistoryBroker, HistoryPolicy, Publication } from '../../src/broker/broker.js';
import { parseMessageId } from '../../src/protocol/message-id.js';

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

  withBroker('reading a channel never published gives position 0 of an epoch the next publish keeps', async (b) => {
    const c = channelName();
    const r = await b.broker.history(c, { limit: 10, policy: POLICY });
    assert.equal(r.position.offset, 0);
    assert.deepEqual(r.publications, []);
    const { id } = await b.broker.publish(c, 'first', { history: POLICY });
    assert.deepEqual(parseMessageId(id!), { offset: 1, epoch: r.position.epoch });
    const after = await b.broker.history(c, { since: r.position, limit: 10, policy: POLICY });
    assert.deepEqual(after.publications.map((p) => p.data), ['first']);
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

  withBroker('a position of another epoch gets no messages, only the current position', async (b) => {
    const c = channelName();
    await b.broker.publish(c, 'x', { history: POLICY });
    const r = await b.broker.history(c, { since: { offset: 0, epoch: 'otherepoch' }, limit: 10, policy: POLICY });
    assert.deepEqual(r.publications, []);
    assert.equal(r.position.offset, 1);
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
