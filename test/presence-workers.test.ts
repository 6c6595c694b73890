/**
 * Presence on `herald serve --workers 3` with the embedded broker (docs/presence.md "Workers"), with real processes
 * and real clients: members on one worker see the joins and leaves of members on the others; the server API's
 * `presence` and `presence_stats` answer for the whole machine from whichever worker takes the call; a SIGKILLed
 * worker's members are gone from every answer at once and the other workers' subscribers are told they left. On
 * Redis each worker is a node, and presence spans them through Redis.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cleanEnv, killAll, startHerald, type RunningHerald } from './helpers/cli.js';
import { EventSource } from 'eventsource';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { WorkerSub } from './helpers/worker-client.js';
import { openWs } from './helpers/ws.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(25);
  }
}

/** A server API call on a fresh connection (round-robin spreads consecutive calls over the workers). */
async function api(port: number, name: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${port}/api/${name}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Connection: 'close' },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  assert.equal(res.status, 200, JSON.stringify(json));
  return json;
}

type Member = { client: string; user: string; connectedAt: number };
const joins = (s: WorkerSub): Member[] => s.frames.filter((f) => f[0] === 'join').map((f) => f[2] as Member);
const leaves = (s: WorkerSub): Member[] => s.frames.filter((f) => f[0] === 'leave').map((f) => f[2] as Member);

/** Members that ask for joins and leaves, until they sit on at least `distinct` workers. */
async function spread(port: number, channel: string, count: number, distinct: number): Promise<WorkerSub[]> {
  const subs: WorkerSub[] = [];
  for (let i = 0; i < count || new Set(subs.map((s) => s.worker)).size < distinct; i++) {
    if (i > count * 6) throw new Error('members never spread over the workers');
    const sub = new WorkerSub(port, channel, 'joinLeave=1');
    await sub.open();
    subs.push(sub);
  }
  return subs;
}

async function ready(port: number, workers: number): Promise<void> {
  await until(`${workers} workers ready`, async () => {
    const r = await fetch(`http://127.0.0.1:${port}/readyz`, { headers: { Connection: 'close' } }).catch(() => undefined);
    return r !== undefined && r.status === 200 && (await r.text()).includes(`"ready":${workers}`);
  }, 30_000);
}

after(killAll);

