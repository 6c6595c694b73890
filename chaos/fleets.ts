/**
 * The run's side of the fleet processes: forks them, spreads the subscribers over them (and over source addresses
 * 127.0.0.x when asked), waits for them, and merges their figures. Client load runs in child processes so the load
 * generator is not what limits a run, and because one process here may hold at most 20,000 descriptors.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Histogram } from '../bench/histogram.js';
import { sleep } from '../bench/clock.js';
import { onCleanup } from './cleanup.js';
import type { Kind } from './clients.js';
import type { FleetReport, FleetStatus, FromFleet, KindReport, ToFleet } from './protocol.js';

const FLEET = fileURLToPath(new URL('./fleet.js', import.meta.url));

class FleetProcess {
  private readonly waiting = new Map<string, ((m: FromFleet) => void)[]>();
  exited = false;

  constructor(readonly child: ChildProcess) {
    child.on('message', (m: FromFleet) => this.waiting.get(m.type)?.shift()?.(m));
    child.once('exit', () => (this.exited = true));
  }

  send(m: ToFleet): void {
    if (this.child.connected) this.child.send(m);
  }

  ask<T extends FromFleet['type']>(m: ToFleet, answer: T, timeoutMs = 30_000): Promise<Extract<FromFleet, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fleet did not answer ${m.type} within ${timeoutMs} ms`)), timeoutMs);
      const list = this.waiting.get(answer) ?? [];
      list.push((r) => {
        clearTimeout(timer);
        resolve(r as Extract<FromFleet, { type: T }>);
      });
      this.waiting.set(answer, list);
      this.send(m);
    });
  }
}

export interface FleetSpec {
  readonly upstreams: readonly string[];
  readonly kinds: readonly Kind[];
  readonly channels: readonly string[];
  readonly subscribers: number;
  /** Subscribers per process. @default 500 */
  readonly perProcess?: number;
  /** Give each process its own source address 127.0.0.(2+i). @default false */
  readonly spreadAddresses?: boolean;
}

export class Fleets {
  private readonly procs: FleetProcess[] = [];

  /** Fork the processes and open every subscriber; resolves once each process has opened its share. */
  static async start(spec: FleetSpec): Promise<Fleets> {
    const fleets = new Fleets();
    onCleanup(() => fleets.kill());
    const per = spec.perProcess ?? 500;
    const starts: Promise<unknown>[] = [];
    for (let from = 0, i = 0; from < spec.subscribers; from += per, i++) {
      const child = fork(FLEET, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const p = new FleetProcess(child);
      fleets.procs.push(p);
      const start: ToFleet = {
        type: 'start', upstreams: spec.upstreams, kinds: spec.kinds, channels: spec.channels, from,
        to: Math.min(spec.subscribers, from + per),
        ...(spec.spreadAddresses ? { localAddress: `127.0.0.${2 + (i % 250)}` } : {}),
      };
      starts.push(p.ask(start, 'started', 60_000));
    }
    await Promise.all(starts);
    return fleets;
  }

  get processes(): number {
    return this.procs.length;
  }

  async status(want: Readonly<Record<string, number>> = {}): Promise<FleetStatus> {
    const all = await Promise.all(this.live().map((p) => p.ask({ type: 'status', want }, 'status')));
    return all.reduce(
      (t, s) => ({ total: t.total + s.total, live: t.live + s.live, reached: t.reached + s.reached, gaveUp: t.gaveUp + s.gaveUp }),
      { total: 0, live: 0, reached: 0, gaveUp: 0 },
    );
  }

  /** Wait until `check` holds for the merged status (polled every 200 ms), or the time runs out. */
  async waitFor(check: (s: FleetStatus) => boolean, timeoutMs: number, want: Readonly<Record<string, number>> = {}): Promise<FleetStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.status(want);
      if (check(s) || Date.now() > deadline) return s;
      await sleep(200);
    }
  }

  async report(m: Extract<ToFleet, { type: 'report' }>): Promise<Record<string, MergedKind>> {
    const all = await Promise.all(this.live().map((p) => p.ask(m, 'report', 60_000)));
    return mergeReports(all.map((a) => a.report));
  }

  /** Close every client and wait (bounded) for the processes to exit; kill the ones that do not. */
  async close(): Promise<void> {
    for (const p of this.procs) p.send({ type: 'close' });
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && !this.procs.every((p) => p.exited)) await sleep(50);
    this.kill();
  }

  kill(): void {
    for (const p of this.procs) if (!p.exited) p.child.kill('SIGKILL');
  }

  private live(): FleetProcess[] {
    return this.procs.filter((p) => !p.exited);
  }
}

export interface MergedKind extends Omit<KindReport, 'latencyUs'> {
  latency: Histogram;
}

function mergeReports(reports: readonly FleetReport[]): Record<string, MergedKind> {
  const out: Record<string, MergedKind> = {};
  for (const r of reports) {
    for (const [kind, k] of Object.entries(r.kinds)) {
      const m = (out[kind] ??= {
        clients: 0, delivered: 0, lost: 0, lostClients: 0, behind: 0, behindClients: 0, covered: 0, duplicates: 0, outOfOrder: 0, unackedLate: 0, reloads: 0,
        gaveUp: 0, fatal: 0, resumeMs: [], catchUpMs: [], latency: new Histogram(), signals: {},
      });
      m.clients += k.clients;
      m.delivered += k.delivered;
      m.lost += k.lost;
      m.lostClients += k.lostClients;
      m.behind += k.behind;
      m.behindClients += k.behindClients;
      m.covered += k.covered;
      m.duplicates += k.duplicates;
      m.outOfOrder += k.outOfOrder;
      m.unackedLate += k.unackedLate;
      m.reloads += k.reloads;
      m.gaveUp += k.gaveUp;
      m.fatal += k.fatal;
      m.resumeMs.push(...k.resumeMs);
      m.catchUpMs.push(...k.catchUpMs);
      if (k.latencyUs) m.latency.add(k.latencyUs);
      for (const [s, n] of Object.entries(k.signals)) m.signals[s] = (m.signals[s] ?? 0) + n;
    }
  }
  return out;
}
