/**
 * Webhooks on `herald serve --workers 3` with the embedded broker (docs/webhooks.md "Scope"): channel_occupied and
 * channel_vacated are the machine's, not each worker's: a channel held on several workers is occupied once and
 * vacated once, when its last subscriber anywhere leaves, also when that subscriber's worker is SIGKILLed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cleanEnv, killAll, startHerald, type RunningHerald } from './helpers/cli.js';
import { startHookServer, type HookServer } from './helpers/hook-server.js';
import { WorkerSub } from './helpers/worker-client.js';

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
