/**
 * Broker outages that standard clients survive (issue 12 §1), on one node and a real redis-server that the tests
 * stop and start again:
 * - while Redis is down, a new or resuming stream is never answered with a status a standard client treats as
 *   final: `/sse` answers 200 with a `retry:` hint and a `broker_unavailable` disconnect event, then closes (so an
 *   EventSource retries with its Last-Event-ID); `/sub` and `/poll` answer 503 `broker_unavailable` with
 *   `Retry-After`; `/ws` opens and closes with 3016 (the reconnect range), and a `subscribe` frame gets a
 *   `broker_unavailable` error;
 * - each of them first waits up to `brokerWaitMs` for the broker, and one waiting when it returns goes on at once,
 *   subscribed and resumed without a gap;
 * - publishing during the outage answers 503 with `Retry-After` on both publish paths (the fast path and node:http);
 * - real `eventsource` clients, cut off during the outage and opened during it, never give up, lose nothing, get
 *   nothing twice, and are back within 3 s of Redis' return.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, test } from 'node:test';
import { EventSource } from 'eventsource';
import { CuttableProxy } from './helpers/cuttable-proxy.js';
import { startNodeOnRedis, startRedis, type RedisProcess } from './helpers/redis.js';
import { account, resume, TRANSPORTS, type Acked, type Line, type Resumer } from './helpers/resumers.js';
import { eventually, openStream, publish, TEST_API_KEY, type TestServer } from './helpers/server.js';
import { openWs } from './helpers/ws.js';

const cleanup: (() => unknown)[] = [];
after(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const WAIT_MS = 1500;

async function setup(): Promise<{ redis: RedisProcess; node: TestServer }> {
  const redis = await startRedis();
  cleanup.push(() => redis.stop());
  const node = await startNodeOnRedis(redis.url, {
    historySize: 100,
    brokerWaitMs: WAIT_MS,
    redisTimeoutMs: 500,
    redisProbeIntervalMs: 100,
  });
  cleanup.push(() => node.close());
  return { redis, node };
}

/** Kill Redis and wait until the node knows (not ready). */
async function takeDown(redis: RedisProcess, node: TestServer): Promise<void> {
  await redis.kill();
  await eventually(() => !node.server.node.isReady(), 5000, 'the node to see Redis gone');
}

/** A publish through node:http rather than the fast path: a chunked body is handed over to node:http. */
function publishChunked(url: string, channel: string, data: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/api/publish`, {
      method: 'POST',
      agent: false,
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TEST_API_KEY}`, 'Transfer-Encoding': 'chunked' },
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ channel, data }));
  });
}

async function fetchPublish(url: string, channel: string, data: string): Promise<{ status: number; retryAfter: string | null; code: string }> {
  const res = await fetch(`${url}/api/publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TEST_API_KEY}` },
    body: JSON.stringify({ channel, data }),
  });
  const body = (await res.json()) as { error?: { code: string } };
  return { status: res.status, retryAfter: res.headers.get('retry-after'), code: body.error?.code ?? '' };
}

function errorCode(body: string): string {
  return (JSON.parse(body) as { error: { code: string } }).error.code;
}

