/**
 * 1,000 SDK clients through a Redis outage (issue 13, items 1 and 6), on two Herald nodes (`herald serve` child
 * processes) sharing a real redis-server, with a publisher that keeps publishing with history the whole time:
 * - Redis is SIGKILLed for about 6 s and comes back from a snapshot taken 2.5 s before the crash (a rollback: the
 *   offsets of those 2.5 s are handed out again), the fault in which the SDK used to drop 3,330 messages;
 * - node A stays up: its 500 clients stay connected, and the node recovers them when Redis is back;
 * - node B is SIGKILLed and restarted during the outage (its clients find it unreachable, then up without its
 *   broker: every subscribe answers 503 until Redis is back), so its 500 clients go through the SDK's backoff and
 *   readiness probe.
 * Measured per client: the time from Redis' return (the moment it was started again) to the first delivered message
 * acknowledged after it (connected and caught up), and the SDK's part of it: the same from the moment the server
 * could serve the client again (its node ready, and node A, through which the publisher goes), held to 3 s (p99).
 * Counted per acknowledged message and per client: delivered exactly once, in order, or covered by an explicit
 * `missed` event; 0 silently lost.
 *
 * The clients run in child processes (fleet.ts), 250 to a process. SDK_OUTAGE_PROBE_MS=0 runs them without the
 * readiness probe, for comparison (docs/reliability.md, "The SDK after an outage").
 */
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cleanEnv, killAll, startHerald, type RunningHerald } from '../helpers/cli.js';
import { startRedis, type RedisProcess } from '../helpers/redis.js';
import { publish, TEST_API_KEY } from '../helpers/server.js';
import type { ClientReport, Command } from './fleet.js';

const CLIENTS = 1000;
const PER_PROCESS = 250;
const CHANNELS = ['out.0', 'out.1', 'out.2', 'out.3'];
const OUTAGE_MS = 6000;
const FLEET = fileURLToPath(new URL('./fleet.js', import.meta.url));
const probeEnv = process.env['SDK_OUTAGE_PROBE_MS'];
const PROBE_MS = probeEnv === undefined || probeEnv === '' ? undefined : Number(probeEnv);

const cleanup: (() => unknown)[] = [];
after(async () => {
  for (const f of cleanup.reverse()) await f();
  await killAll();
});

/** `herald serve --dev` on Redis with history, on `port` (0: any). */
function serve(redis: RedisProcess, port: number): Promise<RunningHerald> {
  return startHerald(['--port', String(port), '--dev', '--broker', redis.url, '--history-size', '1000'], cleanEnv({ HERALD_API_KEY: TEST_API_KEY }));
}

async function ready(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/readyz`)).status === 200;
  } catch {
    return false;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One child process of clients, with a request/answer helper over IPC. */
class Fleet {
  private readonly waiting = new Map<string, ((m: Record<string, unknown>) => void)[]>();
  constructor(readonly proc: ChildProcess) {
    proc.on('message', (m: Record<string, unknown>) => this.waiting.get(String(m['type']))?.shift()?.(m));
  }
  next(type: string, timeoutMs: number): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fleet: no '${type}' in ${timeoutMs} ms`)), timeoutMs);
      const list = this.waiting.get(type) ?? [];
      list.push((m) => {
        clearTimeout(timer);
        resolve(m);
      });
      this.waiting.set(type, list);
    });
  }
  send(cmd: Command): void {
    this.proc.send(cmd);
  }
  async ask(cmd: Command, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const answer = this.next(cmd.type, timeoutMs);
    this.send(cmd);
    return answer;
  }
}

