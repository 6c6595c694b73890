/**
 * `herald serve --workers N` with real processes and real clients (docs/architecture.md "Workers"): a publication
 * accepted by any worker reaches subscribers on every worker once and in order; a client resumes on another worker
 * with nothing lost; a SIGKILLed worker's clients resume elsewhere with nothing lost while a publisher keeps going,
 * and the worker is restarted; /metrics sums every worker; SIGTERM drains every worker; on Redis, each worker is a node.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { cleanEnv, killAll, startHerald, type RunningHerald } from './helpers/cli.js';
import { startRedis, type RedisProcess } from './helpers/redis.js';
import { WorkerSub } from './helpers/worker-client.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One request on a fresh connection (agent: false), so that consecutive requests land on different workers. */
function call(port: number, method: string, path: string, body = ''): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const publish = (port: number, channel: string, data: string): Promise<{ status: number; text: string }> =>
  call(port, 'POST', `/api/publish?channel=${encodeURIComponent(channel)}`, data);

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(25);
  }
}

async function ready(port: number, workers: number): Promise<void> {
  await until(`${workers} workers ready`, async () => {
    const r = await call(port, 'GET', '/readyz').catch(() => ({ status: 0, text: '' }));
    return r.status === 200 && r.text.includes(`"ready":${workers}`);
  });
}

const portOf = (h: RunningHerald): number => Number(new URL(h.url).port);

/** Subscribers until they sit on at least `distinct` workers (round-robin spreads them; a loaded machine may not). */
async function spread(port: number, channel: string, count: number, distinct: number): Promise<WorkerSub[]> {
  const subs: WorkerSub[] = [];
  for (let i = 0; i < count || new Set(subs.map((s) => s.worker)).size < distinct; i++) {
    if (i > count * 4) throw new Error('subscribers never spread over the workers');
    const sub = new WorkerSub(port, channel);
    await sub.open();
    subs.push(sub);
  }
  return subs;
}

function assertInOrder(sub: WorkerSub, expected: readonly string[]): void {
  assert.deepEqual(
    sub.messages.map((m) => m.data),
    expected,
    `worker ${sub.worker}: every message once, in order`,
  );
}

after(killAll);

