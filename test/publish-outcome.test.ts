/**
 * What a publish answer means when Redis fails (issue 13, item 3; docs/reliability.md "Publish answers"):
 * - Redis frozen (SIGSTOP) with publishes in flight: they were sent and may run when Redis wakes up, so the answer is
 *   504 `outcome_unknown`, never 503. Retried with their idempotency keys after SIGCONT, every acknowledged message
 *   reaches the subscriber exactly once. Retried without keys (the control), some arrive twice: the test can fail.
 * - Redis killed: nothing can be sent, the answer is 503 `unavailable` at once.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually, openStream, publish, TEST_API_KEY, type LineStream } from './helpers/server.js';
import { startNodeOnRedis, startRedis, type RedisProcess } from './helpers/redis.js';
import { openWs } from './helpers/ws.js';

const TIMEOUT_MS = 500;
/** Long enough that all in-flight publishes reach the node, even on a loaded machine, before the probe gives up. */
const FREEZE_TIMEOUT_MS = 1500;
const PROBE_MS = 200;
let redis: RedisProcess;

before(async () => {
  redis = await startRedis();
});
after(async () => {
  redis.thaw();
  await redis?.stop();
});

interface Answer {
  status: number;
  body: { id?: string | null; replayed?: boolean; error?: { code: string } };
}

/** POST /api/publish with an optional Idempotency-Key header. */
async function post(url: string, channel: string, data: string, key?: string): Promise<Answer> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', Authorization: `Bearer ${TEST_API_KEY}` };
  if (key !== undefined) headers['Idempotency-Key'] = key;
  const res = await fetch(`${url}/api/publish`, { method: 'POST', headers, body: JSON.stringify({ channel, data }) });
  return { status: res.status, body: (await res.json()) as Answer['body'] };
}

