/** `herald bench` options: scenario presets, flags on top, validated once. */
import { parseArgs } from 'node:util';
import type { Transport } from './protocol.js';

export const SCENARIOS = ['idle', 'hold', 'fanout', 'channels', 'churn', 'idle-fanout', 'custom'] as const;
export type Scenario = (typeof SCENARIOS)[number];

/**
 * The server under test speaks Herald's wire formats, Nchan's (raw data lines, POST /pub), or is Socket.IO
 * (socket.io-client subscribers, Herald's POST /api/publish from bench/socketio-server.ts): bench/compare.ts.
 */
export type Target = 'herald' | 'nchan' | 'socketio';

export interface BenchOptions {
  scenario: Scenario;
  /** Whose wire formats the generator speaks. [herald] */
  target: Target;
  /** Every process of a server the caller started (nginx master and workers): CPU and RSS are summed over them. */
  serverPids: number[] | undefined;
  /** Server to load; with `spawn` the bench starts its own and this is ignored. */
  url: string;
  spawn: boolean;
  serverPid: number | undefined;
  /** Servers to spawn (--nodes); more than one needs a Redis broker so that a message reaches every node. */
  nodes: number;
  /** Broker URL the spawned servers get as --broker (--broker, else --redis). */
  broker: string | undefined;
  /** Extra `herald serve` flags for --spawn. */
  serverArgs: string[];
  /** Directory for the spawned server's --cpu-prof profile. */
  cpuProfDir: string | undefined;
  transport: Transport;
  connections: number;
  channels: number;
  workers: number;
  sourceAddresses: number;
  connectConcurrency: number;
  connectTimeoutMs: number;
  settleMs: number;
  /** Rates to run, in messages/s; with findMax, the first is where the search starts. Empty: idle, no publishing. */
  rates: number[];
  findMax: boolean;
  maxSteps: number;
  durationMs: number;
  drainMs: number;
  publishers: number;
  pipeline: number;
  apiKey: string | undefined;
  /** Publish with Redis PUBLISH on this server instead of the HTTP API; a spawned server gets it as --broker. */
  redisUrl: string | undefined;
  maxP99Ms: number;
  /** Fresh connections opened (and closed again) per second while each rate step publishes; 0: none. */
  churnPerSecond: number;
  /** How long each churn connection stays open once live. */
  churnHoldMs: number;
  json: boolean;
  quiet: boolean;
  /** Hard bound on the whole run: after it everything is stopped and what was measured is reported. */
  maxTimeMs: number;
  /** idle-fanout: idle connections opened on other channels between the hot channel's rows (bench/idle-fanout.ts). */
  idle: number;
  /** idle-fanout: the channels the idle connections subscribe (idle connection i: channel i % idleChannels). */
  idleChannels: number;
  /** idle-fanout: times the idle connections are opened; rows run 0, N, 0 (, N, 0 ...). */
  rounds: number;
}

const PRESETS: Record<Scenario, Partial<BenchOptions>> = {
  idle: { connections: 15_000, channels: 15_000, rates: [], settleMs: 5000 },
  // The machine's worth of clients: hold N idle subscribers of one channel (spread over client processes and
  // 127.0.0.x source addresses), publish ONE message and check that every connection got it once. The step is
  // judged on loss and duplicates only: how fast one message reaches 100,000 sockets is not what it measures.
  hold: { connections: 20_000, channels: 1, rates: [1], durationMs: 1000, drainMs: 15_000, settleMs: 5000, maxP99Ms: 60_000, sourceAddresses: 8 },
  fanout: { connections: 10_000, channels: 1, rates: [10], findMax: true, durationMs: 10_000 },
  channels: { connections: 10_000, channels: 10_000, rates: [20_000], findMax: true, durationMs: 10_000, publishers: 8 },
  // Connects and disconnects while publishing: 10,000 held subscribers on 1,000 channels get 1,000 msg/s (10,000
  // deliveries/s) while 1,000 fresh connections a second come up on the same channels and close 1 s later.
  churn: { connections: 10_000, channels: 1_000, rates: [1000], durationMs: 10_000, churnPerSecond: 1000, churnHoldMs: 1000 },
  // Fan-out cost against idle connections elsewhere: a channel of 100 subscribers at 100 msg/s (10,000 deliveries/s)
  // measured with no idle connection, with N idle ones on other channels, and with none again, on one server.
  'idle-fanout': { connections: 100, channels: 1, rates: [100], durationMs: 10_000, drainMs: 5000, settleMs: 5000, sourceAddresses: 8, idle: 10_000 },
  custom: {},
};