describe('presence on --workers 3 (embedded broker)', () => {
  let herald: RunningHerald;
  let port: number;

  before(async () => {
    herald = await startHerald(['--dev', '--workers', '3', '--port', '0'], cleanEnv(), 30_000);
    port = Number(new URL(herald.url).port);
    await ready(port, 3);
  });
  after(async () => {
    herald?.proc.kill('SIGTERM');
    await herald?.exited;
  });

  test('joins and leaves reach members on the other workers; presence and presence_stats count the whole machine', async () => {
    const subs = await spread(port, 'room', 4, 3);
    const n = subs.length;
    // Every member was told of every later member's join, whichever worker holds it.
    for (const [i, s] of subs.entries()) {
      await until(`member ${i} saw ${n - 1 - i} joins`, () => joins(s).length >= n - 1 - i);
    }
    const last = subs[n - 1]!;
    const firstWorkerOther = subs.find((s) => s.worker !== last.worker)!;
    assert.ok(firstWorkerOther, 'a member on another worker');
    // Each API call on a fresh connection lands on some worker: every answer is the machine's.
    for (let i = 0; i < 6; i++) {
      const stats = await api(port, 'presence_stats', { channel: 'room' });
      assert.deepEqual([stats['clients'], stats['users']], [n, n], `presence_stats answer ${i}`);
      const listed = await api(port, 'presence', { channel: 'room' });
      const clients = (listed['members'] as Member[]).map((m) => m.client);
      assert.equal(new Set(clients).size, n, `presence answer ${i} lists every member once`);
      assert.equal(listed['truncated'], false);
    }
    // A member's own /ws question too, from whichever worker the socket lands on.
    const ws = await openWs(`http://127.0.0.1:${port}/ws?channel=room`);
    const reply = await ws.request('presence_stats', { channel: 'room' });
    assert.equal(reply.result?.['clients'], n + 1, JSON.stringify(reply));
    ws.close();
    // A member leaves: the others on other workers are told.
    const leaving = joins(subs[0]!).find(() => true)!;
    last.close();
    await until('the leave reached a member on another worker', () => leaves(firstWorkerOther).length >= 1);
    assert.ok(leaves(firstWorkerOther).some((m) => joins(firstWorkerOther).some((j) => j.client === m.client)));
    assert.ok(leaving);
    await until('presence_stats counts the leave', async () => (await api(port, 'presence_stats', { channel: 'room' }))['clients'] === n - 1);
    for (const s of subs) s.close();
    await until('the channel is empty', async () => (await api(port, 'presence_stats', { channel: 'room' }))['clients'] === 0);
  });

  test('an EventSource member (on whichever worker) gets the joins and leaves of members on all three workers', async () => {
    const es = new EventSource(`http://127.0.0.1:${port}/sse?channel=es-room&joinLeave=1`);
    const seen: string[] = [];
    es.addEventListener('join', (e: { data: string }) => seen.push(`join ${(JSON.parse(e.data) as [string, string, Member])[2].client}`));
    es.addEventListener('leave', (e: { data: string }) => seen.push(`leave ${(JSON.parse(e.data) as [string, string, Member])[2].client}`));
    await new Promise<void>((resolve, reject) => {
      es.onopen = () => resolve();
      es.onerror = () => reject(new Error('EventSource failed'));
    });
    try {
      const subs = await spread(port, 'es-room', 3, 3);
      await until('a join per member', () => seen.filter((x) => x.startsWith('join ')).length === subs.length);
      // The members sit on all three workers (two of them not the EventSource's); client ids name their nodes.
      const nodes = new Set(seen.map((x) => x.split(' ')[1]!.split('-')[0]));
      assert.equal(nodes.size, 3, `joins from every worker: ${seen.join(', ')}`);
      for (const s of subs) s.close();
      await until('a leave per member', () => seen.filter((x) => x.startsWith('leave ')).length === subs.length);
    } finally {
      es.close();
    }
  });

  test('disconnect of a listed client, asked on any worker, closes its stream on its own worker with the code given', async () => {
    const subs = await spread(port, 'dc', 3, 3);
    // Calls every node runs wait for the nodes known from their stats (shared each second): every worker's first.
    await until('every worker knows the other two', async () => {
      for (let i = 0; i < 6; i++) if (((await api(port, 'info', {}))['nodes'] as unknown[]).length < 3) return false;
      return true;
    });
    await until('all listed', async () => ((await api(port, 'presence', { channel: 'dc' }))['members'] as Member[]).length === subs.length);
    const listed = (await api(port, 'presence', { channel: 'dc' }))['members'] as Member[];
    for (const m of listed) {
      const d = await api(port, 'disconnect', { client: m.client, code: 4002 });
      assert.equal(d['disconnected'], 1, JSON.stringify(d));
    }
    await until('every stream got its disconnect line', () => subs.every((s) => s.frames.some((f) => f[0] === 'disconnect')));
    for (const s of subs) assert.deepEqual(s.frames.find((f) => f[0] === 'disconnect'), ['disconnect', 'disconnected', 4002, false]);
    await until('presence is empty', async () => (await api(port, 'presence_stats', { channel: 'dc' }))['clients'] === 0);
  });

  test('a SIGKILLed worker\'s members are gone at once and the other workers\' members are told they left', async () => {
    const subs = await spread(port, 'kill', 6, 3);
    const victim = subs[subs.length - 1]!;
    const doomed = subs.filter((s) => s.worker === victim.worker);
    const survivors = subs.filter((s) => s.worker !== victim.worker);
    assert.ok(survivors.length > 0);
    await until('the machine counts everyone', async () => (await api(port, 'presence_stats', { channel: 'kill' }))['clients'] === subs.length);
    const killedAt = Date.now();
    process.kill(victim.workerPid, 'SIGKILL');
    // Leaves for each of the dead worker's members reach every survivor, and no answer counts them any more.
    await until('every survivor was told of the dead worker\'s members leaving', () =>
      survivors.every((s) => leaves(s).length >= doomed.length),
    );
    const told = Date.now() - killedAt;
    const stats = await api(port, 'presence_stats', { channel: 'kill' });
    assert.equal(stats['clients'], survivors.length, JSON.stringify(stats));
    const listed = await api(port, 'presence', { channel: 'kill' });
    assert.equal((listed['members'] as Member[]).length, survivors.length);
    assert.ok(told < 5000, `leaves after ${told} ms`);
    for (const s of subs) s.close();
  });
});

describe('presence on --workers 2 on Redis (each worker a node)', () => {
  let redis: RedisProcess;
  let herald: RunningHerald;
  let port: number;

  before(async () => {
    redis = await startRedis();
    herald = await startHerald(['--dev', '--workers', '2', '--port', '0', '--broker', redis.url], cleanEnv(), 30_000);
    port = Number(new URL(herald.url).port);
    await ready(port, 2);
  });
  after(async () => {
    herald?.proc.kill('SIGTERM');
    await herald?.exited;
    await redis?.stop();
  });

  test('members on both workers are listed and counted by either, and see each other join', async () => {
    const subs = await spread(port, 'r-room', 3, 2);
    await until('the first member saw the later joins', () => joins(subs[0]!).length >= subs.length - 1);
    for (let i = 0; i < 4; i++) {
      await until(`presence_stats answer ${i} counts every member`, async () => (await api(port, 'presence_stats', { channel: 'r-room' }))['clients'] === subs.length);
    }
    const listed = (await api(port, 'presence', { channel: 'r-room' }))['members'] as Member[];
    assert.equal(new Set(listed.map((m) => m.client.split('-')[0])).size, 2, 'members of both workers (two node ids)');
    for (const s of subs) s.close();
    await until('the channel is empty', async () => (await api(port, 'presence_stats', { channel: 'r-room' }))['clients'] === 0);
  });
});
