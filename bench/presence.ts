/**
 * `herald bench presence`: presence on Redis at scale (docs/benchmarks.md "Presence (issue 10)").
 *
 * 1. N /sub members join one presence channel of a Herald on Redis: the join rate (connect to the cluster-wide
 *    `presence_stats` counting all N), the memory it costs (Redis `used_memory` and the server's RSS, per member),
 *    and the time of a count (`POST /api/presence_stats`) and of a listing (`POST /api/presence`).
 * 2. The fan-out rate on a channel with presence on beside the same channel with it off: M subscribers on each,
 *    K messages published as fast as the API takes them, deliveries per second, alternating off/on for R rounds.
 *
 * The bench starts its own redis-server (or uses --redis) and its own `herald serve` (not --dev: two namespaces,
 * `on` with presence and `off` without), and stops both at the end.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { sleep } from './clock.js';
import { BenchUsageError } from './options.js';
import { freePort, healthy, readRss } from './server-process.js';

const HERALD_BIN = fileURLToPath(new URL('../../bin/herald.js', import.meta.url));
const API_KEY = 'bench-presence-api-key-0123456789';
const SECRET = 'bench-presence-secret-0123456789abcdef';
const MARK = '["message"';

export const PRESENCE_USAGE = `usage: herald bench presence [options]

Presence on Redis: N members join one presence channel (join rate, Redis and server memory per member, the
time of presence_stats and presence), then the fan-out rate on a channel with presence on beside one with it off.

  -n, --members N         members of the presence channel                     [10000]
  --fanout-subscribers M  subscribers of each fan-out channel (on and off)    [2000]
  --messages K            messages published per fan-out run                  [200]
  --rounds R              fan-out runs per channel, alternating off / on      [2]
  --count-queries Q       presence_stats calls timed                          [200]
  --redis redis://H:P     use this Redis (else a redis-server is started on a free port)
  --json                  print the result as JSON
`;

interface PresenceBenchOptions {
  members: number;
  fanoutSubscribers: number;
  messages: number;
  rounds: number;
  countQueries: number;
  redisUrl: string | undefined;
  json: boolean;
}

function parse(argv: string[]): PresenceBenchOptions {
  let v;
  try {
    v = parseArgs({
      args: argv,
      strict: true,
      options: {
        members: { type: 'string', short: 'n' },
        'fanout-subscribers': { type: 'string' },
        messages: { type: 'string' },
        rounds: { type: 'string' },
        'count-queries': { type: 'string' },
        redis: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    throw new BenchUsageError(err instanceof Error ? err.message : String(err));
  }
  if (v.help) throw new BenchUsageError('');
  const int = (name: string, raw: string | undefined, dflt: number, min: number, max: number): number => {
    if (raw === undefined) return dflt;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) throw new BenchUsageError(`--${name}: "${raw}" must be a whole number from ${min} to ${max}`);
    return n;
  };
  if (v.redis !== undefined && !/^redis:\/\/[^/]+/.test(v.redis)) throw new BenchUsageError('--redis must be redis://HOST:PORT');
  const o: PresenceBenchOptions = {
    members: int('members', v.members, 10_000, 1, 15_000),
    fanoutSubscribers: int('fanout-subscribers', v['fanout-subscribers'], 2000, 1, 5000),
    messages: int('messages', v.messages, 200, 1, 100_000),
    rounds: int('rounds', v.rounds, 2, 1, 20),
    countQueries: int('count-queries', v['count-queries'], 200, 1, 100_000),
    redisUrl: v.redis,
    json: v.json === true,
  };
  // One process holds every client socket: at most 20,000 descriptors (HELPER-GUIDE), with room to spare.
  if (o.members + 2 * o.fanoutSubscribers > 19_000) throw new BenchUsageError('members + 2 x fanout-subscribers must stay under 19,000 (one process holds them)');
  return o;
}

/** A /sub stream on a raw socket, counting the message lines it gets. */
class Member {
  delivered = 0;
  private tail = '';
  readonly socket: net.Socket;
  readonly ready: Promise<void>;

