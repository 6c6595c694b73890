/**
 * One bench run: (spawn the server) → measure its RSS → hold N connections → measure RSS again → publish at each
 * rate (or search for the highest rate held) → stop everything. Every phase is bounded in time; `signal` (Ctrl-C,
 * --max-time) cuts the run short and what was measured so far is still returned.
 */
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { sleep } from './clock.js';
import type { BenchOptions } from './options.js';
import { Publisher, type PublishResult } from './publisher.js';
import { RedisPublisher } from './redis-publisher.js';
import { machineMemory, processTree, treeCpuSeconds, treeRss, type ProcessRss } from './process-tree.js';
import { readCpuSeconds, spawnServer, type SpawnedServer } from './server-process.js';
import { WorkerSet, type MergedStats } from './workers.js';

export interface StepResult {
  rate: number;
  durationS: number;
  published: { scheduled: number; sent: number; ok: number; failed: number; unsent: number; errors: Record<string, number> };
  deliveries: { expected: number; received: number; lost: number; duplicates: number; reordered: number; stale: number; perSecond: number;
    /** Received later than --max-p99-ms after they were scheduled. */
    late: number };
  /** With --churn: the fresh connections opened while publishing (each closed again after --churn-hold). */
  churn?: { offeredPerSecond: number; attempted: number; live: number; failed: number; livePerSecond: number; errors: Record<string, number> };
  /** Server RSS (summed over its processes) at the end of the step, when its pids are known. */
  serverRssBytes?: number;
  latencyMs: { p50: number; p99: number; max: number; mean: number };
  connectionsHeld: number;
  droppedDuringStep: number;
  disconnectFrames: number;
  /** `reload` notices the subscribers received (the server admitting missed messages). */
  reloadNotices: number;
  /**
   * CPU used while publishing and draining, in % of one core: the server (when its pid is known), the subscriber
   * workers together, and this process (the publisher). Tells whether the generator could be the bottleneck.
   */
  cpuPercent: { server?: number; workers: number; publisher: number };
  /**
   * Server CPU time per delivery (µs): on a busy machine the server waits for a core, so rates understate what it
   * can do, but its CPU cost per delivery holds; 1e6 / this is the deliveries/s one free core would allow.
   */
  serverCpuUsPerDelivery?: number;
  held: boolean;
  /** Why the rate was not held. */
  why: string[];
}

export interface BenchResult {
  startedAt: string;
  machine: { nproc: number; cpu: string; memoryBytes: number; node: string; loadAverage: number[] };
  options: BenchOptions;
  server: { pid?: number; command?: string; rssBeforeBytes?: number; rssHeldBytes?: number; rssPerConnectionBytes?: number;
    /** With --spawn: after a full GC in the server (before and after connecting), so uncollected garbage is not counted. */
    rssHeldAfterGcBytes?: number; rssPerConnectionAfterGcBytes?: number; cpuProfDir?: string;
    /** All of the server's RSS held (every process's start-up footprint included) divided by the connections held. */
    rssTotalPerConnectionBytes?: number;
    /**
     * The memory the server takes from the machine with the connections held (after a full GC when spawned):
     * every process's own pages summed, the shared file pages (the node binary) counted once (machineMemory), and
     * that per connection held, start-up footprints included.
     */
    machineHeldBytes?: number; machinePerConnectionBytes?: number;
    /**
     * With --nodes K above 1: each spawned node. The RSS fields above are then the sums over the nodes (what the
     * cluster costs per connection), `pid` and `command` those of the first node.
     */
    nodes?: NodeRss[];
    /** Every server process's RSS (summed above): primary and workers of `herald serve --workers N`. */
    processes?: ProcessRssByPhase };
  connections: { requested: number; held: number; failed: number; dropped: number; errors: Record<string, number>; connectSeconds: number };
  steps: StepResult[];
  maxHeldRate?: number;
  stoppedEarly?: string;
}

