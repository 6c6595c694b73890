/**
 * The Pusher protocol on `herald serve --workers 3` with the embedded broker (issue 11): real pusher-js clients
 * spread over the workers (a socket id names its worker's node), the official `pusher` server library calling the
 * HTTP API on fresh connections (so the calls land on different workers). A trigger reaches pusher-js, /sub and /sse
 * on every worker; a Herald publish (text or JSON) reaches pusher-js on every worker; a cache channel's last event
 * reaches a new subscriber on any worker; client events cross workers and are never
 * echoed; socket_id exclusion holds across workers; terminate_connections closes a user's connection on another
 * worker; channels and channels/{name} answer for the whole machine whichever worker is asked.
 */
import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import { cleanEnv, killAll, startHerald, type RunningHerald } from './helpers/cli.js';
import { DEV_APP, pusherClient, serverLib, type PusherServerLib, type TestPusherClient } from './helpers/pusher.js';
import { eventually } from './helpers/server.js';
import { WorkerSub } from './helpers/worker-client.js';

const WORKERS = 3;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function get(port: number, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A Herald publish on a fresh connection (round-robin hands it to some worker). */
function heraldPublish(port: number, channel: string, data: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify({ channel, data });
    const req = request(
      { host: '127.0.0.1', port, method: 'POST', path: '/api/publish', agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The worker (its node) a pusher-js client is on: the socket id is `<node>.<session>`. */
const workerOf = (c: TestPusherClient): string => c.pusher.connection.socket_id.split('.')[0] ?? '';

describe(`Pusher on herald serve --workers ${WORKERS} (embedded broker)`, () => {
  let herald: RunningHerald;
  let url: string;
  let port: number;
  /** The server library on fresh connections: consecutive calls land on different workers. */
  let lib: PusherServerLib;
  const closers: (() => void)[] = [];

  before(async () => {
    herald = await startHerald(['--dev', '--workers', String(WORKERS), '--port', '0'], cleanEnv(), 30_000);
    url = herald.url;
    port = Number(new URL(url).port);
    for (const deadline = Date.now() + 20_000; ; ) {
      const r = await get(port, '/readyz').catch(() => ({ status: 0, text: '' }));
      if (r.status === 200 && r.text.includes(`"ready":${WORKERS}`)) break;
      if (Date.now() > deadline) throw new Error('workers not ready');
      await sleep(50);
    }
    lib = serverLib(url, DEV_APP, { agent: new Agent({ keepAlive: false }) });
  });
  after(async () => {
    for (const c of closers.reverse()) c();
    herald?.proc.kill('SIGTERM');
    await herald?.exited;
    await killAll();
  });

  async function client(options: Parameters<typeof pusherClient>[1] = {}): Promise<TestPusherClient> {
    const c = await pusherClient(url, options);
    closers.push(() => c.close());
    return c;
  }

  /** pusher-js clients until they sit on `distinct` workers (round-robin spreads them; a loaded machine may not). */
  async function spread(count: number, distinct: number, options: Parameters<typeof pusherClient>[1] = {}): Promise<TestPusherClient[]> {
    const clients: TestPusherClient[] = [];
    for (let i = 0; i < count || new Set(clients.map(workerOf)).size < distinct; i++) {
      if (i > count * 4) throw new Error('pusher-js clients never spread over the workers');
      clients.push(await client(options));
    }
    return clients;
  }

  /** A client on a worker other than `than`'s. */
  async function elsewhere(than: TestPusherClient, options: Parameters<typeof pusherClient>[1] = {}): Promise<TestPusherClient> {
    for (let i = 0; i < 12; i++) {
      const c = await client(options);
      if (workerOf(c) !== workerOf(than)) return c;
      c.close();
    }
    throw new Error('no client landed on another worker');
  }

  test('a trigger reaches pusher-js, /sub and /sse on every worker; a Herald publish reaches pusher-js on every worker', async () => {
    const clients = await spread(WORKERS, WORKERS);
    for (const c of clients) await c.subscribe('w-news');
    const subs: WorkerSub[] = [];
    for (let i = 0; i < WORKERS * 4 && new Set(subs.map((s) => s.worker)).size < WORKERS; i++) {
      const s = new WorkerSub(port, 'w-news');
      await s.open();
      subs.push(s);
      closers.push(() => s.close());
    }
    assert.equal(new Set(subs.map((s) => s.worker)).size, WORKERS, '/sub on every worker');
    const sse: string[][] = [];
    for (let i = 0; i < WORKERS; i++) {
      const got: string[] = [];
      const es = new EventSource(`${url}/sse?channel=w-news`);
      closers.push(() => es.close());
      es.addEventListener('message', (e: { data: string }) => got.push(e.data));
      await eventually(() => es.readyState === 1, 5000, 'SSE open');
      sse.push(got);
    }
    // Triggers on fresh connections: each may be taken by a different worker.
    for (let i = 0; i < WORKERS; i++) assert.equal((await lib.trigger('w-news', 'placed', { n: i })).status, 200);
    for (const c of clients) {
      await eventually(() => c.events.filter((e) => e.event === 'placed').length === WORKERS, 5000, `every trigger at worker ${workerOf(c)}`);
      assert.deepEqual(c.events.filter((e) => e.event === 'placed').map((e) => e.data), [{ n: 0 }, { n: 1 }, { n: 2 }], 'in order, once');
    }
    for (const s of subs) {
      await eventually(() => s.messages.length === WORKERS, 5000, `every trigger at /sub on worker ${s.worker}`);
      assert.deepEqual(JSON.parse(s.messages[0]!.data), { event: 'placed', data: '{"n":0}' });
    }
    for (const got of sse) await eventually(() => got.length === WORKERS, 5000, 'every trigger at /sse');
    for (let i = 0; i < WORKERS; i++) assert.equal(await heraldPublish(port, 'w-news', `h${i}`), 200);
    for (const c of clients) {
      await eventually(() => c.events.filter((e) => e.event === 'message').length === WORKERS, 5000, `Herald publishes at worker ${workerOf(c)}`);
      assert.deepEqual(c.events.filter((e) => e.event === 'message').map((e) => e.data), ['h0', 'h1', 'h2']);
    }
    // JSON data: the bind callback gets the value published, on every worker.
    assert.equal(await heraldPublish(port, 'w-news', { total: 3, lines: ['x'] }), 200);
    for (const c of clients) await c.waitEvent((e) => e.event === 'message' && typeof e.data === 'object', `the JSON publish at worker ${workerOf(c)}`);
    for (const c of clients) assert.deepEqual(c.events.filter((e) => e.event === 'message').at(-1)!.data, { total: 3, lines: ['x'] });
  });

  test('a cache channel gives its last event to a new subscriber on any worker (the machine\'s one history)', async () => {
    const first = await client();
    await first.subscribe('cache-w-score');
    await first.waitEvent((e) => e.event === 'pusher:cache_miss', 'cache_miss on the empty channel');
    for (let i = 1; i <= WORKERS; i++) assert.equal((await lib.trigger('cache-w-score', 'goal', { home: i })).status, 200);
    await first.waitEvent((e) => e.event === 'goal' && (e.data as { home: number }).home === WORKERS, 'the live goals');
    const late = await spread(WORKERS, WORKERS);
    for (const c of late) {
      await c.subscribe('cache-w-score');
      await c.waitEvent((e) => e.event === 'goal', `the cached event on worker ${workerOf(c)}`);
    }
    await sleep(100);
    for (const c of late) {
      assert.deepEqual(c.events.filter((e) => e.event !== 'pusher:subscription_succeeded').map((e) => e.data), [{ home: WORKERS }], 'the last event only, no cache_miss');
    }
  });

  test('client events cross workers and are never echoed; socket_id exclusion holds across workers', async () => {
    const a = await client();
    const b = await elsewhere(a);
    const chA = await a.subscribe('private-w-room');
    await b.subscribe('private-w-room');
    assert.equal(chA.trigger('client-typing', { who: 'a' }), true);
    await b.waitEvent((e) => e.event === 'client-typing', 'the client event on the other worker');
    assert.deepEqual(b.events.find((e) => e.event === 'client-typing')!.data, { who: 'a' });
    // Exclusion: a trigger naming a's socket, sent to whichever worker, leaves a out and reaches b.
    for (let i = 0; i < WORKERS; i++) {
      assert.equal((await lib.trigger('private-w-room', 'excluded', i, { socket_id: a.pusher.connection.socket_id })).status, 200);
    }
    await lib.trigger('private-w-room', 'marker', 'm');
    await a.waitEvent((e) => e.event === 'marker', 'the marker at a');
    await b.waitEvent((e) => e.event === 'marker', 'the marker at b');
    assert.equal(b.events.filter((e) => e.event === 'excluded').length, WORKERS);
    assert.ok(!a.events.some((e) => e.event === 'excluded'), 'the excluded socket got nothing');
    assert.ok(!a.events.some((e) => e.event === 'client-typing'), 'the client event was not echoed');
  });

  test('channels and channels/{name} count every worker, whichever worker is asked', async () => {
    const clients = await spread(WORKERS, WORKERS);
    for (const c of clients) await c.subscribe('w-counted');
    await clients[0]!.subscribe('w-only-one');
    const expected = clients.length;
    type Listing = { channels: Record<string, { subscription_count?: number }> };
    // A worker learns of the others from the stats every node shares each second; until then it answers for itself.
    for (const deadline = Date.now() + 10_000; ; ) {
      const answers: Listing[] = [];
      for (let i = 0; i < WORKERS * 2; i++) answers.push((await (await lib.get({ path: '/channels', params: { info: 'subscription_count' } })).json()) as Listing);
      if (answers.every((l) => l.channels['w-counted']?.subscription_count === expected)) {
        for (const l of answers) assert.deepEqual(l.channels['w-only-one'], { subscription_count: 1 });
        break;
      }
      if (Date.now() > deadline) assert.fail(`channels answers: ${JSON.stringify(answers)}`);
      await sleep(200);
    }
    for (let i = 0; i < WORKERS * 2; i++) {
      const one = (await (await lib.get({ path: '/channels/w-counted', params: { info: 'subscription_count' } })).json()) as Record<string, unknown>;
      assert.deepEqual(one, { occupied: true, subscription_count: expected });
      const none = (await (await lib.get({ path: '/channels/w-nobody' })).json()) as Record<string, unknown>;
      assert.deepEqual(none, { occupied: false });
    }
    for (const c of clients) c.pusher.unsubscribe('w-counted');
    for (const deadline = Date.now() + 5000; ; ) {
      const one = (await (await lib.get({ path: '/channels/w-counted' })).json()) as Record<string, unknown>;
      if (one['occupied'] === false) break;
      if (Date.now() > deadline) assert.fail('the channel stayed occupied after every unsubscribe');
      await sleep(100);
    }
  });

  test('presence across workers: two users on different workers see the full member list, each other\'s joins and leaves', async () => {
    const ann = await client({ user: { user_id: 'w-ann', user_info: { n: 'Ann' } } });
    const bob = await elsewhere(ann, { user: { user_id: 'w-bob', user_info: { n: 'Bob' } } });
    assert.notEqual(workerOf(ann), workerOf(bob));
    const chAnn = await ann.subscribe('presence-w-hall');
    assert.deepEqual(chAnn.members!.members, { 'w-ann': { n: 'Ann' } });
    const chBob = await bob.subscribe('presence-w-hall');
    assert.deepEqual(chBob.members!.members, { 'w-ann': { n: 'Ann' }, 'w-bob': { n: 'Bob' } }, 'bob\'s subscription_succeeded lists ann on another worker');
    await ann.waitEvent((e) => e.event === 'pusher:member_added', 'ann sees bob join from another worker');
    assert.deepEqual(ann.events.find((e) => e.event === 'pusher:member_added')!.data, { id: 'w-bob', info: { n: 'Bob' } });
    assert.equal(chAnn.members!.count, 2);
    bob.close();
    await ann.waitEvent((e) => e.event === 'pusher:member_removed', 'ann sees bob leave from another worker');
    assert.deepEqual(ann.events.find((e) => e.event === 'pusher:member_removed')!.data, { id: 'w-bob', info: { n: 'Bob' } });
    assert.equal(chAnn.members!.count, 1);
    assert.ok(!bob.events.some((e) => e.event === 'pusher:member_added'), 'bob is not told of himself');
  });

  test('terminate_connections reaches a user\'s connections on every worker', async () => {
    const clients = await spread(WORKERS, WORKERS, { user: { user_id: 'w-carol' } });
    const bystander = await client({ user: { user_id: 'w-dan' } });
    for (const c of [...clients, bystander]) {
      let signedIn = false;
      c.pusher.bind('pusher:signin_success', () => (signedIn = true));
      c.pusher.signin();
      await eventually(() => signedIn, 5000, 'signin');
    }
    const states = clients.map(() => [] as string[]);
    clients.forEach((c, i) => c.pusher.connection.bind('state_change', (s) => states[i]!.push((s as { current: string }).current)));
    let bystanderChanged = false;
    bystander.pusher.connection.bind('state_change', () => (bystanderChanged = true));
    assert.equal((await lib.terminateUserConnections('w-carol')).status, 200);
    await eventually(() => states.every((s) => s.length > 0), 5000, 'every connection of w-carol closed, on every worker');
    for (const s of states) assert.notEqual(s[0], 'connected');
    await sleep(300);
    assert.equal(bystanderChanged, false, 'another user stays connected');
  });
});