  constructor(port: number, channel: string) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setEncoding('utf8');
    this.ready = new Promise((resolve, reject) => {
      let head = true;
      this.socket.once('error', reject);
      this.socket.on('data', (chunk: string) => {
        if (head && chunk.includes('\r\n\r\n')) {
          head = false;
          resolve();
        }
        const text = this.tail + chunk;
        for (let at = text.indexOf(MARK); at >= 0; at = text.indexOf(MARK, at + 1)) if (at + MARK.length > this.tail.length) this.delivered++;
        this.tail = text.slice(-(MARK.length - 1));
      });
    });
    this.socket.write(`GET /sub?channel=${encodeURIComponent(channel)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  }
}

async function openMembers(port: number, channel: string, n: number, out: Member[]): Promise<void> {
  for (let i = 0; i < n; i += 200) {
    const batch = Array.from({ length: Math.min(200, n - i) }, () => new Member(port, channel));
    out.push(...batch);
    await Promise.all(batch.map((m) => m.ready));
  }
}

async function api(url: string, call: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}/api/${call}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${API_KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (res.status !== 200) throw new Error(`${call}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

function redisUsedMemory(port: number): number {
  const text = execFileSync('redis-cli', ['-p', String(port), 'info', 'memory'], { encoding: 'utf8' });
  return Number(/^used_memory:(\d+)/m.exec(text)?.[1] ?? NaN);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

async function startRedis(): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    try {
      execFileSync('redis-cli', ['-p', String(port), 'ping'], { stdio: 'pipe' });
      return { port, child };
    } catch {
      await sleep(50);
    }
  }
  child.kill('SIGKILL');
  throw new Error('redis-server did not start');
}

async function startHerald(redisUrl: string): Promise<{ url: string; child: ChildProcess; command: string }> {
  const port = await freePort();
  const args = [HERALD_BIN, 'serve', '--host', '127.0.0.1', '--port', String(port), '--log-level', 'warn', '--broker', redisUrl,
    '--secret', SECRET, '--api-key', API_KEY, '--namespaces', JSON.stringify({ on: { presence: true, anonymous: true }, off: { anonymous: true } })];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 150; i++) {
    if (child.exitCode !== null) break;
    if (await healthy(url)) return { url, child, command: ['node', ...args.map((a) => (a === HERALD_BIN ? 'bin/herald.js' : a))].join(' ') };
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error('herald did not start');
}

/** Publish `k` messages with 16 in flight; resolve when every subscriber has them all. Deliveries per second. */
async function fanOut(url: string, channel: string, subs: Member[], k: number): Promise<number> {
  const before = subs.reduce((s, m) => s + m.delivered, 0);
  const want = before + k * subs.length;
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < k) {
        next++;
        await api(url, 'publish', { channel, data: 'x' });
      }
    }),
  );
  const deadline = Date.now() + 120_000;
  while (subs.reduce((s, m) => s + m.delivered, 0) < want) {
    if (Date.now() > deadline) throw new Error(`fan-out on ${channel}: deliveries missing after 120 s`);
    await sleep(5);
  }
  return (k * subs.length) / ((performance.now() - t0) / 1000);
}