export type RssField = 'rssBeforeBytes' | 'rssHeldBytes' | 'rssHeldAfterGcBytes';
/** Each server process's RSS at each measurement (a --workers server: the primary first, then its workers). */
export type ProcessRssByPhase = { [F in RssField]?: ProcessRss[] };

export interface NodeRss {
  pid: number;
  url: string;
  rssBeforeBytes?: number;
  rssHeldBytes?: number;
  rssHeldAfterGcBytes?: number;
}

export type Progress = (line: string) => void;

export async function runBench(o: BenchOptions, progress: Progress, signal: AbortSignal, hooks: CleanupHooks = {}): Promise<BenchResult> {
  const result: BenchResult = {
    startedAt: new Date().toISOString(),
    machine: {
      nproc: availableParallelism(), cpu: cpus()[0]?.model ?? 'unknown', memoryBytes: totalmem(), node: process.version,
      loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
    },
    options: o,
    server: {},
    connections: { requested: o.connections, held: 0, failed: 0, dropped: 0, errors: {}, connectSeconds: 0 },
    steps: [],
  };
  // Every server this run spawned, pushed as soon as it is up so that cleanup (finally, killNow) reaches it.
  const servers: SpawnedServer[] = [];
  let workers: WorkerSet | undefined;
  let publisher: Publisher | RedisPublisher | undefined;
  hooks.killNow = () => {
    workers?.killNow();
    for (const s of servers) s.killNow();
  };
  try {
    let url = new URL(o.url);
    let pids: number[] = o.serverPids ?? (o.serverPid !== undefined ? [o.serverPid] : []);
    if (o.spawn) {
      const nodeArgs = o.cpuProfDir !== undefined ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProfDir] : [];
      // One after the other: each picks its own free port, and a failure leaves only started ones to stop.
      for (let k = 0; k < o.nodes && !signal.aborted; k++) {
        const server = await spawnServer(o.serverArgs, nodeArgs);
        servers.push(server);
        progress(`server${o.nodes > 1 ? ` ${k + 1}/${o.nodes}` : ''}: ${server.command} (pid ${server.pid})`);
      }
      if (servers.length === 0) return result;
      url = new URL(servers[0]!.url);
      pids = servers.map((s) => s.pid);
      result.server.command = servers[0]!.command;
      result.server.cpuProfDir = o.cpuProfDir;
      if (o.nodes > 1) result.server.nodes = servers.map((s) => ({ pid: s.pid, url: s.url }));
    }
    result.server.pid = pids[0];
    const processes: ProcessRssByPhase = {};
    result.server.processes = processes;
    const host = url.hostname === 'localhost' ? '127.0.0.1' : url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || 80);
    // Several nodes: subscribers and HTTP publishers spread over all of them; one node keeps the old single port.
    const ports = servers.length > 1 ? servers.map((s) => Number(new URL(s.url).port)) : undefined;
    // Every process of every server (a --workers primary and its workers): each runs the GC hook (cluster workers
    // inherit the primary's node flags), so each collects.
    const gcAll = async (): Promise<void> => {
      const trees = servers.map((s) => processTree(s.pid).slice(1));
      for (const pid of trees.flat()) {
        try {
          process.kill(pid, 'SIGUSR2');
        } catch {
          // gone meanwhile
        }
      }
      await Promise.all(servers.map((s) => s.collectGarbage()));
    };
    if (pids.length > 0) {
      await sleep(500, signal);
      await gcAll();
      result.server.rssBeforeBytes = sumRss(pids, result.server.nodes, 'rssBeforeBytes', processes);
    }

    const started = Date.now();
    // A fresh prefix per run: channels of an earlier run (or another bench) never mix with these.
    const channelPrefix = `bench${Date.now().toString(36)}-`;
    progress(`connecting ${o.connections} ${o.transport} streams over ${o.workers} worker(s) and ${o.sourceAddresses} source address(es)`);
    workers = new WorkerSet(
      {
        host, port, ports, transport: o.transport, nchan: o.target === 'nchan', socketio: o.target === 'socketio', firstIndex: 0, count: o.connections, channels: o.channels,
        channelPrefix, localAddresses: sourceAddresses(host, o.sourceAddresses),
        concurrency: o.connectConcurrency, connectTimeoutMs: o.connectTimeoutMs,
        ...(o.churnPerSecond > 0 ? { churn: { perSecond: o.churnPerSecond, holdMs: o.churnHoldMs } } : {}),
      },
      o.workers,
    );
    // The connect window grows with the connection count (3 ms each: 300 s for 100,000 on 2 cores, where the load
    // generator itself connects at 300-2,000 per second); --max-time still bounds the whole run.
    const connectWindowMs = Math.max(60_000, o.connectTimeoutMs * 2, o.connections * 3);
    const t = await workers.waitSettled(connectWindowMs, (p) =>
      progress(`  ${p.held} held, ${p.failed} failed of ${p.total}${errorText(p.errors)}`), signal);
    Object.assign(result.connections, { held: t.held, failed: t.failed, dropped: t.dropped, errors: t.errors });
    result.connections.connectSeconds = (Date.now() - started) / 1000;
    progress(`connections: ${t.held} held, ${t.failed} failed in ${result.connections.connectSeconds.toFixed(1)} s${errorText(t.errors)}`);
    if (signal.aborted) return result;

    await sleep(o.settleMs, signal);
    if (pids.length > 0) {
      const rss = sumRss(pids, result.server.nodes, 'rssHeldBytes', processes);
      result.server.rssHeldBytes = rss;
      const held = workers.totals().held;
      if (rss !== undefined && result.server.rssBeforeBytes !== undefined && held > 0) {
        result.server.rssPerConnectionBytes = (rss - result.server.rssBeforeBytes) / held;
      }
      // The issue's figure (RSS summed over every process, primary included, per connection): the baselines count.
      if (rss !== undefined && held > 0) result.server.rssTotalPerConnectionBytes = rss / held;
      if (servers.length > 0 && rss !== undefined && result.server.rssBeforeBytes !== undefined && held > 0) {
        await gcAll();
        const gcRss = sumRss(pids, result.server.nodes, 'rssHeldAfterGcBytes', processes);
        result.server.rssHeldAfterGcBytes = gcRss;
        if (gcRss !== undefined) result.server.rssPerConnectionAfterGcBytes = (gcRss - result.server.rssBeforeBytes) / held;
      }
      const last = processes.rssHeldAfterGcBytes ?? processes.rssHeldBytes;
      const machine = last ? machineMemory(last) : undefined;
      if (machine !== undefined && held > 0) {
        result.server.machineHeldBytes = machine;
        result.server.machinePerConnectionBytes = machine / held;
      }
    }
    if (o.rates.length === 0 || signal.aborted) {
      Object.assign(result.connections, pick(workers.totals()));
      return result;
    }

    publisher = o.redisUrl !== undefined
      ? new RedisPublisher({ url: o.redisUrl, channels: o.channels, channelPrefix, maxInFlight: o.publishers * o.pipeline })
      : new Publisher({
        host, port, ports, apiKey: o.apiKey, connections: Math.min(o.publishers, o.channels), pipeline: o.pipeline,
        channels: o.channels, channelPrefix, rawPath: o.target === 'nchan' ? '/pub' : undefined,
      });
    const runStep = async (rate: number): Promise<StepResult> => {
      const step = await measureStep(o, workers!, publisher!, `http://${url.host}/healthz`, pids, result.steps.length, rate, signal);
      result.steps.push(step);
      progress(stepLine(step));
      return step;
    };
    if (o.findMax) result.maxHeldRate = await findMax(o, runStep, signal);
    else for (const rate of o.rates) if (!signal.aborted) await runStep(rate);
    if (!o.findMax) {
      const held = result.steps.filter((s) => s.held).map((s) => s.rate);
      if (held.length > 0) result.maxHeldRate = Math.max(...held);
    }
    Object.assign(result.connections, pick(workers.totals()));
    return result;
  } finally {
    if (signal.aborted) result.stoppedEarly = String(signal.reason instanceof Error ? signal.reason.message : signal.reason);
    publisher?.close();
    await workers?.close();
    if (servers.length > 0) {
      progress(servers.length > 1 ? `stopping the ${servers.length} servers` : 'stopping the server');
      await Promise.all(servers.map((s) => s.stop()));
    }
    hooks.killNow = undefined;
  }
}

