/**
 * The parent's side of the subscriber workers: forks them, spreads the connections over them, and gathers their
 * progress and step statistics. Workers are separate processes because one process here may hold at most 20,000
 * descriptors, and so that parsing deliveries does not compete with the publisher's event loop.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sleep } from './clock.js';
import { Histogram } from './histogram.js';
import type { FromWorker, PoolProgress, PoolSpec, StepStats, ToWorker } from './protocol.js';

const WORKER_PATH = fileURLToPath(new URL('./worker.js', import.meta.url));

class Worker {
  progress: PoolProgress = { held: 0, failed: 0, dropped: 0, errors: {} };
  private readonly waiting = new Map<string, (m: FromWorker) => void>();
  exited = false;

  constructor(readonly child: ChildProcess, readonly spec: PoolSpec) {
    child.on('message', (m: FromWorker) => {
      if (m.type === 'progress') this.progress = m.progress;
      const w = this.waiting.get(m.type);
      if (w) {
        this.waiting.delete(m.type);
        w(m);
      }
    });
    child.on('exit', () => {
      this.exited = true;
      for (const w of this.waiting.values()) w({ type: 'error', message: 'worker exited' });
      this.waiting.clear();
    });
  }

  send(m: ToWorker): void {
    if (this.child.connected) this.child.send(m);
  }

  /** Send `m` and wait for the answer of type `answer` (or fail after `timeoutMs`). */
  ask<T extends FromWorker['type']>(m: ToWorker, answer: T, timeoutMs = 10_000): Promise<Extract<FromWorker, { type: T }>> {
    return new Promise((resolve, reject) => {
      if (this.exited) return reject(new Error('worker exited'));
      const timer = setTimeout(() => {
        this.waiting.delete(answer);
        reject(new Error(`worker did not answer ${m.type} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(answer, (r) => {
        clearTimeout(timer);
        if (r.type === 'error') reject(new Error(r.message));
        else resolve(r as Extract<FromWorker, { type: T }>);
      });
      this.send(m);
    });
  }
}

export interface Totals extends PoolProgress {
  total: number;
}

export class WorkerSet {
  private readonly workers: Worker[] = [];

  /** Fork `count` workers and give each an even share of `spec.count` connections. */
  constructor(spec: PoolSpec, count: number) {
    const per = Math.ceil(spec.count / count);
    const made = Math.ceil(spec.count / per);
    for (let w = 0, first = 0; w < count && first < spec.count; w++, first += per) {
      const share: PoolSpec = { ...spec, firstIndex: spec.firstIndex + first, count: Math.min(per, spec.count - first) };
      if (spec.churn) share.churn = { ...spec.churn, perSecond: spec.churn.perSecond / made };
      // No inherited execArgv: a --cpu-prof or --inspect meant for the bench must not apply to every worker.
      const child = fork(WORKER_PATH, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const worker = new Worker(child, share);
      this.workers.push(worker);
      worker.send({ type: 'connect', spec: share });
    }
  }

  totals(): Totals {
    const t: Totals = { held: 0, failed: 0, dropped: 0, errors: {}, total: 0 };
    for (const w of this.workers) {
      t.total += w.spec.count;
      t.held += w.progress.held;
      t.failed += w.progress.failed;
      t.dropped += w.progress.dropped;
      for (const [k, v] of Object.entries(w.progress.errors)) t.errors[k] = (t.errors[k] ?? 0) + v;
      if (w.exited) t.errors['worker_exited'] = (t.errors['worker_exited'] ?? 0) + 1;
    }
    return t;
  }

  /** Wait until every connection is held or failed, or the time is up. Calls `onProgress` about once a second. */
  async waitSettled(timeoutMs: number, onProgress: (t: Totals) => void, signal?: AbortSignal): Promise<Totals> {
    const deadline = Date.now() + timeoutMs;
    let lastReport = 0;
    for (;;) {
      const t = this.totals();
      const done = t.held + t.failed + t.dropped >= t.total || this.workers.every((w) => w.exited);
      if (done || Date.now() > deadline || signal?.aborted) return t;
      if (Date.now() - lastReport >= 1000) {
        lastReport = Date.now();
        onProgress(t);
      }
      await sleep(100, signal);
    }
  }

  async beginStep(step: number): Promise<void> {
    await Promise.all(this.live().map((w) => w.ask({ type: 'step', step }, 'step-ready')));
  }

  expect(step: number, okPerChannel: number[]): void {
    for (const w of this.live()) w.send({ type: 'expect', step, okPerChannel });
  }

  /** Every worker's statistics for the current step, merged. */
  async stats(): Promise<MergedStats> {
    const all = await Promise.all(this.live().map((w) => w.ask({ type: 'stats' }, 'stats')));
    const latency = new Histogram();
    const m: MergedStats = {
      held: 0, failed: 0, dropped: 0, errors: {}, received: 0, duplicates: 0, reordered: 0, stale: 0, expected: 0,
      lastReceiveUs: 0, disconnectFrames: 0, reloads: 0, latency,
    };
    for (const { stats: s } of all) {
      m.held += s.held;
      m.failed += s.failed;
      m.dropped += s.dropped;
      for (const [k, v] of Object.entries(s.errors)) m.errors[k] = (m.errors[k] ?? 0) + v;
      m.received += s.received;
      m.duplicates += s.duplicates;
      m.reordered += s.reordered;
      m.stale += s.stale;
      m.expected += s.expected;
      m.disconnectFrames += s.disconnectFrames;
      m.reloads += s.reloads;
      m.lastReceiveUs = Math.max(m.lastReceiveUs, s.lastReceiveUs);
      latency.add(s.latency);
      if (s.churn) {
        const c = (m.churn ??= { attempted: 0, live: 0, failed: 0, errors: {} });
        c.attempted += s.churn.attempted;
        c.live += s.churn.live;
        c.failed += s.churn.failed;
        for (const [k, v] of Object.entries(s.churn.errors)) c.errors[k] = (c.errors[k] ?? 0) + v;
      }
    }
    return m;
  }

  /** Close every connection and wait (bounded) for the workers to exit; kill the ones that do not. */
  async close(): Promise<void> {
    for (const w of this.workers) w.send({ type: 'close' });
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && !this.workers.every((w) => w.exited)) await sleep(50);
    for (const w of this.workers) if (!w.exited) w.child.kill('SIGKILL');
  }

  pids(): number[] {
    return this.workers.flatMap((w) => (w.child.pid !== undefined && !w.exited ? [w.child.pid] : []));
  }

  /** Kill every worker now (exit handler: no waiting possible). */
  killNow(): void {
    for (const w of this.workers) if (!w.exited) w.child.kill('SIGKILL');
  }

  private live(): Worker[] {
    return this.workers.filter((w) => !w.exited);
  }
}

export interface MergedStats extends Omit<StepStats, 'latency' | 'step'> {
  latency: Histogram;
}
