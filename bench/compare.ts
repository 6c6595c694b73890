/**
 * `herald bench --compare`: the same scenarios, one after another, against Herald and against Nchan (nginx-light +
 * libnginx-mod-nchan, bench/nchan.conf, two workers), each server started and stopped by the harness, with the
 * same load generator (bench/subscriber.ts, bench/publisher.ts speak both servers' wire formats). Writes a Markdown
 * table and an SVG chart (--out PREFIX → PREFIX.md, PREFIX.svg, PREFIX.json). docs/benchmarks.md has the command.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { BenchUsageError, parseBenchArgs, type BenchOptions, type Target } from './options.js';
import type { Transport } from './protocol.js';
import { runBench, type BenchResult } from './run.js';
import { nchanInstalled, descendants, startNchan, type RunningServer } from './nchan-server.js';
import { spawnServer } from './server-process.js';
import { startSocketIo } from './socketio-process.js';
import { compareChart } from './compare-chart.js';

export type CompareScenario = 'idle' | 'fanout' | 'channels' | 'churn';
const SCENARIO_NAMES: CompareScenario[] = ['idle', 'fanout', 'channels', 'churn'];

/**
 * Herald as one process, Herald on workers (`--workers N`, both cores), Nchan, and Socket.IO 4 on two cluster
 * workers (bench/socketio-server.ts; its clients speak WebSocket, so it runs in the /ws rows only).
 */
export type ServerName = 'herald' | 'herald-workers' | 'nchan' | 'socketio';
const SERVER_NAMES: ServerName[] = ['herald', 'herald-workers', 'nchan', 'socketio'];

/** One cell of the comparison: a server, a scenario and a transport. */
export interface CompareCase {
  server: ServerName;
  scenario: CompareScenario;
  transport: Transport;
  connections: number;
  result?: BenchResult;
  error?: string;
}

/** Scenario sizes: `full` is issue 8's (the lead runs it on a quiet machine); `small` checks the harness. */
const SCALES = {
  full: {
    idle: [15_000, 50_000, 100_000],
    fanout: { n: 10_000, args: ['--find-max', '--rate', '10', '--duration', '5'] },
    channels: { n: 10_000, args: ['--find-max', '--rate', '20000', '--duration', '5'] },
    // 10,000 held on 1,000 channels at 1,000 msg/s while 1,000 connections/s come and go (bench churn's preset).
    churn: { n: 10_000, args: ['--channels', '1000', '--rate', '1000', '--churn', '1000', '--duration', '10'] },
  },
  small: {
    idle: [300],
    fanout: { n: 300, args: ['--rate', '5,20', '--max-steps', '2', '--duration', '2', '--drain', '2'] },
    channels: { n: 300, args: ['--rate', '300,1000', '--max-steps', '2', '--duration', '2', '--drain', '2'] },
    churn: { n: 300, args: ['--channels', '30', '--rate', '100', '--churn', '50', '--duration', '3', '--drain', '2'] },
  },
} as const;

export const COMPARE_USAGE = `usage: herald bench --compare [--servers herald,herald-workers,nchan,socketio] [--scenarios idle,fanout,channels]
                     [--transports sub,sse,ws] [--scale small|full] [--workers-herald N] [--out PREFIX] [--plan]

Runs each scenario against each server, starting and stopping the servers itself: herald is one process,
herald-workers is herald serve --workers N (--workers-herald, default 2), nchan is bench/nchan.conf (two workers),
socketio is Socket.IO 4 on two cluster workers with socket.io-client subscribers (the /ws rows only). --scale full is issue 8's
(idle 15k/50k/100k, 10,000 subscribers of one channel and 10,000 channels x 1, rates stepped up until not held);
churn: 10,000 held on 1,000 channels at 1,000 msg/s while 1,000 connections/s come and go. small (the default)
only checks the harness end to end, in a few minutes. The duration estimate is printed first; --plan prints the
cases and exits. --out writes PREFIX.md, PREFIX.svg and PREFIX.json.
`;