export interface CleanupHooks {
  /** Set while a run holds processes: kills them synchronously (for process 'exit'). */
  killNow?: () => void;
}

/** Publish at `rate` for the step's duration, wait for late deliveries, and judge whether the rate was held. */
export async function measureStep(
  o: BenchOptions, workers: WorkerSet, publisher: Publisher | RedisPublisher, healthUrl: string, serverPids: number[], step: number, rate: number, signal: AbortSignal,
): Promise<StepResult> {
  await workers.beginStep(step);
  const cpu = new CpuMeter(serverPids, workers.pids());
  const pub = await publisher.run(step, rate, o.durationMs, signal);
  workers.expect(step, pub.okPerChannel);
  const deadline = Date.now() + o.drainMs;
  let s: MergedStats = await workers.stats();
  while (s.received < s.expected && Date.now() < deadline && !signal.aborted) {
    await sleep(100, signal);
    s = await workers.stats();
  }
  const out = judge(o, pub, s, cpu.percent());
  if (cpu.serverCpuS !== undefined && s.received > 0) {
    out.serverCpuUsPerDelivery = Math.round((cpu.serverCpuS / s.received) * 1e7) / 10;
  }
  if (serverPids.length > 0) out.serverRssBytes = sumRss(serverPids, undefined, 'rssHeldBytes');
  await waitQuiet(workers, healthUrl, signal);
  return out;
}