const BASE: BenchOptions = {
  scenario: 'custom',
  target: 'herald',
  serverPids: undefined,
  url: 'http://127.0.0.1:8080',
  spawn: false,
  serverPid: undefined,
  nodes: 1,
  broker: undefined,
  serverArgs: [],
  cpuProfDir: undefined,
  transport: 'sub',
  connections: 100,
  channels: 10,
  workers: 0,
  sourceAddresses: 0,
  connectConcurrency: 256,
  connectTimeoutMs: 30_000,
  settleMs: 2000,
  rates: [100],
  findMax: false,
  maxSteps: 6,
  durationMs: 5000,
  drainMs: 3000,
  publishers: 4,
  pipeline: 64,
  apiKey: undefined,
  redisUrl: undefined,
  maxP99Ms: 1000,
  churnPerSecond: 0,
  churnHoldMs: 1000,
  json: false,
  quiet: false,
  maxTimeMs: 300_000,
  idle: 0,
  idleChannels: 0,
  rounds: 1,
};

export const BENCH_USAGE = `usage: herald bench [idle|hold|fanout|channels|churn|idle-fanout] [options]

  herald bench --compare [--scale small|full] ...   Herald and Nchan side by side (herald bench --compare --help)
  herald bench presence [-n N] ...                  presence on Redis: join rate, memory, count time, fan-out
                                                    with presence on and off (herald bench presence --help)

scenarios (presets; any flag overrides them):
  idle       15,000 /sub connections on 15,000 channels, no publishing: connections held, server RSS per connection
  hold       20,000 /sub connections on one channel over 8 source addresses, one message published: every
             connection must get it once; server RSS summed over every process (a --workers primary and its
             workers) per connection. 100,000: -n 100000 --server-arg=--workers=6 (docs/benchmarks.md)
  fanout     10,000 subscribers of one channel; --find-max from 10 msg/s, 10 s per rate
  channels   10,000 subscribers on 10,000 channels, HTTP API publishing; --find-max from 20,000 msg/s, 10 s per rate
  churn      10,000 subscribers on 1,000 channels at 1,000 msg/s for 10 s while 1,000 connections/s come up on the
             same channels and close 1 s later: held deliveries lost and late (> --max-p99-ms), churn failures
  idle-fanout  a channel of -n 100 subscribers at --rate 100 msg/s for 10 s, measured with no idle connection, then
             with --idle N idle connections on other channels (opened over client processes and 8 source addresses),
             then with none again (--rounds R repeats N, 0): deliveries/s, latency, server CPU per delivery per row.
             Needs --spawn. 100,000: --idle 100000 --server-arg=--workers=6 (docs/benchmarks.md)

server:
  --spawn                 start "node bin/herald.js serve --dev" on a free loopback port, stop it at the end
  --nodes K               with --spawn: start K servers on one Redis broker; connection i goes to node i % K,
                          publishing connections round-robin over the nodes, RSS and CPU per node and summed [1]
  --broker redis://H:P    with --spawn: the spawned servers' --broker (needed for --nodes above 1; --redis implies it)
  --server-arg ARG        extra flag for the spawned server (repeatable), e.g. --server-arg=--heartbeat-seconds=60
  --cpu-prof DIR          run the spawned server under node --cpu-prof, profile written to DIR
  --url URL               server to load when not spawning (loopback only)   [http://127.0.0.1:8080]
  --server-pid PID        pid of that server, for RSS per connection

connections:
  -n, --connections N     streaming connections                               [100]
  --channels C            connection i subscribes channel i % C                [10]
  --transport sub|sse|ws|pusher  streaming endpoint (ws: /ws with URL credentials;
                          pusher: /app/app-key, the --dev app)                [sub]
  --workers W             subscriber processes (at most 10,000 connections each) [ceil(N/7500)]
  --source-addresses K    spread connections over 127.0.0.1 .. 127.0.0.K       [1, or 4 above 1,000]
  --connect-concurrency   connection attempts in flight per worker             [256]
  --settle S              seconds to wait once connected, before measuring RSS [2]

publishing:
  --rate R[,R2,...]       messages/s over all channels; a list runs each rate in turn (no search) [100]
  --find-max              step the rate (doubling, then bisecting) to find the highest rate held
  --max-steps N           rate steps at most with --find-max                   [6]
  --duration S            seconds per rate                                     [5]
  --drain S               seconds to wait for late deliveries after each rate  [3]
  --publishers P          keep-alive publishing connections                    [4]
  --pipeline D            requests in flight per publishing connection         [64]
  --api-key KEY           publish API key (not needed against --dev)
  --redis redis://H:P     publish with Redis PUBLISH instead of the HTTP API (a spawned server gets --broker URL)
  --max-p99-ms MS         p99 latency above which a rate is not held           [1000]
  --churn R               open R fresh connections per second during each step (closed after --churn-hold) [0]
  --churn-hold S          seconds each churn connection stays open once live  [1]

idle-fanout:
  --idle N                idle connections opened between the rows            [10000]
  --idle-channels C       channels they subscribe (idle connection i: i % C)   [N: one each]
  --rounds R              times the idle connections are opened (rows 0, N, 0 ...) [1]
  --workers W             here: the idle connections' client processes        [ceil(N/7500)]

output:
  --json                  print the result as JSON on stdout
  --quiet                 no progress lines on stderr
  --max-time S            stop everything after S seconds and report what was measured [300]

A rate is held when nothing is lost or duplicated, p99 publish-to-delivery <= --max-p99-ms, every scheduled
message was published without error, and deliveries keep pace with the offered rate.
`;

