// Resume on /ws and /poll with history on: every message after the client's position arrives exactly once, in order,
// including those published while it was away and while it was coming back.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { publish, startServer, type TestServer } from './helpers/server.js';
import { openWs, type WsClient } from './helpers/ws.js';

let node: TestServer;
before(async () => {
  node = await startServer({ historySize: 100, historyTtlSeconds: 60, pollTimeoutSeconds: 1 });
});
after(() => node.close());

interface PollAnswer {
  messages: [string, ...unknown[]][];
  cursor: string;
}

async function poll(query: string): Promise<{ status: number; body: PollAnswer }> {
  const r = await fetch(`${node.url}/poll?${query}`);
  return { status: r.status, body: (await r.json()) as PollAnswer };
}

const datas = (c: WsClient, channel: string): string[] =>
  c.messages().filter((m) => m.channel === channel).map((m) => m.data ?? '');

describe('/ws resume', () => {
  test('subscribe with since replays what was missed, then live, each once and in order', async () => {
    const a = await openWs(`${node.url}/ws`);
    await a.request('subscribe', { channel: 'r', since: '' });
    for (const d of ['1', '2', '3']) await publish(node.url, { channel: 'r', data: d });
    await a.waitFrames(() => a.messages().length === 3);
    const last = String(a.messages()[2]?.id);
    assert.match(last, /^3-/);
    a.close();
    await a.closed;
    for (const d of ['4', '5', '6']) await publish(node.url, { channel: 'r', data: d });
    const b = await openWs(`${node.url}/ws`);
    assert.equal((await b.request('subscribe', { channel: 'r', since: last })).type, 'reply');
    await publish(node.url, { channel: 'r', data: '7' });
    await b.waitFrames(() => b.messages().length >= 4);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(datas(b, 'r'), ['4', '5', '6', '7']);
    b.close();
  });

  test('a client cut and resumed repeatedly while a publisher keeps going loses and repeats nothing', async () => {
    const total = 100;
    const seen: string[] = [];
    let lastId = '';
    const collect = (c: WsClient): void => {
      assert.ok(!c.frames.some((f) => f.type === 'reload'), `reload: ${JSON.stringify(c.frames)}`);
      // A position frame (sent after a subscribe with since) is a position too: a connection cut before its first
      // message must resume from there, not from "now".
      for (const f of c.frames) {
        if (f.type === 'message') seen.push(f.data ?? '');
        if ((f.type === 'message' || f.type === 'position') && f.id !== undefined) lastId = String(f.id);
      }
    };
    // The first connection is live before the publisher starts; every later one resumes from the last id seen.
    let c = await openWs(`${node.url}/ws`);
    await c.request('subscribe', { channel: 'busy', since: '' });
    let published = 0;
    const publisher = (async () => {
      while (published < total) {
        await publish(node.url, { channel: 'busy', data: String(++published) });
        if (published % 10 === 0) await new Promise((r) => setTimeout(r, 5));
      }
    })();
    for (let round = 0; published < total && round < 200; round++) {
      await new Promise((r) => setTimeout(r, 20 + (round % 3) * 10));
      c.ws.terminate();
      await c.closed;
      collect(c);
      c = await openWs(`${node.url}/ws`);
      await c.request('subscribe', { channel: 'busy', since: lastId });
    }
    c.ws.terminate();
    await c.closed;
    collect(c);
    await publisher;
    // One last resume picks up the tail.
    const tail = await openWs(`${node.url}/ws`);
    await tail.request('subscribe', { channel: 'busy', since: lastId });
    await new Promise((r) => setTimeout(r, 100));
    collect(tail);
    tail.close();
    assert.deepEqual(seen, Array.from({ length: total }, (_, i) => String(i + 1)));
  });

  test('URL credentials resume with a cursor; a position no longer in history gets a reload frame', async () => {
    const first = await publish(node.url, { channel: 'u1', data: 'a' });
    const firstId = (first.body as { id: string }).id;
    await publish(node.url, { channel: 'u1', data: 'b' });
    await publish(node.url, { channel: 'u2', data: 'c' });
    const c = await openWs(`${node.url}/ws?channel=u1&channel=u2&since=${firstId},`);
    await c.waitFrames(() => c.messages().length >= 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(datas(c, 'u1'), ['b']);
    assert.deepEqual(datas(c, 'u2'), []);
    c.close();
    const epochOf = firstId.slice(firstId.indexOf('-') + 1);
    const stale = await openWs(`${node.url}/ws`);
    await stale.request('subscribe', { channel: 'u1', since: `1-${epochOf}x` });
    await stale.waitFrames(() => stale.frames.some((f) => f.type === 'reload'));
    assert.equal((await stale.request('subscribe', { channel: 'u3', since: 'not-an-id!' })).error?.code, 'bad_request');
    stale.close();
  });
});

describe('/poll resume', () => {
  test('polling with the cursor while a publisher runs: every message once, in order', async () => {
    const total = 60;
    const publisher = (async () => {
      for (let i = 1; i <= total; i++) {
        await publish(node.url, { channel: i % 2 ? 'p1' : 'p2', data: String(i) });
        if (i % 5 === 0) await new Promise((r) => setTimeout(r, 15));
      }
    })();
    const seen: string[] = [];
    let cursor: string | undefined;
    const started = Date.now();
    while (seen.length < total && Date.now() - started < 20_000) {
      const { status, body } = await poll(`channel=p1&channel=p2${cursor === undefined ? '' : `&since=${cursor}`}`);
      assert.equal(status, 200);
      for (const m of body.messages) {
        assert.equal(m[0], 'message', JSON.stringify(m));
        seen.push(m[2] as string);
      }
      cursor = body.cursor;
      if (cursor === undefined) assert.fail('no cursor');
    }
    await publisher;
    const byChannel = (odd: boolean) => seen.filter((d) => (Number(d) % 2 === 1) === odd);
    // The first poll may start after the first messages: what it has is a gap-free suffix, per channel in order.
    const p1 = byChannel(true).map(Number);
    const p2 = byChannel(false).map(Number);
    for (const list of [p1, p2]) {
      for (let i = 1; i < list.length; i++) assert.equal(list[i], (list[i - 1] ?? 0) + 2, `gap or duplicate in ${list.join()}`);
      assert.ok(list[list.length - 1]! >= total - 1);
    }
  });

  test('a poll with a cursor behind answers at once with what was missed; a bad cursor is a 400', async () => {
    const first = await poll('channel=q');
    const cursor = first.body.cursor;
    await publish(node.url, { channel: 'q', data: 'x' });
    await publish(node.url, { channel: 'q', data: 'y' });
    const t0 = Date.now();
    const { body } = await poll(`channel=q&since=${cursor}`);
    assert.ok(Date.now() - t0 < 800);
    assert.deepEqual(body.messages.map((m) => m[2]), ['x', 'y']);
    assert.match(body.cursor, /^2-/);
    assert.equal((await poll('channel=q&since=a,b')).status, 400);
  });
});
