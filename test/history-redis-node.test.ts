/**
 * History and resume through Herald nodes on a real redis-server: the documented FCALL from any Redis client, plain
 * PUBLISH staying id-less, recovery after a node's subscriber connection is cut while another node keeps publishing,
 * and redis-server killed and restarted under a publisher (every acknowledged message delivered or a reload told).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RedisBroker } from '../src/broker/redis.js';
import { parseMessageId } from '../src/protocol/message-id.js';
import { cleanEnv, killAll, startHerald } from './helpers/cli.js';
import { eventually, openStream, publish, type LineStream } from './helpers/server.js';
import { startNodeOnRedis, startRedis, type RedisProcess } from './helpers/redis.js';

type Line = [string, string, string, string?];
const FAST = { historySize: 1000, historyTtlSeconds: 120, redisTimeoutMs: 1000, redisProbeIntervalMs: 200 };
let redis: RedisProcess;

before(async () => {
  redis = await startRedis();
});
after(async () => {
  await killAll();
  await redis?.stop();
});

const parsed = (s: LineStream): Line[] => s.lines.filter((l) => l !== '').map((l) => JSON.parse(l) as Line);

test('the documented FCALL publishes with history from redis-cli; a plain PUBLISH stays verbatim and id-less', async () => {
  const node = await startNodeOnRedis(redis.url, FAST);
  try {
    await eventually(() => redis.cli('FUNCTION', 'LIST', 'LIBRARYNAME', 'herald').includes('herald_publish'), 5000, 'library');
    const s = await openStream(`${node.url}/sub?channel=news&since=`);
    await eventually(() => parsed(s).length === 1, 5000, 'position');
    const id = redis.cli('FCALL', 'herald_publish', '2', 'herald:h:news', 'herald:m:news', 'news', 'hello', '100', '120000', '3600000', 'PUBLISH');
    assert.match(id, /^1-[0-9a-z]+$/);
    redis.cli('PUBLISH', 'news', 'plain, not an envelope');
    await eventually(() => parsed(s).length === 3, 5000, 'two messages');
    assert.deepEqual(parsed(s).slice(1), [
      ['message', 'news', 'hello', id],
      ['message', 'news', 'plain, not an envelope'],
    ]);
    s.close();
    // The FCALL'd message is in history: a client resuming from before it gets it.
    const position = parsed(s)[0]![2];
    const again = await openStream(`${node.url}/sub?channel=news&since=${position}`);
    await eventually(() => parsed(again).length >= 1, 5000, 'replay');
    assert.deepEqual(parsed(again)[0], ['message', 'news', 'hello', id]);
    again.close();
  } finally {
    await node.close();
  }
});

test("a node's subscriber connection cut while another node publishes: its clients get every message once, in order", async () => {
  const a = await startNodeOnRedis(redis.url, FAST);
  const b = await startNodeOnRedis(redis.url, FAST);
  try {
    const s = await openStream(`${a.url}/sub?channel=cut&since=`);
    await eventually(() => parsed(s).length === 1, 5000, 'position');
    const total = 150;
    const acked: string[] = [];
    const publisher = (async () => {
      for (let i = 0; i < total; i++) {
        const r = await publish(b.url, { channel: 'cut', data: String(i) });
        if (r.status === 200) acked.push(String(i));
        await new Promise((r) => setTimeout(r, 3));
      }
    })();
    await eventually(() => parsed(s).length > 20, 5000, 'some messages');
    // Kill node A's subscriber connection only: Redis and node B stay up, so what B publishes meanwhile is in history.
    const name = (a.server.node.broker as RedisBroker).clientName;
    const sub = redis.cli('CLIENT', 'LIST').split('\n').find((l) => l.includes(`name=${name}`) && /flags=\S*P/.test(l));
    assert.ok(sub, 'the subscriber connection of node A');
    redis.cli('CLIENT', 'KILL', 'ID', /id=(\d+)/.exec(sub)![1]!);
    await publisher;
    try {
      await eventually(() => parsed(s).filter((l) => l[0] === 'message').length >= acked.length, 10_000, 'every message');
    } catch (err) {
      const got = new Set(parsed(s).map((l) => l[2]));
      throw new Error(`${String(err)}; missing ${JSON.stringify(acked.filter((d) => !got.has(d)))}; lines ${JSON.stringify(parsed(s).filter((l) => l[0] !== 'message'))}`);
    }
    await new Promise((r) => setTimeout(r, 100));
    const lines = parsed(s).slice(1);
    assert.deepEqual(lines.filter((l) => l[0] !== 'message'), [], 'no reload: nothing was lost');
    assert.deepEqual(lines.map((l) => l[2]), acked, 'every acknowledged message once, in order');
    assert.ok(acked.length > total / 2, `${acked.length} acknowledged`);
    assert.ok([...a.server.node.metrics.recoveries.samples()].length > 0, 'a recovery was counted');
    s.close();
  } finally {
    await a.close();
    await b.close();
  }
});

test('redis-server killed and restarted under a publisher: every acknowledged message delivered or a reload told, no duplicate', async () => {
  const node = await startNodeOnRedis(redis.url, FAST);
  try {
    const s = await openStream(`${node.url}/sub?channel=k&since=`);
    await eventually(() => parsed(s).length === 1, 5000, 'position');
    let running = true;
    const acked: { data: string; id: string }[] = [];
    const publisher = (async () => {
      for (let i = 0; running; i++) {
        const r = await publish(node.url, { channel: 'k', data: String(i) });
        if (r.status === 200) acked.push({ data: String(i), id: (r.body as { id: string }).id });
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await eventually(() => acked.length > 20, 5000, 'publishing');
    await redis.kill();
    await new Promise((r) => setTimeout(r, 300));
    await redis.restart();
    await eventually(() => node.server.node.isReady(), 10_000, 'ready again');
    const after = acked.length;
    await eventually(() => acked.length > after + 20, 5000, 'publishing again');
    running = false;
    await publisher;
    const last = acked[acked.length - 1]!;
    await eventually(() => parsed(s).some((l) => l[0] === 'message' && l[3] === last.id), 10_000, 'the last message');

    const lines = parsed(s).slice(1);
    const received = lines.filter((l) => l[0] === 'message').map((l) => l[2]);
    assert.equal(new Set(received).size, received.length, 'no duplicate');
    const reloads = lines.filter((l) => l[0] === 'reload');
    assert.ok(reloads.length >= 1, 'history was lost with Redis (no persistence): the client is told');
    assert.deepEqual(reloads.map((l) => l[2]), reloads.map(() => 'epoch'));
    // Every acknowledged message was delivered, or lies at or before a reload's position in its epoch, or in an
    // epoch that a reload ended.
    const reloadAt = reloads.map((l) => parseMessageId(l[3] ?? '')!);
    const epochsSeen = new Set(lines.map((l) => parseMessageId(l[3] ?? '')?.epoch).filter((e) => e !== undefined));
    for (const m of acked) {
      if (received.includes(m.data)) continue;
      const p = parseMessageId(m.id)!;
      const covered = reloadAt.some((r) => (r.epoch === p.epoch && p.offset <= r.offset) || r.epoch !== p.epoch);
      assert.ok(covered, `acknowledged ${m.data} (${m.id}) neither delivered nor covered by a reload`);
      assert.ok(epochsSeen.size >= 2, 'a new epoch after the restart');
    }
    // Order within what was received: ascending.
    const numbers = received.map(Number);
    assert.deepEqual(numbers, [...numbers].sort((x, y) => x - y));
    s.close();
  } finally {
    await node.close();
  }
});

test('clients of a SIGKILLed node resume on another node from their last id, losing nothing published meanwhile', async () => {
  const survivor = await startNodeOnRedis(redis.url, FAST);
  const victim = await startHerald(['--port', '0', '--dev', '--broker', redis.url], cleanEnv());
  try {
    const streams = await Promise.all(Array.from({ length: 5 }, () => openStream(`${victim.url}/sub?channel=fo&since=`)));
    for (const s of streams) await eventually(() => parsed(s).length === 1, 5000, 'position');
    for (let i = 0; i < 10; i++) assert.equal((await publish(survivor.url, { channel: 'fo', data: `m${i}` })).status, 200);
    for (const s of streams) await eventually(() => parsed(s).length === 11, 5000, 'ten messages');
    // Each client remembers the id of the last message it processed (it may have processed fewer than it received).
    const cursors = streams.map((s, i) => parsed(s)[1 + i]![3]!);
    victim.proc.kill('SIGKILL');
    assert.equal((await victim.exited).signal, 'SIGKILL');
    for (let i = 10; i < 20; i++) await publish(survivor.url, { channel: 'fo', data: `m${i}` });
    const resumed = await Promise.all(cursors.map((c) => openStream(`${survivor.url}/sub?channel=fo&since=${c}`)));
    await publish(survivor.url, { channel: 'fo', data: 'm20' });
    for (let i = 0; i < resumed.length; i++) {
      const s = resumed[i]!;
      const expected = Array.from({ length: 20 - i }, (_, k) => `m${i + 1 + k}`);
      await eventually(() => parsed(s).length >= expected.length, 5000, `client ${i} replay`);
      await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(parsed(s).map((l) => l[2]), expected, `client ${i}`);
      assert.ok(parsed(s).every((l) => l[0] === 'message'));
      s.close();
    }
  } finally {
    await survivor.close();
  }
});