/** Retry on 503/504 (the pattern docs/protocol.md shows) until acknowledged. */
async function until200(url: string, channel: string, data: string, key?: string): Promise<Answer> {
  for (let attempt = 0; ; attempt++) {
    const a = await post(url, channel, data, key);
    if (a.status === 200) return a;
    assert.ok(a.status === 503 || a.status === 504, `retryable answer, got ${a.status} ${JSON.stringify(a.body)}`);
    assert.ok(attempt < 100, 'acknowledged within 100 attempts');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** data → how many times the stream delivered it; and any reload lines. */
function deliveries(stream: LineStream): { counts: Map<string, number>; reloads: string[] } {
  const counts = new Map<string, number>();
  const reloads: string[] = [];
  for (const line of stream.lines) {
    if (line === '') continue;
    const parsed = JSON.parse(line) as string[];
    if (parsed[0] === 'message') counts.set(parsed[2] ?? '', (counts.get(parsed[2] ?? '') ?? 0) + 1);
    else if (parsed[0] === 'reload') reloads.push(line);
  }
  return { counts, reloads };
}

test('Redis frozen with publishes in flight: 504 outcome_unknown, and retries with their keys deliver each message exactly once', async () => {
  const node = await startNodeOnRedis(redis.url, { redisTimeoutMs: FREEZE_TIMEOUT_MS, redisProbeIntervalMs: PROBE_MS, historySize: 1000 });
  const sub = await openStream(`${node.url}/sub?channel=frozen&since=`);
  const ws = await openWs(`${node.url}/ws`);
  // A second transport counting the same way: a /ws subscriber resuming from "none yet".
  const wsSub = await openWs(`${node.url}/ws`);
  try {
    assert.equal(sub.status, 200);
    assert.equal((await wsSub.request('subscribe', { channel: 'frozen', since: '' })).type, 'reply');
    const before = await post(node.url, 'frozen', 'before');
    assert.equal(before.status, 200);

    const N = 20;
    redis.freeze();
    const t0 = Date.now();
    // In flight together: N with keys, N without (the control), one over /ws.
    const keyed = Array.from({ length: N }, (_, i) => post(node.url, 'frozen', `k${i}`, `key-${i}`));
    const plain = Array.from({ length: N }, (_, i) => post(node.url, 'frozen', `p${i}`));
    const wsAnswer = ws.request('publish', { channel: 'frozen', data: 'w0', idempotency_key: 'ws-0' });
    const first = await Promise.all([...keyed, ...plain]);
    const answeredWithin = Date.now() - t0;
    const wsFirst = await wsAnswer;

    const statuses = first.map((a) => `${a.status} ${a.body.error?.code ?? ''}`.trim());
    assert.deepEqual(new Set(statuses), new Set(['504 outcome_unknown']), `every in-flight publish: outcome unknown (${statuses.join(', ')})`);
    assert.ok(answeredWithin < FREEZE_TIMEOUT_MS * 3, `answered within ${answeredWithin} ms`);
    assert.equal(wsFirst.type, 'error');
    assert.equal(wsFirst.error?.code, 'outcome_unknown', 'the same code in the /ws error reply');

    // Still frozen: the link is found dead by the probe; what comes now certainly is not sent: 503.
    await eventually(() => !node.server.node.isReady(), 5000, 'node not ready while Redis is frozen');
    const refused = await post(node.url, 'frozen', 'refused', 'key-refused');
    assert.equal(refused.status, 503);
    assert.equal(refused.body.error?.code, 'unavailable');

    await new Promise((r) => setTimeout(r, 1000));
    redis.thaw();
    await eventually(() => node.server.node.isReady(), 10_000, 'ready again after SIGCONT');

    // The retry pattern: same key, until acknowledged.
    const retried = await Promise.all(Array.from({ length: N }, (_, i) => until200(node.url, 'frozen', `k${i}`, `key-${i}`)));
    const control = await Promise.all(Array.from({ length: N }, (_, i) => until200(node.url, 'frozen', `p${i}`)));
    let wsRetry = await ws.request('publish', { channel: 'frozen', data: 'w0', idempotency_key: 'ws-0' });
    for (let i = 0; wsRetry.type !== 'reply' && i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      wsRetry = await ws.request('publish', { channel: 'frozen', data: 'w0', idempotency_key: 'ws-0' });
    }
    assert.equal(wsRetry.type, 'reply', JSON.stringify(wsRetry));
    const after = await post(node.url, 'frozen', 'after');
    assert.equal(after.status, 200);

    await eventually(() => deliveries(sub).counts.has('after'), 10_000, 'the last message delivered');
    await new Promise((r) => setTimeout(r, 300));
    const { counts, reloads } = deliveries(sub);
    assert.deepEqual(reloads, [], 'no reload: history covered the outage');
    const keyedCounts = Array.from({ length: N }, (_, i) => counts.get(`k${i}`) ?? 0);
    assert.deepEqual(keyedCounts, Array.from({ length: N }, () => 1), 'every keyed message exactly once');
    assert.equal(counts.get('w0'), 1, 'the /ws message exactly once');
    await wsSub.waitFrames((f) => f.some((m) => m.type === 'message' && m.data === 'after'), 10_000, 'the last message on /ws');
    const wsCounts = new Map<string, number>();
    for (const m of wsSub.messages()) wsCounts.set(m.data ?? '', (wsCounts.get(m.data ?? '') ?? 0) + 1);
    assert.deepEqual(
      Array.from({ length: N }, (_, i) => wsCounts.get(`k${i}`) ?? 0),
      Array.from({ length: N }, () => 1),
      'every keyed message exactly once on /ws too',
    );
    assert.equal(wsSub.frames.filter((f) => f.type === 'reload').length, 0, 'no reload on /ws');
    // Each retry answered the id the subscriber saw, and the replays were real: the first attempts had run.
    const replayed = retried.filter((a) => a.body.replayed === true).length;
    const duplicates = Array.from({ length: N }, (_, i) => counts.get(`p${i}`) ?? 0).filter((n) => n > 1).length;
    const wasRun = Array.from({ length: N }, (_, i) => i).filter((i) => (counts.get(`p${i}`) ?? 0) > 0).length;
    assert.equal(control.length, N);
    // The control: the same freeze without keys. Where the first attempt ran (Redis ran what it had been sent), the
    // retry published it a second time.
    assert.ok(replayed > 0, `some keyed first attempts had run while their answer said outcome unknown (${replayed}/${N})`);
    assert.ok(duplicates > 0, `without keys the retries made duplicates (${duplicates}/${N}), so the keyed check can fail`);
    console.log(
      `freeze: ${2 * N + 1} publishes in flight answered 504 outcome_unknown within ${answeredWithin} ms; ` +
        `keyed: ${replayed}/${N} retries replayed, 0 duplicates; unkeyed control: ${duplicates}/${N} duplicated (${wasRun} first attempts ran)`,
    );
  } finally {
    redis.thaw();
    ws.close();
    wsSub.close();
    sub.close();
    await node.close();
  }
});

test('Redis killed: a publish is answered 503 unavailable at once (certainly not published)', async () => {
  const node = await startNodeOnRedis(redis.url, { redisTimeoutMs: TIMEOUT_MS, redisProbeIntervalMs: PROBE_MS });
  try {
    assert.equal((await publish(node.url, { channel: 'down', data: 'x' })).status, 200);
    await redis.kill();
    await eventually(() => !node.server.node.isReady(), 3000, 'not ready after Redis died');
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = Date.now();
      const a = await post(node.url, 'down', `d${i}`, `down-${i}`);
      times.push(Date.now() - t0);
      assert.equal(a.status, 503);
      assert.equal(a.body.error?.code, 'unavailable');
    }
    const slowest = Math.max(...times);
    assert.ok(slowest < 200, `503 within ${slowest} ms (timeout ${TIMEOUT_MS} ms)`);
    console.log(`redis killed: 10 publishes answered 503 unavailable, slowest ${slowest} ms`);
  } finally {
    await node.close();
    await redis.restart();
  }
});