/**
 * Let the server finish whatever backlog an overloaded step left before the next step starts: wait until late
 * deliveries stop arriving and /healthz answers quickly (bounded: 20 s).
 */
async function waitQuiet(workers: WorkerSet, healthUrl: string, signal: AbortSignal): Promise<void> {
  const deadline = Date.now() + 20_000;
  let last = -1;
  while (Date.now() < deadline && !signal.aborted) {
    await sleep(500, signal);
    const s = await workers.stats();
    const seen = s.received + s.duplicates;
    const t0 = Date.now();
    const fast = await fetch(healthUrl, { signal: AbortSignal.timeout(2000) }).then(
      async (r) => (await r.arrayBuffer(), Date.now() - t0 < 50),
      () => false,
    );
    if (seen === last && fast) return;
    last = seen;
  }
}

/**
 * RSS summed over the server processes (undefined when one cannot be read: a partial sum would mislead), each
 * node's own figure recorded in `nodes[k][field]` when there are several.
 */
function sumRss(
  pids: number[], nodes: NodeRss[] | undefined, field: RssField, processes?: ProcessRssByPhase,
): number | undefined {
  let sum = 0;
  for (let k = 0; k < pids.length; k++) {
    const tree = treeRss(pids[k]!);
    const rss = tree?.reduce((total, p) => total + p.rssBytes, 0);
    const node = nodes?.[k];
    if (node) node[field] = rss;
    if (tree === undefined || rss === undefined) return undefined;
    if (processes) processes[field] = (processes[field] ?? []).concat(tree);
    sum += rss;
  }
  return sum;
}

/** CPU seconds of the server(s, summed), the workers and this process between its creation and percent(). */
class CpuMeter {
  private readonly t0 = Date.now();
  /** Server CPU seconds measured by the last percent(). */
  serverCpuS: number | undefined;
  private readonly server0: number | undefined;
  private readonly workers0: number;
  private readonly self0 = process.cpuUsage();

