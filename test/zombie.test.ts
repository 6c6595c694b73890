// Issue 15 finding 5, "zombie streams": a resume whose replay is larger than the client's queue (maxQueueBytes) used
// to end the session as `slow` inside openSession; the client still got 200 or 101 and then nothing, uncounted, so
// 20 such streams passed `maxConnections 3`, and /poll answered an empty batch that dropped the client's cursor.
// Now such a replay is a `reload` `oversized` and the stream goes on live, counted (/poll gets it in pieces that fit,
// or the reload when not even one message fits); a session that ends while it opens
// (its live messages overflowed the queue while history was read) gets 200/101, its `slow` reason, and a close.
// SECURITY-TESTS.md row 25. Every test runs beside a control subscriber (test/helpers/guard.ts), which takes one of
// the node's 3 connections.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { HistoryBroker } from '../src/broker/broker.js';
import { answer, guarded } from './helpers/guard.js';
import { eventually, openStream, publish, type LineStream, type TestServer, startServer } from './helpers/server.js';
import { openWs, type WsClient } from './helpers/ws.js';

const QUEUE = 16 * 1024;
/** 20 messages of 2 KB: 40 KB of history, more than the 16 KB queue. */
const HISTORY = 20;
const BIG = 'z'.repeat(2000);

let node: TestServer;
before(async () => {
  node = await startServer({
    historySize: 100,
    historyTtlSeconds: 60,
    maxQueueBytes: QUEUE,
    maxConnections: 3,
    closeGraceMs: 1000,
    pollTimeoutSeconds: 3,
    maxBodyBytes: 1 << 20,
  });
});
after(() => node.close());

const CONTROL = (): { url: string; channel: string } => ({ url: `${node.url}/sub?channel=control`, channel: 'control' });

/** Publish the oversized history of `channel`; returns the message ids, oldest first. */
async function fillHistory(channel: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 1; i <= HISTORY; i++) {
    const res = await publish(node.url, { channel, data: `${i}:${BIG}` });
    assert.equal(res.status, 200);
    ids.push((res.body as { id: string }).id);
  }
  return ids;
}

async function publishId(channel: string, data: string): Promise<string> {
  const res = await publish(node.url, { channel, data });
  assert.equal(res.status, 200);
  return (res.body as { id: string }).id;
}

/** JSON arrays of a /sub stream's lines, heartbeats left out. */
const subLines = (s: LineStream): unknown[][] => s.lines.filter((l) => l !== '').map((l) => JSON.parse(l) as unknown[]);
/** JSON arrays of an /sse stream's data lines, with their event names. */
function sseEvents(s: LineStream): { event: string; data: unknown[] }[] {
  const out: { event: string; data: unknown[] }[] = [];
  let event = 'message';
  for (const l of s.lines) {
    if (l.startsWith('event: ')) event = l.slice(7);
    else if (l.startsWith('data: ')) out.push({ event, data: JSON.parse(l.slice(6)) as unknown[] });
    else if (l === '') event = 'message';
  }
  return out;
}

/** The node's sessions and subscriptions must never pass the limit while the test holds streams open. */
function assertWithinLimit(): void {
  assert.ok(node.server.node.sessionCount() <= 3, `sessions ${node.server.node.sessionCount()} over maxConnections 3`);
}

/** Hold every history read of `channel` until `release()`: a window in which live messages pile up in the queue. */
function gateHistory(channel: string): { entered: Promise<void>; release(): void; restore(): void } {
  const broker = node.server.node.broker as HistoryBroker;
  const real = broker.history.bind(broker);
  let release = (): void => undefined;
  let signal = (): void => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const entered = new Promise<void>((r) => (signal = r));
  broker.history = async (c, q) => {
    if (c === channel) {
      signal();
      await gate;
    }
    return real(c, q);
  };
  return { entered, release, restore: () => void (broker.history = real) };
}