test('Redis down: every transport gets its documented retryable answer after brokerWaitMs; publishes 503 + Retry-After on both paths', async () => {
  const { redis, node } = await setup();
  const first = await publish(node.url, { channel: 'sig', data: 'one' });
  assert.equal(first.status, 200);
  const since = (first.body as { id: string }).id;
  await takeDown(redis, node);

  // Publishing: not published, retry shortly. The fast path (fetch's first request) and node:http (chunked body).
  const fast = await fetchPublish(node.url, 'sig', 'two');
  assert.deepEqual(fast, { status: 503, retryAfter: '1', code: 'unavailable' });
  const slow = await publishChunked(node.url, 'sig', 'two');
  assert.equal(slow.status, 503);
  assert.equal(slow.headers['retry-after'], '1');
  assert.equal(errorCode(slow.body), 'unavailable');

  const timed = async <T>(f: () => Promise<T>): Promise<{ value: T; ms: number }> => {
    const t0 = Date.now();
    const value = await f();
    return { value, ms: Date.now() - t0 };
  };
  const [sse, sub, poll, wsUrl, wsFrame] = await Promise.all([
    timed(() => openStream(`${node.url}/sse?channel=sig`, { 'Last-Event-ID': since })),
    timed(() => openStream(`${node.url}/sub?channel=sig&since=${since}`)),
    timed(async () => {
      const r = await fetch(`${node.url}/poll?channel=sig&since=${since}`);
      return { status: r.status, retryAfter: r.headers.get('retry-after'), body: await r.text() };
    }),
    timed(async () => {
      const ws = await openWs(`${node.url}/ws?channel=sig&since=${since}`);
      return ws.closed;
    }),
    timed(async () => {
      const ws = await openWs(`${node.url}/ws`);
      const reply = await ws.request('subscribe', { channel: 'sig', since });
      ws.close();
      return reply;
    }),
  ]);
  // Each waited for the broker first (the wait is checked on the node's once-a-second ticker).
  for (const [name, t] of Object.entries({ sse, sub, poll, wsUrl, wsFrame })) {
    assert.ok(t.ms >= WAIT_MS - 100 && t.ms < WAIT_MS + 2500, `${name} answered after ${t.ms} ms (brokerWaitMs ${WAIT_MS})`);
  }

  // /sse: 200, a retry hint spread over [500, 1500) ms, the reason, and the end of the stream.
  assert.equal(sse.value.status, 200);
  assert.match(String(sse.value.headers['content-type']), /^text\/event-stream/);
  await sse.value.ended;
  const retry = sse.value.lines.find((l) => l.startsWith('retry: '));
  const retryMs = Number(retry?.slice(7));
  assert.ok(retryMs >= 500 && retryMs < 1500, `retry hint ${retry}`);
  assert.ok(sse.value.lines.includes('event: disconnect'), sse.value.lines.join('|'));
  assert.ok(sse.value.lines.includes('data: ["disconnect","broker_unavailable",3016,true]'), sse.value.lines.join('|'));
  assert.ok(!sse.value.lines.some((l) => l.startsWith('id:')), 'no id: line, so EventSource keeps its Last-Event-ID');

  assert.equal(sub.value.status, 503);
  assert.equal(sub.value.headers['retry-after'], '1');
  assert.equal(errorCode(sub.value.lines.join('')), 'broker_unavailable');
  assert.equal(poll.value.status, 503);
  assert.equal(poll.value.retryAfter, '1');
  assert.equal(errorCode(poll.value.body), 'broker_unavailable');
  assert.equal(wsUrl.value.code, 3016);
  assert.equal(wsUrl.value.reason, 'broker_unavailable');
  assert.equal(wsFrame.value.type, 'error');
  assert.equal(wsFrame.value.error?.code, 'broker_unavailable');

  // Nothing stayed behind: no session, no waiting subscription, no channel.
  await eventually(() => node.server.node.sessionCount() === 1 || node.server.node.sessionCount() === 0, 3000, 'sessions gone');
  await eventually(() => node.server.node.hub.channelCount() === 0, 3000, 'no channel held');

  // And with Redis back, the same requests are served.
  await redis.restart();
  await eventually(() => node.server.node.isReady(), 8000, 'node ready again');
  const back = await openStream(`${node.url}/sub?channel=sig&since=`);
  assert.equal(back.status, 200);
  back.close();
});