/** Publishes m0, m1, ... round-robin over the channels through `url`, and remembers what was acknowledged, when. */
function startPublisher(url: () => string): {
  acked: Map<string, { seq: number; sentAt: number }[]>;
  stop(): Promise<void>;
} {
  const acked = new Map(CHANNELS.map((c) => [c, [] as { seq: number; sentAt: number }[]]));
  let running = true;
  const loop = (async () => {
    for (let seq = 0; running; seq++) {
      const channel = CHANNELS[seq % CHANNELS.length] as string;
      const sentAt = Date.now();
      const res = await publish(url(), { channel, data: `m${seq}` }).catch(() => ({ status: 0 }));
      if (res.status === 200) acked.get(channel)?.push({ seq, sentAt });
      await sleep(20);
    }
  })();
  return {
    acked,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** When a node logged that its broker connection was restored, at or after `since` (ms since the epoch). */
function readyLogs(log: string, since: number): number[] {
  return log
    .split('\n')
    .filter((line) => line.includes('"msg":"broker connection restored"'))
    .map((line) => Date.parse((JSON.parse(line) as { t: string }).t))
    .filter((t) => t >= since);
}

/** A node's log lines from `since` on, as `+ms msg (reason)`, for the diagnostics. */
function brokerLog(log: string, since: number): string {
  return log
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { t: string; msg: string; reason?: string; err?: string })
    .filter((e) => Date.parse(e.t) >= since)
    .map((e) => `+${Date.parse(e.t) - since} ${e.msg}${e.reason ?? e.err ? ` (${e.reason ?? e.err})` : ''}`)
    .join('; ');
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN;
}

function summary(label: string, values: readonly number[]): string {
  const s = [...values].sort((a, b) => a - b);
  return `${label}: n=${s.length} p50=${quantile(s, 0.5)} p90=${quantile(s, 0.9)} p99=${quantile(s, 0.99)} max=${s.at(-1)} ms`;
}

test('1,000 SDK clients through a 6 s Redis outage and a node restart: caught up within 3 s (p99) of Redis returning, nothing silently lost', async (t) => {
  const redis: RedisProcess = await startRedis();
  cleanup.push(() => redis.stop());
  const nodeA = await serve(redis, 0);
  let nodeB = await serve(redis, 0);
  const portB = Number(new URL(nodeB.url).port);
  for (const node of [nodeA, nodeB]) {
    const deadline = Date.now() + 15_000;
    while (!(await ready(node.url))) {
      if (Date.now() > deadline) throw new Error(`${node.url} not ready`);
      await sleep(50);
    }
  }

  const fleets: Fleet[] = [];
  for (let from = 0; from < CLIENTS; from += PER_PROCESS) {
    const proc = fork(FLEET, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    cleanup.push(() => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    });
    const fleet = new Fleet(proc);
    fleets.push(fleet);
    const connected = fleet.next('connected', 30_000);
    fleet.send({
      type: 'start',
      urls: [nodeA.url, nodeB.url],
      channels: CHANNELS,
      from,
      to: from + PER_PROCESS,
      ...(PROBE_MS === undefined ? {} : { probeMs: PROBE_MS }),
    });
    await connected;
  }
  const status = async (want: Map<string, number>): Promise<{ reached: number; connected: number }> => {
    const answers = await Promise.all(fleets.map((f) => f.ask({ type: 'status', want: Object.fromEntries(want) })));
    return {
      reached: answers.reduce((n, a) => n + Number(a['reached']), 0),
      connected: answers.reduce((n, a) => n + Number(a['connected']), 0),
    };
  };

  const pub = startPublisher(() => nodeA.url);
  cleanup.push(() => pub.stop());
  // A snapshot 2.5 s before the crash: Redis comes back from it, rolled back, and hands out those offsets again.
  await sleep(500);
  redis.cli('SAVE');
  await sleep(2500);
  await redis.kill();
  const killedAt = Date.now();
  await sleep(500);
  nodeB.proc.kill('SIGKILL');
  await nodeB.exited;
  await sleep(1000);
  // Back on the same port while Redis is still down: up, not ready, every subscribe refused with 503.
  nodeB = await serve(redis, portB);
  await sleep(killedAt + OUTAGE_MS - Date.now());
  const returnedAt = Date.now();
  await redis.restart();
  const loaded = /rdb_last_load_keys_loaded:(\d+)/.exec(redis.cli('INFO', 'persistence'))?.[1];
  assert.ok(Number(loaded) > 0, `Redis came back from the snapshot (${loaded} keys loaded)`);
  // When each node is ready again: what the server itself takes (its own Redis reconnect backoff).
  const readyAt = new Map<string, number>();
  const watchReady = (name: string, url: string): Promise<void> =>
    (async () => {
      while (!(await ready(url)) && Date.now() < returnedAt + 20_000) await sleep(20);
      readyAt.set(name, Date.now() - returnedAt);
    })();
  const readiness = Promise.all([watchReady('A', nodeA.url), watchReady('B', nodeB.url)]);

  // The first message acknowledged after the return, per channel; then wait until every client has delivered it.
  const firstAfter = new Map<string, number>();
  const deadline = returnedAt + 25_000;
  while (firstAfter.size < CHANNELS.length && Date.now() < deadline) {
    await sleep(50);
    for (const [c, list] of pub.acked) {
      const first = list.find((a) => a.sentAt >= returnedAt);
      if (first) firstAfter.set(c, first.seq);
    }
  }
  assert.equal(firstAfter.size, CHANNELS.length, 'publishing resumed on every channel');
  let caughtUp = await status(firstAfter);
  while (caughtUp.reached < CLIENTS && Date.now() < deadline) {
    await sleep(200);
    caughtUp = await status(firstAfter);
  }
  await sleep(1000);
  await pub.stop();
  const last = new Map([...pub.acked].map(([c, list]) => [c, list.at(-1)?.seq ?? -1]));
  let done = await status(last);
  while (done.reached < CLIENTS && Date.now() < deadline + 5000) {
    await sleep(200);
    done = await status(last);
  }

  const acked = Object.fromEntries([...pub.acked].map(([c, list]) => [c, list.map((a) => a.seq)]));
  const reports = await Promise.all(
    fleets.map((f) => f.ask({ type: 'report', acked, firstAfter: Object.fromEntries(firstAfter), returnedAt })),
  );
  const rows = reports.flatMap((r) => r['rows'] as ClientReport[]);
  assert.equal(rows.length, CLIENTS);

  const sum = (f: (r: ClientReport) => number): number => rows.reduce((n, r) => n + f(r), 0);
  const ackedCount = Object.values(acked).reduce((n, l) => n + l.length, 0);
  const catchUp = rows.map((r) => r.catchUpMs ?? Infinity);
  const onA = rows.filter((r) => r.url === nodeA.url);
  const onB = rows.filter((r) => r.url !== nodeA.url);
  await readiness;
  // When could each node serve its clients again? When it logged its broker back ("broker connection restored") and
  // answered a readiness request with 200, whichever came later: on a loaded machine a node may log its return and
  // still take seconds to answer anyone, and that is the server's time, not the SDK's.
  const logged = new Map([
    ['A', readyLogs(nodeA.stderr(), returnedAt)],
    ['B', readyLogs(nodeB.stderr(), returnedAt)],
  ]);
  const backAt = (name: string): number => Math.max(readyAt.get(name) ?? Infinity, (logged.get(name)?.[0] ?? returnedAt) - returnedAt);
  // The SDK's own part: from the moment the server could serve the client again to the client caught up. A node's
  // clients need their node back, and the first message after the return goes through node A.
  const serverBack = (r: ClientReport): number => (r.url === nodeA.url ? backAt('A') : Math.max(backAt('A'), backAt('B')));
  const sdkPart = rows.map((r) => (r.catchUpMs ?? Infinity) - serverBack(r));
  const returns = [...logged].map(([name, times]) => `${name} ${times.map((x) => `+${x - returnedAt}`).join(' ') || 'none'}`);
  const lines = [
    `after Redis returned, nodes answered /readyz 200: A +${readyAt.get('A')} ms, B +${readyAt.get('B')} ms; ` +
      `logged their broker back: ${returns.join(', ')}`,
    `probe: ${PROBE_MS ?? 'default'} ms; outage ${OUTAGE_MS} ms; ${ackedCount} acknowledged publishes, ` +
      `${sum((r) => r.covered)} (client, message) pairs covered by a missed event, ${sum((r) => r.missedEvents)} missed events`,
    summary('caught up after Redis returned, all', catchUp),
    summary('  node A (stayed connected)', onA.map((r) => r.catchUpMs ?? Infinity)),
    summary('  node B (restarted meanwhile)', onB.map((r) => r.catchUpMs ?? Infinity)),
    summary('  node B: reconnected after Redis returned', onB.map((r) => r.reconnectMs ?? Infinity)),
    summary('caught up after the server was back (the SDK\'s part), all', sdkPart),
    summary('  node B', sdkPart.filter((_, i) => rows[i]?.url !== nodeA.url)),
    `lost ${sum((r) => r.lost)}, duplicates ${sum((r) => r.duplicates)}, out of order ${sum((r) => r.outOfOrder)}; ` +
      `not caught up ${catchUp.filter((v) => v === Infinity).length}; not at the last message ${CLIENTS - done.reached}`,
  ];
  t.diagnostic(`Redis started again at ${new Date(returnedAt).toISOString()}`);
  for (const l of lines) t.diagnostic(l);
  for (const [name, node] of [['A', nodeA], ['B', nodeB]] as const) t.diagnostic(`node ${name} log: ${brokerLog(node.stderr(), returnedAt)}`);
  // The slowest clients' story, for whoever has to find out why.
  for (const r of [...rows].sort((a, b) => (b.catchUpMs ?? Infinity) - (a.catchUpMs ?? Infinity)).slice(0, 3)) {
    t.diagnostic(`slowest: ${r.url} caught up +${r.catchUpMs} ms: ${r.notes.join('; ')}`);
  }

  assert.equal(sum((r) => r.lost), 0, 'no acknowledged message silently lost');
  assert.equal(sum((r) => r.duplicates), 0, 'no duplicate');
  assert.equal(sum((r) => r.outOfOrder), 0, 'in order');
  assert.equal(done.reached, CLIENTS, 'every client delivered the last acknowledged message');
  // Issue 13's bound: every client back and caught up within 3 s (p99) of Redis' return, the node's own return
  // (its Redis reconnect backoff, capped at 1 s) included; and the SDK's part alone, from the moment its server could
  // serve it again, within the same 3 s. Both figures are in docs/reliability.md.
  const fromReturn = [...catchUp].sort((a, b) => a - b);
  assert.ok(quantile(fromReturn, 0.99) <= 3000, `p99 of caught up after Redis returned: ${quantile(fromReturn, 0.99)} ms`);
  const sorted = [...sdkPart].sort((a, b) => a - b);
  assert.ok(quantile(sorted, 0.99) <= 3000, `p99 of caught up after the server was back: ${quantile(sorted, 0.99)} ms`);
  assert.ok(onB.every((r) => r.connects >= 2), 'the restarted node\'s clients did reconnect');
  assert.ok(ackedCount > 100, `a real publishing load (${ackedCount})`);
});
