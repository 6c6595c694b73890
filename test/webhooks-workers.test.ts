/**
 * Webhooks on `herald serve --workers 3` with the embedded broker (docs/webhooks.md "Scope"): channel_occupied and
 * channel_vacated are the machine's, not each worker's: a channel held on several workers is occupied once and
 * vacated once, when its last subscriber anywhere leaves, also when that subscriber's worker is SIGKILLed. A Pusher
 * presence member whose worker is SIGKILLed gets its member_removed webhook once (one surviving worker sends it).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cleanEnv, killAll, startHerald, type RunningHerald } from './helpers/cli.js';
import { startHookServer, type HookServer } from './helpers/hook-server.js';
import { WorkerSub } from './helpers/worker-client.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pusherClient, serverLib, type TestPusherClient } from './helpers/pusher.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(25);
  }
}

interface Ev {
  name: string;
  node: string;
  channel?: string;
}

/** Subscribers until they sit on at least `distinct` workers. */
async function spread(port: number, channel: string, count: number, distinct: number): Promise<WorkerSub[]> {
  const subs: WorkerSub[] = [];
  for (let i = 0; i < count || new Set(subs.map((s) => s.worker)).size < distinct; i++) {
    if (i > count * 6) throw new Error('subscribers never spread over the workers');
    const sub = new WorkerSub(port, channel);
    await sub.open();
    subs.push(sub);
  }
  return subs;
}

after(killAll);