describe('herald serve --workers 3 (embedded broker)', () => {
  let herald: RunningHerald;
  let port: number;

  before(async () => {
    herald = await startHerald(['--dev', '--workers', '3', '--port', '0'], cleanEnv(), 30_000);
    port = portOf(herald);
    await ready(port, 3);
  });
  // SIGTERM, not the SIGKILL of killAll: the primary removes its socket's directory on the way out.
  after(async () => {
    herald?.proc.kill('SIGTERM');
    await herald?.exited;
  });

  test('a publication accepted by any worker reaches subscribers on every worker once, in order', async () => {
    const subs = await spread(port, 'fan', 6, 2);
    const sent: string[] = [];
    // Publishes on fresh connections: round-robin hands them to different workers.
    for (let i = 0; i < 30; i++) {
      sent.push(`m${i}`);
      const r = await publish(port, 'fan', `m${i}`);
      assert.equal(r.status, 200, r.text);
    }
    await until('every subscriber has every message', () => subs.every((s) => s.messages.length >= sent.length), 10_000);
    await sleep(100);
    for (const sub of subs) assertInOrder(sub, sent);
    // One source of ids: every worker saw the same id for the same message.
    const ids = subs[0]?.messages.map((m) => m.id);
    for (const sub of subs) assert.deepEqual(sub.messages.map((m) => m.id), ids);
    for (const sub of subs) sub.close();
  });

  test('a client resumes with since= on another worker, nothing lost', async () => {
    const first = new WorkerSub(port, 'resume');
    await first.open();
    assert.equal((await publish(port, 'resume', 'r0')).status, 200);
    await until('r0 arrived', () => first.messages.length === 1);
    first.close();
    const sent = ['r0'];
    for (let i = 1; i <= 5; i++) {
      sent.push(`r${i}`);
      assert.equal((await publish(port, 'resume', `r${i}`)).status, 200);
    }
    // Reconnect until the connection lands on another worker (the ones that landed on the same one are closed).
    let again: WorkerSub | undefined;
    for (let tries = 0; tries < 30 && !again; tries++) {
      const probe = new WorkerSub(port, 'resume');
      await probe.open(first.lastId);
      if (probe.worker !== first.worker) again = probe;
      else probe.close();
    }
    assert.ok(again, 'landed on another worker');
    await until('the missed messages arrived', () => (again?.messages.length ?? 0) >= 5);
    await sleep(100);
    assert.notEqual(again.worker, first.worker);
    assert.deepEqual(again.messages.map((m) => m.data), sent.slice(1));
    again.close();
  });

  test('/metrics sums every worker, whichever answers', async () => {
    const subs = await spread(port, 'metered', 6, 2);
    const sessions = async (): Promise<number> => {
      const r = await call(port, 'GET', '/metrics');
      return Number(/^herald_sessions (\d+)$/m.exec(r.text)?.[1] ?? -1);
    };
    // The summed count is the machine's: more than any one worker holds once they are spread.
    await until('herald_sessions counts every worker', async () => (await sessions()) === subs.length);
    const text = (await call(port, 'GET', '/metrics')).text;
    assert.match(text, /^herald_workers 3$/m);
    assert.equal(text.match(/^# TYPE herald_sessions /gm)?.length, 1, 'one TYPE line per family');
    // RSS is summed over every Herald process, the primary's included: at least four processes' worth.
    const rss = Number(/^process_resident_memory_bytes (\d+)$/m.exec(text)?.[1]);
    assert.ok(rss > 4 * 20e6, `summed RSS ${rss}`);
    for (const sub of subs) sub.close();
    await until('closed streams leave the sum', async () => (await sessions()) === 0);
  });

  test('the --dev admin dashboard works on every worker and lists every worker as a node', async () => {
    const page = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/admin', agent: false }, (res) => {
        res.resume();
        resolve(String(res.headers['set-cookie']?.[0] ?? '').split(';')[0] ?? '');
      });
      req.on('error', reject);
      req.end();
    });
    assert.match(page, /=/, 'a cookie');
    // The feed on fresh connections (other workers): the cookie one worker set is good on all, and the first
    // stats event names every worker's node.
    const feed = (): Promise<{ status: number; nodes: number }> =>
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/admin/events', agent: false, headers: { cookie: page } }, (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            return resolve({ status: res.statusCode ?? 0, nodes: 0 });
          }
          let text = '';
          res.setEncoding('utf8').on('data', (d: string) => {
            text += d;
            const data = /event: stats\ndata: (.*)\n/.exec(text)?.[1];
            if (!data) return;
            req.destroy();
            resolve({ status: 200, nodes: (JSON.parse(data) as { nodes: unknown[] }).nodes.length });
          });
        });
        req.on('error', reject);
        req.end();
      });
    let most = 0;
    for (let i = 0; i < 6; i++) {
      const r = await feed();
      assert.equal(r.status, 200, 'the cookie is good on every worker');
      most = Math.max(most, r.nodes);
    }
    await until('the dashboard lists 3 nodes', async () => (await feed()).nodes === 3);
    assert.ok(most <= 3);
  });

  test('a SIGKILLed worker: its clients resume elsewhere with nothing lost under a publisher; it is restarted', async () => {
    const subs = await spread(port, 'crash', 6, 3);
    const victim = subs[0]?.workerPid ?? 0;
    assert.ok(victim > 0);
    const sent: string[] = [];
    let publishing = true;
    const publisher = (async () => {
      for (let i = 0; publishing; i++) {
        const r = await publish(port, 'crash', `c${i}`).catch(() => ({ status: 0, text: '' }));
        // A publish answered 200 is one the subscribers must get; one that failed (its worker died) may be retried.
        if (r.status === 200) sent.push(`c${i}`);
        await sleep(10);
      }
    })();
    await until('the publisher got going', () => sent.length >= 10);
    process.kill(victim, 'SIGKILL');
    const victims = subs.filter((s) => s.workerPid === victim);
    assert.ok(victims.length > 0);
    // Each of the victim's clients reconnects from its last id, wherever it lands.
    const resumed = new Map<WorkerSub, WorkerSub>();
    await until('the victim worker closed its clients', () => victims.every((s) => s.closed), 10_000);
    for (const lost of victims) {
      const again = new WorkerSub(port, 'crash');
      await again.open(lost.lastId);
      assert.notEqual(again.workerPid, victim);
      resumed.set(lost, again);
    }
    await until('sent more after the kill', () => sent.length >= 40);
    publishing = false;
    await publisher;
    const total = sent.length;
    const all = (s: WorkerSub): string[] => [...s.messages.map((m) => m.data), ...(resumed.get(s)?.messages.map((m) => m.data) ?? [])];
    await until('every client has every message', () => subs.every((s) => all(s).length >= total), 10_000);
    await sleep(100);
    for (const sub of subs) assert.deepEqual(all(sub), sent, `client on worker ${sub.worker}${resumed.has(sub) ? ' (resumed)' : ''}`);
    // The primary restarted the worker: three ready again, one restart counted.
    await ready(port, 3);
    const health = JSON.parse((await call(port, 'GET', '/healthz')).text) as { workers: { restarts: number; workers: { pid: number }[] } };
    assert.ok(health.workers.restarts >= 1);
    assert.ok(!health.workers.workers.some((w) => w.pid === victim));
    for (const sub of [...subs, ...resumed.values()]) sub.close();
  });
});