export class BenchUsageError extends Error {}

function num(name: string, raw: string | undefined, min: number, max: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) throw new BenchUsageError(`--${name}: "${raw}" must be a number from ${min} to ${max}`);
  return n;
}

export function parseBenchArgs(argv: string[], env: Record<string, string | undefined> = {}): BenchOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        spawn: { type: 'boolean' },
        'server-arg': { type: 'string', multiple: true },
        nodes: { type: 'string' },
        broker: { type: 'string' },
        'cpu-prof': { type: 'string' },
        url: { type: 'string' },
        'server-pid': { type: 'string' },
        connections: { type: 'string', short: 'n' },
        channels: { type: 'string' },
        transport: { type: 'string' },
        workers: { type: 'string' },
        'source-addresses': { type: 'string' },
        'connect-concurrency': { type: 'string' },
        settle: { type: 'string' },
        rate: { type: 'string', multiple: true },
        'find-max': { type: 'boolean' },
        'max-steps': { type: 'string' },
        duration: { type: 'string' },
        drain: { type: 'string' },
        publishers: { type: 'string' },
        pipeline: { type: 'string' },
        'api-key': { type: 'string' },
        redis: { type: 'string' },
        'max-p99-ms': { type: 'string' },
        churn: { type: 'string' },
        'churn-hold': { type: 'string' },
        json: { type: 'boolean' },
        quiet: { type: 'boolean' },
        'max-time': { type: 'string' },
        idle: { type: 'string' },
        'idle-channels': { type: 'string' },
        rounds: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new BenchUsageError(err instanceof Error ? err.message.replace(/\. To specify.*$/s, '') : String(err));
  }
  const { values: v, positionals } = parsed;
  if (v.help) throw new BenchUsageError('');
  if (positionals.length > 1) throw new BenchUsageError(`one scenario at most, got: ${positionals.join(' ')}`);
  const scenario = (positionals[0] ?? 'custom') as Scenario;
  if (!SCENARIOS.includes(scenario)) throw new BenchUsageError(`unknown scenario "${scenario}" (${SCENARIOS.join(', ')})`);

  const o: BenchOptions = { ...BASE, ...PRESETS[scenario], scenario };
  if (v.spawn) o.spawn = true;
  if (v['server-arg']) o.serverArgs = v['server-arg'];
  if (v['cpu-prof'] !== undefined) o.cpuProfDir = v['cpu-prof'];
  if (v.url !== undefined) o.url = v.url;
  o.serverPid = num('server-pid', v['server-pid'], 1, 2 ** 31) ?? o.serverPid;
  o.connections = num('connections', v.connections, 1, 1_000_000) ?? o.connections;
  o.channels = num('channels', v.channels, 1, 1_000_000) ?? o.channels;
  if (v.transport !== undefined) {
    if (v.transport !== 'sub' && v.transport !== 'sse' && v.transport !== 'ws' && v.transport !== 'pusher') {
      throw new BenchUsageError('--transport must be sub, sse, ws or pusher');
    }
    o.transport = v.transport;
  }
  o.workers = num('workers', v.workers, 1, 64) ?? o.workers;
  o.sourceAddresses = num('source-addresses', v['source-addresses'], 1, 254) ?? o.sourceAddresses;
  o.connectConcurrency = num('connect-concurrency', v['connect-concurrency'], 1, 10_000) ?? o.connectConcurrency;
  o.settleMs = (num('settle', v.settle, 0, 600) ?? o.settleMs / 1000) * 1000;
  if (v.rate) {
    o.rates = v.rate.flatMap((r) => r.split(',')).filter((r) => r.trim() !== '').map((r) => num('rate', r.trim(), 0.1, 10_000_000)!);
  }
  // A list of rates is run as given, even in a scenario that searches by default.
  if (o.rates.length > 1 && v.rate) o.findMax = false;
  if (v['find-max']) o.findMax = true;
  o.maxSteps = num('max-steps', v['max-steps'], 1, 50) ?? o.maxSteps;
  o.durationMs = (num('duration', v.duration, 0.1, 3600) ?? o.durationMs / 1000) * 1000;
  o.drainMs = (num('drain', v.drain, 0, 600) ?? o.drainMs / 1000) * 1000;
  o.publishers = num('publishers', v.publishers, 1, 256) ?? o.publishers;
  o.pipeline = num('pipeline', v.pipeline, 1, 100_000) ?? o.pipeline;
  o.apiKey = v['api-key'] ?? env['HERALD_API_KEY'] ?? o.apiKey;
  if (v.redis !== undefined) {
    if (!/^redis:\/\/[^/]+/.test(v.redis)) throw new BenchUsageError('--redis must be redis://HOST:PORT (standalone Redis)');
    o.redisUrl = v.redis;
  }
  o.nodes = num('nodes', v.nodes, 1, 16) ?? o.nodes;
  if (v.broker !== undefined) {
    if (!o.spawn) throw new BenchUsageError('--broker needs --spawn (it is the spawned servers\' --broker)');
    if (!/^redis:\/\/[^/]+/.test(v.broker)) throw new BenchUsageError('--broker must be redis://HOST:PORT (standalone Redis)');
    o.broker = v.broker;
  } else if (o.spawn) o.broker = o.redisUrl;
  if (o.broker !== undefined) o.serverArgs = ['--broker', o.broker, ...o.serverArgs];
  if (o.nodes > 1) {
    if (!o.spawn) throw new BenchUsageError('--nodes needs --spawn (the bench starts the nodes itself)');
    // On the memory broker each node would only deliver its own publishes: most deliveries would be "lost".
    if (o.broker === undefined) throw new BenchUsageError('--nodes above 1 needs --broker redis://H:P (or --redis)');
    if (o.cpuProfDir !== undefined) throw new BenchUsageError('--cpu-prof profiles one server: not with --nodes');
  }
  o.maxP99Ms = num('max-p99-ms', v['max-p99-ms'], 1, 3_600_000) ?? o.maxP99Ms;
  o.churnPerSecond = num('churn', v.churn, 0, 100_000) ?? o.churnPerSecond;
  o.churnHoldMs = (num('churn-hold', v['churn-hold'], 0, 600) ?? o.churnHoldMs / 1000) * 1000;
  if (o.churnPerSecond > 0 && o.nodes > 1) throw new BenchUsageError('--churn loads one server: not with --nodes');
  if (v.json) o.json = true;
  if (v.quiet) o.quiet = true;
  o.maxTimeMs = (num('max-time', v['max-time'], 1, 86_400) ?? o.maxTimeMs / 1000) * 1000;

  if (scenario === 'idle-fanout') {
    o.idle = num('idle', v.idle, 0, 1_000_000) ?? o.idle;
    o.idleChannels = num('idle-channels', v['idle-channels'], 1, 1_000_000) ?? Math.max(1, o.idle);
    o.rounds = num('rounds', v.rounds, 1, 20) ?? o.rounds;
    if (!o.spawn) throw new BenchUsageError('idle-fanout needs --spawn (it measures the server\'s CPU and stops it)');
    if (o.nodes > 1) throw new BenchUsageError('idle-fanout loads one server: not with --nodes');
    if (o.connections > 10_000) throw new BenchUsageError('idle-fanout: -n (the hot channel\'s subscribers) at most 10,000');
    if (o.workers === 0) o.workers = Math.max(1, Math.ceil(o.idle / 7500));
    if (Math.ceil(o.idle / o.workers) > 10_000) {
      throw new BenchUsageError(`--workers ${o.workers}: at most 10,000 idle connections per client process`);
    }
  } else if (v.idle !== undefined || v['idle-channels'] !== undefined || v.rounds !== undefined) {
    throw new BenchUsageError('--idle, --idle-channels and --rounds belong to the idle-fanout scenario');
  }
  if (o.workers === 0) o.workers = Math.max(1, Math.ceil(o.connections / 7500));
  if (scenario !== 'idle-fanout' && Math.ceil(o.connections / o.workers) > 10_000) {
    throw new BenchUsageError(`--workers ${o.workers}: at most 10,000 connections per worker (a process may hold 20,000 descriptors)`);
  }
  if (o.sourceAddresses === 0) o.sourceAddresses = o.connections > 1000 ? 4 : 1;
  if (o.findMax && o.rates.length === 0) throw new BenchUsageError('--find-max needs a starting --rate');
  if (o.cpuProfDir !== undefined && !o.spawn) throw new BenchUsageError('--cpu-prof needs --spawn');
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new BenchUsageError(`--url: "${o.url}" is not a URL`);
  }
  if (url.protocol !== 'http:') throw new BenchUsageError('--url must be http://');
  if (!o.spawn && !isLoopback(url.hostname)) throw new BenchUsageError('--url: the bench only loads servers on loopback');
  return o;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '[::1]' || host === '::1';
}