/** Overflow the queue of a session whose history read is held: its live messages are held meanwhile. */
async function overflowWhileOpening(channel: string): Promise<void> {
  const slowBefore = node.server.node.metrics.disconnects.get({ reason: 'slow' });
  for (let i = 0; i < 12 && node.server.node.metrics.disconnects.get({ reason: 'slow' }) === slowBefore; i++) {
    await publishId(channel, `live-${i}:${BIG}`);
  }
  assert.equal(node.server.node.metrics.disconnects.get({ reason: 'slow' }), slowBefore + 1, 'ended as slow while opening');
}

describe('an oversized replay (SECURITY-TESTS row 25)', () => {
  test('/sub: reload oversized first, then live; counted: the 4th client gets 503; 20 at once cannot pass the limit', async () => {
    await guarded(node, CONTROL(), async (g) => {
      const ids = await fillHistory('zs');
      const url = `${node.url}/sub?channel=zs&since=${ids[0]}`;
      const a = await openStream(url);
      const b = await openStream(url);
      try {
        for (const s of [a, b]) {
          assert.equal(s.status, 200);
          await s.waitLines(1);
          // Messages 2..20 did not fit: covered by the reload, whose id is the last of them.
          assert.deepEqual(subLines(s)[0], ['reload', 'zs', 'oversized', ids[HISTORY - 1]]);
        }
        assert.equal(node.server.node.sessionCount(), 3);
        // Control + a + b hold the 3 connections: the 4th client is refused on every transport.
        assert.equal((await answer(url)).status, 503);
        assert.equal((await answer(`${node.url}/sse?channel=zs&lastEventId=${ids[0]}`)).status, 503);
        assert.equal((await fetch(`${node.url}/poll?channel=zs&since=${ids[0]}`)).status, 503);
        await assert.rejects(openWs(`${node.url}/ws?channel=zs&since=${ids[0]}`), (e: { status?: number }) => e.status === 503);
        await g.tick();
        // The streams are live: the next message arrives exactly once, right after the reload.
        const live = await publishId('zs', 'after');
        for (const s of [a, b]) {
          await s.waitLines(2);
          assert.deepEqual(subLines(s), [['reload', 'zs', 'oversized', ids[HISTORY - 1]], ['message', 'zs', 'after', live]]);
        }
        assertWithinLimit();
      } finally {
        a.close();
        b.close();
      }
      await eventually(() => node.server.node.sessionCount() === 1, 5000, 'a and b closed');

      // The finding's form: 20 at once under maxConnections 3. Two fit beside the control, the rest get 503.
      const many = await Promise.all(Array.from({ length: 20 }, () => openStream(url)));
      try {
        assertWithinLimit();
        const open = many.filter((s) => s.status === 200);
        assert.equal(open.length, 2, `statuses ${many.map((s) => s.status).join()}`);
        assert.ok(many.every((s) => s.status === 200 || s.status === 503));
        for (const s of open) {
          await s.waitLines(1);
          assert.equal(subLines(s)[0]?.[2], 'oversized');
        }
      } finally {
        for (const s of many) s.close();
      }
    });
  });

  test('/sse: event reload oversized first, then live; counted against the limit', async () => {
    await guarded(node, CONTROL(), async () => {
      const ids = await fillHistory('ze');
      const url = `${node.url}/sse?channel=ze&lastEventId=${ids[0]}`;
      const a = await openStream(url);
      const b = await openStream(url);
      try {
        for (const s of [a, b]) {
          assert.equal(s.status, 200);
          await eventually(() => sseEvents(s).length >= 1, 5000, 'the reload event');
          assert.deepEqual(sseEvents(s)[0], { event: 'reload', data: ['reload', 'ze', 'oversized', ids[HISTORY - 1]] });
        }
        assert.equal((await answer(url)).status, 503);
        const live = await publishId('ze', 'after');
        for (const s of [a, b]) {
          await eventually(() => sseEvents(s).length >= 2, 5000, 'the live event');
          assert.deepEqual(sseEvents(s)[1], { event: 'message', data: ['message', 'ze', 'after', live] });
          assert.equal(sseEvents(s).length, 2);
        }
        assertWithinLimit();
      } finally {
        a.close();
        b.close();
      }
    });
  });

  test('/ws: a reload frame first (URL resume and subscribe with since), then live; the 4th upgrade gets 503', async () => {
    await guarded(node, CONTROL(), async () => {
      const ids = await fillHistory('zw');
      const a = await openWs(`${node.url}/ws?channel=zw&since=${ids[0]}`);
      const b = await openWs(`${node.url}/ws`);
      const clients: WsClient[] = [a, b];
      try {
        assert.equal((await b.request('subscribe', { channel: 'zw', since: ids[0] })).type, 'reply');
        for (const c of clients) {
          await c.waitFrames((f) => f.some((x) => x.type === 'reload'), 5000, 'the reload frame');
          const reload = c.frames.find((x) => x.type === 'reload');
          assert.deepEqual(reload, { type: 'reload', channel: 'zw', reason: 'oversized', id: ids[HISTORY - 1] });
          assert.equal(c.messages().length, 0, 'nothing of the oversized replay');
        }
        await assert.rejects(openWs(`${node.url}/ws?channel=zw&since=${ids[0]}`), (e: { status?: number }) => e.status === 503);
        const live = await publishId('zw', 'after');
        for (const c of clients) {
          await c.waitFrames(() => c.messages().length === 1, 5000, 'the live message');
          assert.deepEqual(c.messages().map((m) => [m.data, (m as { id?: string }).id]), [['after', live]]);
        }
        assertWithinLimit();
      } finally {
        for (const c of clients) c.close();
        await Promise.all(clients.map((c) => c.closed));
      }
    });
  });

  test('/poll: the replay comes in pieces that fit, the cursor of each answer at its last message: every message once', async () => {
    await guarded(node, CONTROL(), async () => {
      const ids = await fillHistory('zp');
      const got: string[] = [];
      const sizes: number[] = [];
      let cursor = ids[0]!;
      while (got.length < HISTORY - 1) {
        assert.ok(sizes.length < HISTORY, `no progress: ${JSON.stringify(sizes)}`);
        const r = await fetch(`${node.url}/poll?channel=zp&since=${cursor}`);
        assert.equal(r.status, 200);
        const body = (await r.json()) as { messages: string[][]; cursor: string };
        assert.ok(body.messages.length > 0 && body.messages.every((m) => m[0] === 'message'), JSON.stringify(body).slice(0, 300));
        sizes.push(body.messages.length);
        got.push(...body.messages.map((m) => m[3]!));
        assert.equal(body.cursor, got[got.length - 1], 'the cursor is the last message of the answer');
        cursor = body.cursor;
      }
      assert.deepEqual(got, ids.slice(1), 'messages 2..20 exactly once, in order');
      assert.ok(sizes.length > 1, `in pieces: ${sizes.join()}`);
      console.log(`/poll oversized replay of ${HISTORY - 1} messages of 2 KB, queue ${QUEUE} B: answers of ${sizes.join(', ')} messages`);
    });
  });

  test('/poll over two channels: each answer fills the queue, a channel that did not fit waits for the next poll', async () => {
    await guarded(node, CONTROL(), async () => {
      const a = await fillHistory('zpa');
      const b = await fillHistory('zpb');
      const got: Record<string, string[]> = { zpa: [], zpb: [] };
      let cursor = `${a[0]},${b[0]}`;
      for (let polls = 0; got['zpa']!.length + got['zpb']!.length < 2 * (HISTORY - 1); polls++) {
        assert.ok(polls < 2 * HISTORY, 'no progress');
        const r = await fetch(`${node.url}/poll?channel=zpa&channel=zpb&since=${cursor}`);
        const body = (await r.json()) as { messages: string[][]; cursor: string };
        assert.ok(body.messages.length > 0 && body.messages.every((m) => m[0] === 'message'), JSON.stringify(body).slice(0, 300));
        for (const m of body.messages) got[m[1]!]!.push(m[3]!);
        cursor = body.cursor;
      }
      assert.deepEqual(got, { zpa: a.slice(1), zpb: b.slice(1) }, 'both channels exactly once, in order, no reload');
    });
  });

  test('/poll: a message larger than the queue is a reload with the cursor to continue from; parked polls count', async () => {
    await guarded(node, CONTROL(), async () => {
      const small = await publishId('zq', 'small');
      const huge = await publishId('zq', 'h'.repeat(QUEUE + 1000));
      const r = await fetch(`${node.url}/poll?channel=zq&since=${small}`);
      assert.equal(r.status, 200);
      const body = (await r.json()) as { messages: unknown[][]; cursor: string };
      assert.deepEqual(body, { messages: [['reload', 'zq', 'oversized', huge]], cursor: huge });
      // Two polls wait from that cursor: with the control they hold the 3 connections, a third is refused.
      const waiting = [0, 1].map(() => fetch(`${node.url}/poll?channel=zq&since=${body.cursor}`));
      await eventually(() => node.server.node.sessionCount() === 3, 5000, 'two parked polls');
      assert.equal((await fetch(`${node.url}/poll?channel=zq&since=${body.cursor}`)).status, 503);
      const live = await publishId('zq', 'after');
      for (const w of await Promise.all(waiting)) {
        assert.equal(w.status, 200);
        assert.deepEqual(await w.json(), { messages: [['message', 'zq', 'after', live]], cursor: live });
      }
    });
  });
});