  constructor(private readonly serverPids: number[], private readonly workerPids: number[]) {
    this.server0 = this.serverNow();
    this.workers0 = this.workersNow();
  }

  percent(): StepResult['cpuPercent'] {
    const s = (Date.now() - this.t0) / 1000;
    const pct = (cpuS: number): number => Math.round((cpuS / s) * 100);
    const self = process.cpuUsage(this.self0);
    const server1 = this.serverNow();
    this.serverCpuS = server1 !== undefined && this.server0 !== undefined ? server1 - this.server0 : undefined;
    return {
      server: this.serverCpuS !== undefined ? pct(this.serverCpuS) : undefined,
      workers: pct(this.workersNow() - this.workers0),
      publisher: pct((self.user + self.system) / 1e6),
    };
  }

  /** Summed over the nodes; undefined without a known pid or when one is unreadable (a partial sum would mislead). */
  private serverNow(): number | undefined {
    if (this.serverPids.length === 0) return undefined;
    let sum = 0;
    for (const pid of this.serverPids) {
      const s = treeCpuSeconds(pid);
      if (s === undefined) return undefined;
      sum += s;
    }
    return sum;
  }

  private workersNow(): number {
    return this.workerPids.reduce((sum, pid) => sum + (readCpuSeconds(pid) ?? 0), 0);
  }
}

function judge(o: BenchOptions, pub: PublishResult, s: MergedStats, cpuPercent: StepResult['cpuPercent']): StepResult {
  const durationS = pub.durationMs / 1000;
  const lost = Math.max(0, s.expected - s.received);
  const spanS = s.lastReceiveUs > 0 ? Math.max(durationS, (s.lastReceiveUs - pub.startUs) / 1e6) : durationS;
  const perSecond = s.received / spanS;
  const ms = (us: number): number => Math.round(us / 10) / 100;
  const latencyMs = {
    p50: ms(s.latency.quantile(0.5)), p99: ms(s.latency.quantile(0.99)), max: ms(s.latency.max),
    mean: ms(s.latency.count > 0 ? s.latency.sum / s.latency.count : 0),
  };
  const why: string[] = [];
  if (pub.unsent > 0) why.push(`${pub.unsent} messages could not be sent on time`);
  if (pub.failed > 0) why.push(`${pub.failed} publish requests failed${errorText(pub.errors)}`);
  if (lost > 0) why.push(`${lost} deliveries lost` + (s.reloads > 0 ? ` (${s.reloads} reload notices)` : ''));
  if (s.duplicates > 0) why.push(`${s.duplicates} duplicates`);
  if (latencyMs.p99 > o.maxP99Ms) why.push(`p99 ${latencyMs.p99} ms > ${o.maxP99Ms} ms`);
  const offered = s.expected / durationS;
  // `hold` publishes one message to every connection: it is judged on what arrived, not on a pace.
  if (o.scenario !== 'hold' && perSecond < 0.95 * offered) why.push(`${Math.round(perSecond)} deliveries/s < 95% of ${Math.round(offered)} offered`);
  if (s.expected === 0) why.push('nothing to deliver (no connection held?)');
  const late = s.latency.countAbove(o.maxP99Ms * 1000);
  let churn: StepResult['churn'];
  if (o.churnPerSecond > 0) {
    const c = s.churn ?? { attempted: 0, live: 0, failed: 0, errors: {} };
    churn = { offeredPerSecond: o.churnPerSecond, ...c, livePerSecond: Math.round(c.live / durationS) };
    if (c.failed > 0) why.push(`${c.failed} churn connections failed${errorText(c.errors)}`);
    // Attempts are the generator's pace; the server is judged on bringing them up.
    const pending = c.attempted - c.live - c.failed;
    if (pending > 0.05 * c.attempted) why.push(`${pending} of ${c.attempted} churn connections not up by the end of the step`);
  }
  return {
    rate: pub.rate,
    durationS,
    published: { scheduled: pub.scheduled, sent: pub.sent, ok: pub.ok, failed: pub.failed, unsent: pub.unsent, errors: pub.errors },
    deliveries: {
      expected: s.expected, received: s.received, lost, duplicates: s.duplicates, reordered: s.reordered, stale: s.stale,
      perSecond: Math.round(perSecond), late,
    },
    ...(churn ? { churn } : {}),
    latencyMs,
    connectionsHeld: s.held,
    droppedDuringStep: s.dropped,
    disconnectFrames: s.disconnectFrames,
    reloadNotices: s.reloads,
    cpuPercent,
    held: why.length === 0,
    why,
  };
}