export async function presenceBenchCommand(argv: string[]): Promise<number> {
  let o: PresenceBenchOptions;
  try {
    o = parse(argv);
  } catch (err) {
    if (!(err instanceof BenchUsageError)) throw err;
    if (err.message === '') {
      process.stdout.write(PRESENCE_USAGE);
      return 0;
    }
    process.stderr.write(`herald bench presence: ${err.message}\n${PRESENCE_USAGE}`);
    return 2;
  }
  const log = (line: string): void => void process.stderr.write(`[bench presence] ${line}\n`);
  const children: ChildProcess[] = [];
  const killAll = (): void => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  };
  process.on('exit', killAll);
  const members: Member[] = [];
  try {
    let redisPort: number;
    let redisUrl = o.redisUrl;
    if (redisUrl === undefined) {
      const r = await startRedis();
      children.push(r.child);
      redisPort = r.port;
      redisUrl = `redis://127.0.0.1:${r.port}`;
    } else redisPort = Number(new URL(redisUrl).port || 6379);
    const herald = await startHerald(redisUrl);
    children.push(herald.child);
    const pid = herald.child.pid ?? 0;
    log(`server: ${herald.command}`);
    await sleep(1000);
    const redisBefore = redisUsedMemory(redisPort);
    const rssBefore = readRss(pid) ?? NaN;

    log(`${o.members} members join on:big`);
    const t0 = performance.now();
    await openMembers(Number(new URL(herald.url).port), 'on:big', o.members, members);
    const connectedS = (performance.now() - t0) / 1000;
    for (;;) {
      const stats = await api(herald.url, 'presence_stats', { channel: 'on:big' });
      if (stats['clients'] === o.members) break;
      if (performance.now() - t0 > 300_000) throw new Error(`presence_stats counts ${String(stats['clients'])}, not ${o.members}`);
      await sleep(20);
    }
    const joinedS = (performance.now() - t0) / 1000;
    await sleep(2000);
    const redisBytes = redisUsedMemory(redisPort) - redisBefore;
    const rssBytes = (readRss(pid) ?? NaN) - rssBefore;

    const countMs: number[] = [];
    for (let i = 0; i < o.countQueries; i++) {
      const t = performance.now();
      await api(herald.url, 'presence_stats', { channel: 'on:big' });
      countMs.push(performance.now() - t);
    }
    countMs.sort((a, b) => a - b);
    const listMs: number[] = [];
    let listed = 0;
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      listed = ((await api(herald.url, 'presence', { channel: 'on:big' }))['members'] as unknown[]).length;
      listMs.push(performance.now() - t);
    }
    listMs.sort((a, b) => a - b);

    log(`fan-out: ${o.fanoutSubscribers} subscribers on on:fan and on off:fan`);
    const port = Number(new URL(herald.url).port);
    const on: Member[] = [];
    const off: Member[] = [];
    await openMembers(port, 'off:fan', o.fanoutSubscribers, off);
    await openMembers(port, 'on:fan', o.fanoutSubscribers, on);
    members.push(...on, ...off);
    await sleep(1000);
    const rates: { presence: 'on' | 'off'; deliveriesPerSecond: number }[] = [];
    for (let r = 0; r < o.rounds; r++) {
      for (const [presence, subs, channel] of [['off', off, 'off:fan'], ['on', on, 'on:fan']] as const) {
        const rate = await fanOut(herald.url, channel, subs, o.messages);
        rates.push({ presence, deliveriesPerSecond: Math.round(rate) });
        log(`round ${r + 1}, presence ${presence}: ${Math.round(rate)} deliveries/s`);
      }
    }

    const result = {
      server: herald.command,
      members: o.members,
      connectedSeconds: Number(connectedS.toFixed(2)),
      joinsPerSecond: Math.round(o.members / joinedS),
      redisBytesPerMember: Math.round(redisBytes / o.members),
      serverRssBytesPerMember: Math.round(rssBytes / o.members),
      presenceStatsMs: { p50: Number(percentile(countMs, 0.5).toFixed(2)), p99: Number(percentile(countMs, 0.99).toFixed(2)) },
      presenceListMs: { p50: Number(percentile(listMs, 0.5).toFixed(1)), listed },
      fanOut: { subscribers: o.fanoutSubscribers, messages: o.messages, rounds: rates },
    };
    if (o.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    else {
      const out = [
        `presence on Redis, ${o.members} members of one channel (${herald.command})`,
        `  joins: all connected in ${result.connectedSeconds} s; presence_stats counted all after ${joinedS.toFixed(2)} s: ${result.joinsPerSecond} joins/s`,
        `  memory: Redis ${result.redisBytesPerMember} bytes/member, server RSS ${result.serverRssBytesPerMember} bytes/member (connection included)`,
        `  presence_stats over HTTP: p50 ${result.presenceStatsMs.p50} ms, p99 ${result.presenceStatsMs.p99} ms (${o.countQueries} calls)`,
        `  presence (list of ${listed}) over HTTP: p50 ${result.presenceListMs.p50} ms`,
        `fan-out, ${o.fanoutSubscribers} subscribers, ${o.messages} messages per run:`,
        ...rates.map((r, i) => `  run ${i + 1}: presence ${r.presence}: ${r.deliveriesPerSecond} deliveries/s`),
      ];
      process.stdout.write(out.join('\n') + '\n');
    }
    return 0;
  } finally {
    for (const m of members) m.socket.destroy();
    for (const c of children.reverse()) {
      if (c.exitCode !== null) continue;
      c.kill('SIGTERM');
      await Promise.race([new Promise((r) => c.once('exit', r)), sleep(5000)]);
      if (c.exitCode === null) c.kill('SIGKILL');
    }
    process.off('exit', killAll);
  }
}