describe('webhooks on --workers 3 (embedded broker)', () => {
  let herald: RunningHerald;
  let port: number;
  let receiver: HookServer;
  const events = (): Ev[] => receiver.requests.flatMap((r) => (JSON.parse(r.body) as { events: Ev[] }).events);
  const of = (name: string, channel: string): Ev[] => events().filter((e) => e.name === name && e.channel === channel);

  before(async () => {
    receiver = await startHookServer();
    const args = ['--dev', '--workers', '3', '--port', '0', '--webhook', receiver.url, '--webhook-secret', 'webhook-secret-0123456789'];
    herald = await startHerald([...args, '--webhook-batch-ms', '20'], cleanEnv(), 30_000);
    port = Number(new URL(herald.url).port);
    await until('3 workers ready', async () => {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`, { headers: { Connection: 'close' } }).catch(() => undefined);
      return r !== undefined && r.status === 200 && (await r.text()).includes('"ready":3');
    }, 30_000);
  });
  after(async () => {
    herald?.proc.kill('SIGTERM');
    await herald?.exited;
    await receiver?.close();
  });

  test('a channel held on several workers is occupied once, and vacated once when its last subscriber anywhere leaves', async () => {
    const subs = await spread(port, 'wh', 4, 3);
    await until('occupied', () => of('channel_occupied', 'wh').length >= 1);
    // Everyone but one leaves, on every worker: a worker-local view would have vacated the channel by now.
    for (const s of subs.slice(0, -1)) s.close();
    await until('the disconnects arrived', () => events().filter((e) => e.name === 'client_disconnected').length >= subs.length - 1);
    await sleep(300);
    assert.equal(of('channel_vacated', 'wh').length, 0, JSON.stringify(events()));
    subs[subs.length - 1]!.close();
    await until('vacated', () => of('channel_vacated', 'wh').length >= 1);
    await sleep(300);
    assert.equal(of('channel_occupied', 'wh').length, 1, 'occupied once for the machine');
    assert.equal(of('channel_vacated', 'wh').length, 1, 'vacated once for the machine');
  });

  test('the last subscriber\'s worker SIGKILLed: the channel is vacated once (another worker sends it)', async () => {
    const subs = await spread(port, 'wh-kill', 3, 2);
    await until('occupied', () => of('channel_occupied', 'wh-kill').length >= 1);
    const victim = subs[subs.length - 1]!;
    // Leave only the victim's worker holding the channel, then kill it.
    for (const s of subs) if (s.worker !== victim.worker) s.close();
    await sleep(300);
    assert.equal(of('channel_vacated', 'wh-kill').length, 0);
    process.kill(victim.workerPid, 'SIGKILL');
    await until('vacated after the kill', () => of('channel_vacated', 'wh-kill').length >= 1);
    await sleep(300);
    const vacated = of('channel_vacated', 'wh-kill');
    assert.equal(vacated.length, 1);
    assert.equal(of('channel_occupied', 'wh-kill').length, 1);
    for (const s of subs) s.close();
  });
});

describe('Pusher webhooks on --workers 3 (embedded broker): a SIGKILLed worker\'s presence members', () => {
  const APP = { appId: 'hooked', key: 'hooked-key', secret: 'hooked-secret-0123456789' };
  let herald: RunningHerald;
  let port: number;
  let receiver: HookServer;
  const closers: (() => void)[] = [];
  /** Every event the receiver got, each request checked with the official pusher library. */
  const received = (): { name: string; channel: string; user_id?: string }[] => {
    const lib = serverLib('http://127.0.0.1:1', APP);
    return receiver.requests.flatMap((r) => {
      const wh = lib.webhook({ headers: r.headers as Record<string, string>, rawBody: r.body });
      assert.ok(wh.isValid());
      return wh.getEvents() as { name: string; channel: string; user_id?: string }[];
    });
  };

  before(async () => {
    receiver = await startHookServer();
    const dir = mkdtempSync(join(tmpdir(), 'herald-pusher-hooks-'));
    const file = join(dir, 'herald.json');
    writeFileSync(file, JSON.stringify({
      pusherApps: [{
        id: APP.appId, key: APP.key, secret: APP.secret, allowedOrigins: ['*'], clientEvents: true, channelPrefix: '',
        webhooks: [{ url: receiver.url, events: ['member_added', 'member_removed'] }],
        maxConnections: 0, maxEventBytes: 10240, maxClientEventsPerSecond: 10, maxPresenceMembers: 100,
      }],
    }));
    herald = await startHerald(['--dev', '--config', file, '--workers', '3', '--port', '0', '--webhook-batch-ms', '20'], cleanEnv(), 30_000);
    port = Number(new URL(herald.url).port);
    await until('3 workers ready', async () => {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`, { headers: { Connection: 'close' } }).catch(() => undefined);
      return r !== undefined && r.status === 200 && (await r.text()).includes('"ready":3');
    }, 30_000);
  });
  after(async () => {
    for (const c of closers) c();
    herald?.proc.kill('SIGTERM');
    await herald?.exited;
    await receiver?.close();
  });

  test('member_removed is sent once for each user whose only connection was on the killed worker, none for the others', async () => {
    // pusher-js clients until the users sit on at least two workers (a socket id is `<worker node in decimal>.<n>`).
    const clients: { user: string; c: TestPusherClient }[] = [];
    const nodeOf = (c: TestPusherClient): string => Number(c.pusher.connection.socket_id.split('.')[0]).toString(36).padStart(7, '0');
    for (let i = 0; i < 4 || new Set(clients.map((x) => nodeOf(x.c))).size < 2; i++) {
      if (i > 30) throw new Error('clients never spread over the workers');
      const user = `u${i}`;
      const c = await pusherClient(herald.url, { app: APP, user: { user_id: user } });
      closers.push(() => c.close());
      await c.subscribe('presence-kill');
      clients.push({ user, c });
    }
    await until('every member_added', () => received().filter((e) => e.name === 'member_added').length === clients.length);
    const victimNode = nodeOf(clients[clients.length - 1]!.c);
    const doomed = clients.filter((x) => nodeOf(x.c) === victimNode).map((x) => x.user).sort();
    const spared = clients.filter((x) => nodeOf(x.c) !== victimNode);
    // The victim's pid from the info call (its nodes are the workers).
    const info = (await (await fetch(`http://127.0.0.1:${port}/api/info`, {
      method: 'POST', headers: { Connection: 'close', 'Content-Type': 'application/json' }, body: '{}',
    })).json()) as { nodes: { node: string; pid: number }[] };
    const pid = info.nodes.find((n) => n.node === victimNode)?.pid;
    assert.ok(pid, JSON.stringify(info));
    process.kill(pid, 'SIGKILL');
    await until('member_removed for the killed worker\'s users', () => received().filter((e) => e.name === 'member_removed').length >= doomed.length);
    await sleep(500);
    const removed = received().filter((e) => e.name === 'member_removed');
    assert.deepEqual(removed.map((e) => e.user_id).sort(), doomed, 'once per user of the dead worker, sent by one worker');
    assert.ok(removed.every((e) => e.channel === 'presence-kill'));
    // The spared clients' pusher-js saw the dead users leave too.
    for (const x of spared) {
      await x.c.waitEvent((e) => e.event === 'pusher:member_removed' && (e.data as { id?: string }).id === doomed[0], 'member_removed in pusher-js');
    }
  });
});
