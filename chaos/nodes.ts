/**
 * Herald nodes of a chaos run: `herald serve --dev` child processes, so a scenario can SIGKILL one, restart it on the
 * same port, and read its RSS and descriptors from /proc. Their peaks are sampled while the run goes on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { freePort, listensOn, readRss } from '../bench/server-process.js';
import { sleep } from '../bench/clock.js';
import { cleanEnv, HERALD_BIN } from '../test/helpers/cli.js';
import { onCleanup } from './cleanup.js';

/** Descriptors a process holds now (/proc/PID/fd), or undefined when it is gone. */
export function readFds(pid: number): number | undefined {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return undefined;
  }
}

/** Counts read from a node's /metrics: each metric summed over its labels, and each labelled series. */
export type Metrics = Record<string, number>;

export function parseMetrics(text: string): Metrics {
  const out: Metrics = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const name = m[1] as string;
    // Histograms' buckets would add up to nonsense; keep their _count and _sum only.
    if (name.endsWith('_bucket')) continue;
    out[name] = (out[name] ?? 0) + Number(m[3]);
    // Each labelled series too, as written: herald_disconnects_total{reason="slow"}.
    if (m[2]) out[name + m[2]] = Number(m[3]);
  }
  return out;
}

const STDERR_TAIL = 64 * 1024;
/** Preloaded into every node: SIGUSR2 runs a full GC, and the node exits when its run is gone (bench/gc-hook.ts). */
const GC_HOOK = new URL('../bench/gc-hook.js', import.meta.url).href;

export class HeraldNode {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stderr = '';
  peakRss = 0;
  peakFds = 0;

  private constructor(readonly port: number, private readonly args: readonly string[]) {}

  /** Start `herald serve --dev` on `broker` (a free port unless given); resolves once /readyz answers 200. */
  static async start(broker: string, extraArgs: readonly string[] = [], port?: number): Promise<HeraldNode> {
    const node = new HeraldNode(port ?? (await freePort()), [
      '--broker', broker, '--history-size', '1000', '--log-level', 'warn', '--drain-timeout-ms', '2000', ...extraArgs,
    ]);
    onCleanup(() => node.proc?.kill('SIGKILL'));
    await node.launch();
    return node;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.running ? this.proc?.pid : undefined;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** The last lines the node wrote to stderr (its warnings and errors), for diagnostics. */
  log(): string {
    return this.stderr;
  }

  private async launch(): Promise<void> {
    const args = ['--expose-gc', '--import', GC_HOOK, HERALD_BIN, 'serve', '--dev', '--host', '127.0.0.1', '--port', String(this.port), ...this.args];
    const proc = spawn(process.execPath, args, { env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    this.exited = new Promise((r) => proc.once('exit', () => r()));
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-STDERR_TAIL);
    });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (!this.running) throw new Error(`herald serve on port ${this.port} exited at start-up:\n${this.stderr}`);
      if ((await status(`${this.url}/readyz`)) === 200 && listensOn(proc.pid ?? 0, this.port)) return;
      if (Date.now() > deadline) throw new Error(`herald serve on port ${this.port} not ready within 30 s:\n${this.stderr}`);
      await sleep(100);
    }
  }

  /** Send `signal` (SIGKILL: a crash) and wait until the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.proc?.kill(signal);
    await this.exited;
  }

  /** Start it again on the same port (after kill). */
  async restart(): Promise<void> {
    await this.kill();
    await this.launch();
  }

  /** SIGTERM (drain), SIGKILL after 10 s. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.proc?.kill('SIGTERM');
    await Promise.race([this.exited, sleep(10_000)]);
    await this.kill();
  }

  /** Run a full garbage collection in the node and give it a moment, so its RSS is not yesterday's garbage. */
  async collectGarbage(): Promise<void> {
    if (!this.running) return;
    this.proc?.kill('SIGUSR2');
    await sleep(1000);
  }

  resetPeaks(): void {
    this.peakRss = 0;
    this.peakFds = 0;
  }

  /** Update the RSS and descriptor peaks. */
  sample(): { rss: number; fds: number } | undefined {
    const pid = this.pid;
    if (pid === undefined) return undefined;
    const rss = readRss(pid) ?? 0;
    const fds = readFds(pid) ?? 0;
    this.peakRss = Math.max(this.peakRss, rss);
    this.peakFds = Math.max(this.peakFds, fds);
    return { rss, fds };
  }

  async metrics(): Promise<Metrics> {
    const res = await fetch(`${this.url}/metrics`, { signal: AbortSignal.timeout(5000) });
    return parseMetrics(await res.text());
  }
}

async function status(url: string): Promise<number> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}
