/**
 * `herald serve --workers N`, the primary process (docs/architecture.md "Workers"). It forks N workers with
 * node:cluster, which shares the listening socket and hands accepted connections to the workers round-robin. It
 * holds no client connection itself: it hosts the machine's embedded broker (BrokerHost), restarts a worker that dies
 * (with backoff), and on SIGTERM/SIGINT drains every worker and exits 0.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryBroker } from '../broker/memory.js';
import type { HeraldConfig } from '../config.js';
import { MetricsRegistry } from '../core/metrics.js';
import { registerProcessMetrics } from '../core/process-metrics.js';
import type { Logger } from '../util/log.js';
import { VERSION } from '../version.js';
import { BrokerHost } from './broker-host.js';
import { guardHandoffs } from './handoff-guard.js';

/** Restart backoff: 100 ms doubling to 5 s; a worker that lived 10 s resets it. */
const RESTART_BASE_MS = 100;
const RESTART_CAP_MS = 5000;
const STABLE_MS = 10_000;
/** SIGTERM: how long past drainTimeoutMs the primary waits for its workers before it kills the rest. */
const DRAIN_SLACK_MS = 5000;

export interface PrimaryOptions {
  readonly config: HeraldConfig;
  readonly workers: number;
  readonly log: Logger;
  /** Called once every worker listens, with the address they share. */
  readonly onListening: (address: { address: string; port: number }) => void;
}

/** Run the primary until it has drained; resolves with the exit code. */
export async function runPrimary(options: PrimaryOptions): Promise<number> {
  const { config, workers, log } = options;
  const dir = mkdtempSync(join(tmpdir(), 'herald-'));
  const socketPath = join(dir, 'workers.sock');
  const machineKey = randomBytes(32).toString('hex');
  let restarts = 0;
  let draining = false;
  const registry = new MetricsRegistry();
  const processMetrics = registerProcessMetrics(registry, VERSION);
  registry.gauge('herald_workers', 'Workers the primary keeps running.', () => workers);
  registry.gauge('herald_worker_restarts_total', 'Workers restarted after they died.', () => restarts, 'counter');
  const host = new BrokerHost({
    socketPath,
    log,
    ...(config.broker === 'memory' ? { broker: new MemoryBroker({ maxHistoryBytes: config.historyMaxBytes }) } : {}),
    presenceMaxInfoBytes: config.presenceMaxInfoBytes,
    ownMetrics: () => registry.render(),
    machine: () => ({ expected: workers, restarts, draining }),
  });
  await host.start();
  warnOnDescriptors(config, workers, log);

  cluster.setupPrimary({ execArgv: workerExecArgv(process.execArgv, process.env['NODE_OPTIONS']) });
  const born = new Map<Worker, number>();
  let failures = 0;
  const fork = (): void => {
    const worker = cluster.fork();
    // A connection handed to it as it dies is closed rather than left open unanswered (handoff-guard.ts).
    guardHandoffs(worker);
    born.set(worker, Date.now());
    // The worker asks where the primary's socket is (asked, not pushed: a message sent before it listens is lost).
    worker.on('message', (m: unknown) => {
      if (isAsk(m)) worker.send({ heraldSocket: socketPath, machineKey });
    });
  };
  cluster.on('exit', (worker, code, signal) => {
    const lived = Date.now() - (born.get(worker) ?? Date.now());
    born.delete(worker);
    if (draining) return;
    failures = lived >= STABLE_MS ? 0 : failures + 1;
    const delay = Math.min(RESTART_CAP_MS, RESTART_BASE_MS * 2 ** Math.max(0, failures - 1));
    restarts++;
    log.warn('worker died: restarting it', { worker: worker.id, pid: worker.process.pid, code, signal, restartInMs: delay });
    setTimeout(() => {
      if (!draining) fork();
    }, delay).unref();
  });

  let announced = false;
  const listening = new Set<number>();
  cluster.on('listening', (worker, address) => {
    listening.add(worker.id);
    if (announced || listening.size < workers) return;
    announced = true;
    options.onListening({ address: address.address ?? config.host, port: address.port });
  });
  for (let i = 0; i < workers; i++) fork();

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  draining = true;
  log.info('draining', { signal, workers: Object.keys(cluster.workers ?? {}).length });
  host.broadcastStatus();
  const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
  const exited = Promise.all(alive.map((w) => new Promise<void>((r) => (w.isDead() ? r() : w.once('exit', () => r())))));
  for (const w of alive) w.process.kill('SIGTERM');
  const deadline = setTimeout(() => {
    for (const w of alive) if (!w.isDead()) w.process.kill('SIGKILL');
  }, config.drainTimeoutMs + DRAIN_SLACK_MS);
  await exited;
  clearTimeout(deadline);
  await host.close();
  processMetrics.stop();
  rmSync(dir, { recursive: true, force: true });
  return 0;
}

function isAsk(m: unknown): boolean {
  return typeof m === 'object' && m !== null && (m as { herald?: unknown }).herald === 'socket?';
}

/** In a worker: ask the primary over node:cluster's IPC channel where its BrokerHost listens. */
export function askPrimarySocket(): Promise<{ socketPath: string; machineKey: Buffer }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the primary did not say where its socket is')), 10_000);
    const onMessage = (m: unknown): void => {
      const answer = typeof m === 'object' && m !== null ? (m as { heraldSocket?: unknown; machineKey?: unknown }) : {};
      if (typeof answer.heraldSocket !== 'string' || typeof answer.machineKey !== 'string') return;
      clearTimeout(timer);
      process.off('message', onMessage);
      resolve({ socketPath: answer.heraldSocket, machineKey: Buffer.from(answer.machineKey, 'hex') });
    };
    process.on('message', onMessage);
    process.send?.({ herald: 'socket?' });
  });
}

/**
 * One process may hold only so many descriptors (`ulimit -n`; 20,000 on the machine this was built on): warn when
 * the workers together cannot reach maxConnections. Linux only (read from /proc); silent where it cannot tell.
 */
function warnOnDescriptors(config: HeraldConfig, workers: number, log: Logger): void {
  const limit = descriptorLimit();
  if (limit === undefined) return;
  // A few descriptors per worker go to its listener, its link, its broker and its logs.
  const reachable = (limit - 50) * workers;
  if (config.maxConnections > 0 && reachable < config.maxConnections) {
    log.warn('the descriptor limit caps the machine below maxConnections: raise ulimit -n (LimitNOFILE) or --workers', {
      descriptorsPerProcess: limit,
      workers,
      reachable,
      maxConnections: config.maxConnections,
      workersNeeded: Math.ceil(config.maxConnections / (limit - 50)),
    });
  }
}

export function descriptorLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return line?.[1] ? Number(line[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Node flags of a worker: the primary's own, plus a small young generation (2 MB semi-spaces; V8 grows them to
 * 16 MB). A worker mostly holds idle connections, and every process's young generation counts in the machine's RSS:
 * at 20,000 held /sub connections over 2 workers this took the growth per connection from 6.6 to 4.0 KB
 * (docs/benchmarks.md "bench hold"). The fan-out's CPU with it is not measured yet. An operator's own
 * --max-semi-space-size (a node flag or NODE_OPTIONS) wins.
 */
export function workerExecArgv(execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  const chosen = [...execArgv, ...(nodeOptions ?? '').split(/\s+/)].some((a) => a.startsWith('--max-semi-space-size'));
  return chosen ? [...execArgv] : [...execArgv, '--max-semi-space-size=2'];
}