describe('a session that ends while it opens (its queue overflowed during the history read)', () => {
  test('/sub and /sse: 200, then the slow disconnect as the only line, then the end of the stream', async () => {
    await guarded(node, CONTROL(), async () => {
      for (const [path, param] of [['sub', 'since'], ['sse', 'lastEventId']] as const) {
        const channel = `zo-${path}`;
        const id = await publishId(channel, 'before');
        const gate = gateHistory(channel);
        try {
          const opening = openStream(`${node.url}/${path}?channel=${channel}&${param}=${id}`);
          await gate.entered;
          assert.equal(node.server.node.sessionCount(), 2, 'the opening stream is counted');
          await overflowWhileOpening(channel);
          gate.release();
          const s = await opening;
          assert.equal(s.status, 200);
          await s.ended;
          if (path === 'sub') assert.deepEqual(subLines(s), [['disconnect', 'slow', 3002, true]]);
          else assert.deepEqual(sseEvents(s), [{ event: 'disconnect', data: ['disconnect', 'slow', 3002, true] }]);
        } finally {
          gate.restore();
        }
        await eventually(() => node.server.node.sessionCount() === 1, 5000, 'the stream uncounted once closed');
      }
    });
  });

  test('/ws: 101, then close 3002', async () => {
    await guarded(node, CONTROL(), async () => {
      const id = await publishId('zo-ws', 'before');
      const gate = gateHistory('zo-ws');
      try {
        const opening = openWs(`${node.url}/ws?channel=zo-ws&since=${id}`);
        await gate.entered;
        await overflowWhileOpening('zo-ws');
        gate.release();
        const c = await opening;
        assert.deepEqual(await c.closed, { code: 3002, reason: 'slow' });
        assert.equal(c.frames.length, 0);
      } finally {
        gate.restore();
      }
    });
  });

  test('/poll: the answer says slow and keeps the cursor the client came with', async () => {
    await guarded(node, CONTROL(), async () => {
      const id = await publishId('zo-poll', 'before');
      const gate = gateHistory('zo-poll');
      try {
        const opening = fetch(`${node.url}/poll?channel=zo-poll&since=${id}`);
        await gate.entered;
        await overflowWhileOpening('zo-poll');
        gate.release();
        const r = await opening;
        assert.equal(r.status, 200);
        assert.deepEqual(await r.json(), { messages: [['disconnect', 'slow', 3002, true]], cursor: id });
      } finally {
        gate.restore();
      }
    });
  });
});