test('a resume waiting for the broker goes on when it returns: every transport gets exactly what it missed, no reload', async () => {
  // A pause (SIGSTOP), not a restart: the dataset survives, so a resume is exactly the missed messages.
  const { redis, node } = await setup();
  const acked: Acked[] = [];
  for (let i = 1; i <= 6; i++) {
    const r = await publish(node.url, { channel: 'held', data: `m${i}` });
    assert.equal(r.status, 200);
    acked.push({ data: `m${i}`, id: (r.body as { id: string }).id });
  }
  const from = acked[1]!.id; // the clients stand at m2: m3..m6 are missed
  redis.freeze();
  cleanup.push(() => redis.thaw());
  await eventually(() => !node.server.node.isReady(), 5000, 'the node to see Redis stalled');
  // Four resumes start while Redis is frozen; they wait (brokerWaitMs is 1.5 s) and Redis wakes after 0.5 s.
  const opening = TRANSPORTS.map((t) => resume(t, node.url, 'held', from));
  await sleep(500);
  const thawed = Date.now();
  redis.thaw();
  const resumers: Resumer[] = await Promise.all(opening);
  const openedAfter = Date.now() - thawed;
  cleanup.push(() => resumers.forEach((r) => r.close()));
  const live = await publish(node.url, { channel: 'held', data: 'm7' });
  assert.equal(live.status, 200);
  acked.push({ data: 'm7', id: (live.body as { id: string }).id });
  for (const r of resumers) {
    await eventually(() => r.lines().some((l) => l[2] === 'm7'), 5000, `${r.transport} to get m7`);
    const messages = r.lines().filter((l: Line) => l[0] === 'message').map((l) => l[2]);
    assert.deepEqual(messages, ['m3', 'm4', 'm5', 'm6', 'm7'], r.transport);
    assert.ok(!r.lines().some((l) => l[0] === 'reload'), `${r.transport}: no reload: ${JSON.stringify(r.lines())}`);
    account(r, acked, from);
  }
  assert.ok(openedAfter < 3000, `the waiting resumes went on ${openedAfter} ms after Redis woke`);
});