export async function compareCommand(argv: string[]): Promise<number> {
  const { values: v } = parseArgs({
    args: argv,
    strict: true,
    options: {
      compare: { type: 'boolean' },
      servers: { type: 'string' },
      scenarios: { type: 'string' },
      transports: { type: 'string' },
      scale: { type: 'string' },
      'workers-herald': { type: 'string' },
      out: { type: 'string' },
      plan: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) {
    process.stdout.write(COMPARE_USAGE);
    return 0;
  }
  const servers = list(v.servers ?? SERVER_NAMES.join(','), SERVER_NAMES) as ServerName[];
  const scenarios = list(v.scenarios ?? SCENARIO_NAMES.join(','), SCENARIO_NAMES) as CompareScenario[];
  const transports = list(v.transports ?? 'sub,sse,ws', ['sub', 'sse', 'ws']) as Transport[];
  const scale = v.scale ?? 'small';
  if (scale !== 'small' && scale !== 'full') throw new BenchUsageError(`--scale: "${scale}" is not small or full`);
  const heraldWorkers = v['workers-herald'] ?? '2';
  if (!/^[1-9]\d*$/.test(heraldWorkers)) throw new BenchUsageError(`--workers-herald: "${heraldWorkers}" is not a count`);
  if (servers.includes('nchan') && !nchanInstalled()) {
    process.stderr.write('herald bench --compare: Nchan is not installed (apt-get install nginx-light libnginx-mod-nchan)\n');
    return 2;
  }
  const progress = (line: string): void => void process.stderr.write(`[compare] ${line}\n`);
  const cases = planCases(servers, scenarios, transports, scale);
  progress(`${cases.length} cases at scale ${scale}: about ${Math.ceil(estimateSeconds(cases, scale) / 60)} minutes ` +
    `(scale full, every server, scenario and transport: about ${Math.ceil(estimateSeconds(planCases(SERVER_NAMES, SCENARIO_NAMES, ['sub', 'sse', 'ws'], 'full'), 'full') / 60)} minutes)`);
  if (v.plan) {
    for (const c of cases) process.stdout.write(`${c.server} ${c.scenario} /${c.transport} ${c.connections}\n`);
    return 0;
  }
  const controller = new AbortController();
  const running = new Set<RunningServer>();
  const onSignal = (): void => controller.abort(new Error('interrupted'));
  const onExit = (): void => {
    for (const s of running) s.killNow();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.on('exit', onExit);
  const startedAt = new Date().toISOString();
  try {
    for (const c of cases) {
      if (controller.signal.aborted) break;
      progress(`${c.server} ${c.scenario} /${c.transport} (${c.connections} connections)`);
      let server: RunningServer | undefined;
      try {
        server = await startServer(c.server, heraldWorkers);
        running.add(server);
        const o = optionsFor(c, scale, server);
        c.result = await runBench(o, (line) => progress(`  ${line}`), controller.signal);
      } catch (err) {
        c.error = err instanceof Error ? err.message : String(err);
        progress(`  failed: ${c.error}`);
      } finally {
        if (server) {
          await server.stop();
          running.delete(server);
        }
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
  }
  const md = compareTable(cases, { startedAt, scale, argv });
  process.stdout.write(md);
  if (v.out !== undefined) {
    writeFileSync(`${v.out}.md`, md);
    writeFileSync(`${v.out}.svg`, compareChart(cases, `herald bench --compare --scale ${scale}, ${startedAt.slice(0, 16)} UTC`));
    writeFileSync(`${v.out}.json`, JSON.stringify(cases, null, 2) + '\n');
    progress(`wrote ${v.out}.md, ${v.out}.svg, ${v.out}.json`);
  }
  return cases.some((c) => c.error !== undefined) ? 1 : 0;
}

function list(raw: string, allowed: string[]): string[] {
  const items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const i of items) if (!allowed.includes(i)) throw new BenchUsageError(`"${i}" is not one of ${allowed.join(', ')}`);
  return items;
}

export function planCases(servers: ServerName[], scenarios: CompareScenario[], transports: Transport[], scale: 'small' | 'full'): CompareCase[] {
  const s = SCALES[scale];
  const out: CompareCase[] = [];
  for (const scenario of scenarios) {
    for (const transport of transports) {
      const sizes: readonly number[] = scenario === 'idle' ? s.idle : [s[scenario].n];
      for (const connections of sizes) {
        for (const server of servers) if (server !== 'socketio' || transport === 'ws') out.push({ server, scenario, transport, connections });
      }
    }
  }
  return out;
}

function optionsFor(c: CompareCase, scale: 'small' | 'full', server: RunningServer): BenchOptions {
  const s = SCALES[scale];
  const extra = c.scenario === 'idle' ? [] : [...s[c.scenario].args];
  const o = parseBenchArgs([c.scenario, '--url', server.url, '--transport', c.transport, '-n', String(c.connections),
    ...(c.scenario === 'channels' ? ['--channels', String(c.connections)] : []),
    // The churn runs (up to 1,000 TIME_WAITs a second) spread over 8 source addresses.
    ...(c.scenario === 'churn' ? ['--source-addresses', '8'] : []),
    ...(c.scenario === 'idle' ? ['--channels', String(c.connections), '--settle', scale === 'small' ? '1' : '5'] : []),
    ...extra, '--quiet']);
  o.target = targetOf(c.server);
  // Read at each measurement: nginx's workers (and Herald's, with --workers) are the server's CPU and memory too.
  o.serverPids = server.pids();
  return o;
}

/** Whose wire formats a server speaks. */
export function targetOf(server: ServerName): Target {
  return server === 'nchan' ? 'nchan' : server === 'socketio' ? 'socketio' : 'herald';
}

function startServer(server: ServerName, heraldWorkers: string): Promise<RunningServer> {
  switch (server) {
    case 'nchan':
      return startNchan();
    case 'socketio':
      return startSocketIo(2);
    case 'herald':
      return startHerald('1');
    case 'herald-workers':
      return startHerald(heraldWorkers);
  }
}

/** Herald as `herald serve --dev --workers N`, every process of it (primary and workers) measured. */
async function startHerald(workers: string): Promise<RunningServer> {
  const s = await spawnServer(['--workers', workers], []);
  return {
    name: 'herald',
    url: s.url,
    command: s.command,
    pids: () => [s.pid, ...descendants(s.pid)],
    stop: () => s.stop(),
    killNow: () => s.killNow(),
  };
}

/**
 * Rough wall time of `cases`, in seconds: start, GC and stop, connecting (about 1 ms a connection for the raw-socket
 * generator, 3 ms for socket.io-client on this 2-core machine), settling, and each rate step with its drain
 * (small: calibrated on a 4 min 48 s run of its 40 cases on the shared machine).
 */
export function estimateSeconds(cases: CompareCase[], scale: 'small' | 'full'): number {
  const t = scale === 'full'
    ? { overheadS: 8, settleS: 7, stepS: 5 + 3 + 2, rateSteps: 6, churnS: 10 + 3 + 2 }
    : { overheadS: 3, settleS: 1, stepS: 3, rateSteps: 2, churnS: 5 };
  let total = 0;
  for (const c of cases) {
    const connectS = (c.connections * (c.server === 'socketio' ? 3 : 1)) / 1000;
    const workS = c.scenario === 'idle' ? t.settleS : c.scenario === 'churn' ? t.churnS : t.rateSteps * t.stepS;
    total += t.overheadS + connectS + workS;
  }
  return total;
}

const KB = 1024;
const MB = 1024 * 1024;

/** The comparison as Markdown: one row per scenario and transport, one column per server. */
export function compareTable(cases: CompareCase[], meta: { startedAt: string; scale: string; argv: string[] }): string {
  const servers = [...new Set(cases.map((c) => c.server))];
  const rows = new Map<string, Map<ServerName, CompareCase>>();
  for (const c of cases) {
    const key = `${c.scenario} /${c.transport} ${c.connections.toLocaleString('en-US')}`;
    const row = rows.get(key) ?? new Map<ServerName, CompareCase>();
    row.set(c.server, c);
    rows.set(key, row);
  }
  const first = cases.find((c) => c.result)?.result;
  const lines = [
    `Side by side, ${meta.startedAt} (scale ${meta.scale}); machine: ${first ? `${first.machine.nproc} cores (${first.machine.cpu}), node ${first.machine.node}, load average ${first.machine.loadAverage.join(' ')} at the first case` : '?'}.`,
    `Command: \`node bin/herald.js bench ${meta.argv.join(' ')}\`. Server CPU and RSS are summed over all its processes; "gen" is the load generator's CPU (subscriber workers + publisher) in % of one core.`,
    '',
    `| scenario | ${servers.join(' | ')} |`,
    `|---|${servers.map(() => '---').join('|')}|`,
  ];
  for (const [key, row] of rows) lines.push(`| ${key} | ${servers.map((s) => cell(row.get(s))).join(' | ')} |`);
  return lines.join('\n') + '\n';
}

function cell(c: CompareCase | undefined): string {
  if (!c) return '';
  if (c.error !== undefined || !c.result) return `failed: ${c.error ?? 'no result'}`;
  const r = c.result;
  const held = `${r.connections.held.toLocaleString('en-US')}/${r.connections.requested.toLocaleString('en-US')} held`;
  if (c.scenario === 'idle') {
    const per = r.server.rssPerConnectionBytes;
    return `${held}, ${per === undefined ? '?' : (per / KB).toFixed(1)} KB/conn`;
  }
  if (c.scenario === 'churn') {
    const s = r.steps[0];
    if (!s) return `${held}; no step ran`;
    const ch = s.churn;
    return `${s.held ? '**held**' : 'not held'}: lost ${s.deliveries.lost}, late ${s.deliveries.late} of ${s.deliveries.expected.toLocaleString('en-US')}; ` +
      `churn ${ch?.livePerSecond ?? '?'}/s of ${ch?.offeredPerSecond ?? '?'}/s (${ch?.failed ?? '?'} failed); ` +
      `CPU server ${s.cpuPercent.server ?? '?'} % gen ${s.cpuPercent.workers + s.cpuPercent.publisher} %; ` +
      `RSS ${s.serverRssBytes === undefined ? '?' : (s.serverRssBytes / MB).toFixed(0)} MB`;
  }
  const best = bestStep(r);
  if (!best) return `${held}; no rate held`;
  const cpu = best.cpuPercent;
  return `**${best.rate} msg/s** held (p99 ${Math.round(best.latencyMs.p99)} ms, ${best.serverCpuUsPerDelivery ?? '?'} µs/delivery, CPU server ${cpu.server ?? '?'} % gen ${cpu.workers + cpu.publisher} %)`;
}

/** The highest rate held, or undefined. */
export function bestStep(r: BenchResult): BenchResult['steps'][number] | undefined {
  let best: BenchResult['steps'][number] | undefined;
  for (const s of r.steps) if (s.held && (!best || s.rate > best.rate)) best = s;
  return best;
}