/**
 * Highest rate held: double from the first rate until one fails (or halve until one holds), then bisect between the
 * best held and the lowest failed until they are within 15 % or the steps run out.
 */
async function findMax(o: BenchOptions, runStep: (rate: number) => Promise<StepResult>, signal: AbortSignal): Promise<number | undefined> {
  let best: number | undefined;
  let failed: number | undefined;
  let rate = o.rates[0]!;
  for (let i = 0; i < o.maxSteps && !signal.aborted; i++) {
    const s = await runStep(rate);
    if (s.held) best = rate;
    else failed = rate;
    if (best !== undefined && failed !== undefined) {
      const mid = roundRate((best + failed) / 2);
      if (failed / best <= 1.15 || mid === best || mid === failed) break;
      rate = mid;
    } else rate = roundRate(best !== undefined ? rate * 2 : rate / 2);
  }
  return best;
}

/** Two significant digits: rates that read well in a table. */
function roundRate(r: number): number {
  const p = 10 ** (Math.floor(Math.log10(r)) - 1);
  return Number((Math.round(r / p) * p).toPrecision(2));
}

/** 127.0.0.1 .. 127.0.0.K when the server is on IPv4 loopback; otherwise let the kernel choose. */
export function sourceAddresses(host: string, k: number): string[] {
  if (!/^127\./.test(host) || k <= 1) return [];
  return Array.from({ length: k }, (_, i) => `127.0.0.${i + 1}`);
}

function pick(t: { held: number; failed: number; dropped: number; errors: Record<string, number> }): Pick<BenchResult['connections'], 'held' | 'failed' | 'dropped' | 'errors'> {
  return { held: t.held, failed: t.failed, dropped: t.dropped, errors: t.errors };
}

export function errorText(errors: Record<string, number>): string {
  const e = Object.entries(errors);
  return e.length === 0 ? '' : ` (${e.map(([k, v]) => `${k}: ${v}`).join(', ')})`;
}

export function stepLine(s: StepResult): string {
  return (
    `rate ${s.rate} msg/s for ${s.durationS} s: ${s.published.ok}/${s.published.scheduled} published, ` +
    `${s.deliveries.received}/${s.deliveries.expected} delivered (${s.deliveries.perSecond}/s), ` +
    `lost ${s.deliveries.lost}, late ${s.deliveries.late}, dup ${s.deliveries.duplicates}, ` +
    (s.churn ? `churn ${s.churn.live}/${s.churn.attempted} live (${s.churn.livePerSecond}/s of ${s.churn.offeredPerSecond}/s)${errorText(s.churn.errors)}, ` : '') +
    `latency p50 ${s.latencyMs.p50} ms p99 ${s.latencyMs.p99} ms max ${s.latencyMs.max} ms, ` +
    `CPU server ${s.cpuPercent.server ?? '?'} % workers ${s.cpuPercent.workers} % publisher ${s.cpuPercent.publisher} %` +
    (s.serverCpuUsPerDelivery !== undefined ? ` (server ${s.serverCpuUsPerDelivery} µs/delivery)` : '') + ': ' +
    (s.held ? 'HELD' : `NOT HELD (${s.why.join('; ')})`)
  );
}