test('eventsource clients through a Redis restart: none gives up, nothing lost or duplicated, all back within 3 s', async (t) => {
  const { redis, node } = await setup();
  const proxy = await CuttableProxy.start(node.url);
  cleanup.push(() => proxy.close());
  const CUT = 10;
  const FRESH = 5;

  interface Watched {
    readonly es: EventSource;
    readonly lines: Line[];
    readonly at: number[];
    gaveUp: boolean;
    outageEvents: number;
  }
  const watch = (url: string): Watched => {
    const es = new EventSource(url);
    const w: Watched = { es, lines: [], at: [], gaveUp: false, outageEvents: 0 };
    const take = (e: MessageEvent): void => {
      w.lines.push(JSON.parse(String(e.data)) as Line);
      w.at.push(Date.now());
    };
    es.addEventListener('message', take);
    es.addEventListener('reload', take);
    es.addEventListener('disconnect', (e: MessageEvent) => {
      if ((JSON.parse(String(e.data)) as string[])[1] === 'broker_unavailable') w.outageEvents++;
    });
    // A standard EventSource that gives up ends in CLOSED (2) after an error: it never reconnects again.
    es.addEventListener('error', () => {
      if (es.readyState === 2) w.gaveUp = true;
    });
    cleanup.push(() => es.close());
    return w;
  };

  const cutOff = Array.from({ length: CUT }, () => watch(`${proxy.url}/sse?channel=es`));
  await eventually(() => node.server.node.sessionCount() === CUT, 5000, 'the EventSources to connect');

  // A publisher for the whole test, every 40 ms, recording what was acknowledged.
  const acked: Acked[] = [];
  const ackedAt: number[] = [];
  let publishing = true;
  let seq = 0;
  let refused = 0;
  const idPublisher = (async () => {
    while (publishing) {
      const data = `q${++seq}`;
      const r = await publish(node.url, { channel: 'es', data }).catch(() => undefined);
      if (r?.status === 200) {
        acked.push({ data, id: (r.body as { id: string }).id });
        ackedAt.push(Date.now());
      } else refused++;
      await sleep(40);
    }
  })();
  await eventually(() => cutOff.every((w) => w.lines.length >= 3), 5000, 'live messages before the outage');

  await takeDown(redis, node);
  const down = Date.now();
  // The cut-off clients reconnect during the outage (EventSource's own retry, 2 s), fresh ones arrive during it.
  proxy.cut();
  const fresh = Array.from({ length: FRESH }, () => watch(`${node.url}/sse?channel=es`));
  await sleep(5000);
  const outageMs = Date.now() - down;
  await redis.restart();
  const returned = Date.now();
  await eventually(() => acked.some((_, i) => ackedAt[i]! > returned), 10_000, 'a publish acknowledged after the return');
  const firstAfter = acked.findIndex((_, i) => ackedAt[i]! > returned);
  const all = [...cutOff, ...fresh];
  // Every client gets a message published after the return.
  const backAt = all.map(() => 0);
  await eventually(
    () =>
      all.every((w, k) => {
        const i = w.lines.findIndex((l) => l[0] === 'message' && acked.findIndex((a) => a.data === l[2]) >= firstAfter);
        if (i >= 0 && backAt[k] === 0) backAt[k] = w.at[i]!;
        return i >= 0;
      }),
    10_000,
    'every client to get a message published after the return',
  );
  await sleep(500);
  publishing = false;
  await idPublisher;
  await sleep(300);

  assert.equal(all.filter((w) => w.gaveUp).length, 0, 'no EventSource gave up');
  assert.ok(all.every((w) => w.es.readyState !== 2), 'every EventSource still open or reconnecting');
  assert.ok(all.reduce((n, w) => n + w.outageEvents, 0) > 0, 'clients were told broker_unavailable during the outage');
  let delivered = 0;
  let covered = 0;
  for (const [k, w] of all.entries()) {
    const r: Resumer = { transport: `sse#${k}`, lines: () => w.lines, position: () => '', close: () => w.es.close() };
    // A fresh client is accounted from its first message on (it joined at some point of the outage).
    const firstData = w.lines.find((l) => l[0] === 'message')?.[2];
    const c = account(r, k < CUT ? acked : acked.slice(acked.findIndex((a) => a.data === firstData)));
    delivered += c.delivered;
    covered += c.covered;
  }
  const backMs = backAt.map((b) => b - returned).sort((a, b) => a - b);
  const worst = backMs[backMs.length - 1]!;
  t.diagnostic(
    `outage ${outageMs} ms, ${all.length} EventSources (${CUT} cut off, ${FRESH} fresh), ${acked.length} acknowledged, ` +
      `${refused} refused; delivered ${delivered}, covered by reload ${covered}; broker_unavailable events ` +
      `${all.reduce((n, w) => n + w.outageEvents, 0)}; back after Redis' return: median ${backMs[backMs.length >> 1]} ms, max ${worst} ms`,
  );
  assert.ok(worst <= 3000, `every client back within 3 s of Redis' return (slowest ${worst} ms)`);
});

test('subscriptions waiting for the broker when the node drains are told shutdown at once, and the node stops', async () => {
  const { redis, node } = await setup();
  await takeDown(redis, node);
  const waiting = [openStream(`${node.url}/sse?channel=drain`), openStream(`${node.url}/sub?channel=drain&since=`)];
  await eventually(() => node.server.node.sessionCount() === 2, 3000, 'two requests waiting for the broker');
  const t0 = Date.now();
  const closed = node.close();
  const [sse, sub] = await Promise.all(waiting);
  await Promise.all([sse!.ended, sub!.ended]);
  await closed;
  const ms = Date.now() - t0;
  assert.equal(sse!.status, 200);
  assert.ok(sse!.lines.includes('data: ["disconnect","shutdown",3001,true]'), sse!.lines.join('|'));
  assert.equal(sub!.status, 200);
  assert.deepEqual(sub!.lines.filter((l) => l !== ''), ['["disconnect","shutdown",3001,true]']);
  assert.ok(ms < WAIT_MS, `answered and stopped ${ms} ms after the drain began, without waiting out brokerWaitMs`);
});