test('SIGTERM drains every worker: each stream is told shutdown, every process exits, the primary with 0', async () => {
  const herald = await startHerald(['--dev', '--workers', '2', '--port', '0'], cleanEnv(), 30_000);
  const port = portOf(herald);
  await ready(port, 2);
  const subs = await spread(port, 'drain', 4, 2);
  const pids = subs[0]?.workers.map((w) => w.pid) ?? [];
  assert.equal(pids.length, 2);
  herald.proc.kill('SIGTERM');
  const done = await herald.exited;
  assert.equal(done.code, 0, done.stderr);
  for (const sub of subs) assert.deepEqual(sub.disconnects, ['shutdown']);
  for (const pid of pids) assert.throws(() => process.kill(pid, 0), 'worker exited');
});

describe('herald serve --workers 2 on Redis: each worker is a node', () => {
  let redis: RedisProcess;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await killAll();
    await redis?.stop();
  });

  test('a publication reaches subscribers on both workers; /metrics sums them', async () => {
    const herald = await startHerald(['--dev', '--workers', '2', '--port', '0', '--broker', redis.url], cleanEnv(), 30_000);
    const port = portOf(herald);
    await ready(port, 2);
    const subs = await spread(port, 'rfan', 4, 2);
    const sent: string[] = [];
    for (let i = 0; i < 10; i++) {
      sent.push(`x${i}`);
      assert.equal((await publish(port, 'rfan', `x${i}`)).status, 200);
    }
    // A plain Redis PUBLISH reaches both workers too.
    redis.cli('PUBLISH', 'rfan', 'raw');
    sent.push('raw');
    await until('every subscriber has every message', () => subs.every((s) => s.messages.length >= sent.length), 10_000);
    for (const sub of subs) assert.deepEqual(sub.messages.map((m) => m.data), sent);
    const metrics = (await call(port, 'GET', '/metrics')).text;
    assert.match(metrics, /^herald_sessions 4$/m);
    for (const sub of subs) sub.close();
    herald.proc.kill('SIGTERM');
    assert.equal((await herald.exited).code, 0);
    assert.equal(redis.cli('CLIENT', 'LIST').split('\n').filter((l) => l.includes('name=herald')).length, 0, 'every worker closed its Redis connections');
  });
});
