/**
 * `herald bench idle-fanout`: is the fan-out cost flat in idle connections elsewhere? (issue 8)
 *
 * One spawned server. A hot channel of -n subscribers (100) gets --rate messages/s; it is measured with no idle
 * connection, then with --idle N idle connections on other channels (spread over client processes and 127.0.0.x
 * source addresses, as `bench hold` does), then with none again, alternating for --rounds. Each row: deliveries/s,
 * latency p50/p99, server CPU (all its processes) per delivery. The idle rows bracketed by idle-free rows on the same
 * server tell a real cost of idle connections from machine noise.
 */
import { availableParallelism, cpus, loadavg } from 'node:os';
import { sleep } from './clock.js';
import type { BenchOptions } from './options.js';
import { Publisher } from './publisher.js';
import { errorText, measureStep, sourceAddresses, type Progress, type StepResult } from './run.js';
import { spawnServer, type SpawnedServer } from './server-process.js';
import { WorkerSet } from './workers.js';

export interface IdleFanoutRow {
  /** Idle connections asked for in this row (0 or N). */
  idle: number;
  /** Idle connections actually held while the hot channel was measured. */
  idleHeld: number;
  step: StepResult;
}

export interface IdleFanoutResult {
  startedAt: string;
  machine: { nproc: number; cpu: string; node: string; loadAverage: number[] };
  options: BenchOptions;
  server: { pid?: number; command?: string };
  hot: { subscribers: number; held: number; failed: number; errors: Record<string, number> };
  idle: { requested: number; failed: number; errors: Record<string, number>; connectSeconds: number[] };
  rows: IdleFanoutRow[];
  stoppedEarly?: string;
}

export async function runIdleFanout(
  o: BenchOptions, progress: Progress, signal: AbortSignal, hooks: { killNow?: () => void } = {},
): Promise<IdleFanoutResult> {
  const result: IdleFanoutResult = {
    startedAt: new Date().toISOString(),
    machine: { nproc: availableParallelism(), cpu: cpus()[0]?.model ?? 'unknown', node: process.version,
      loadAverage: loadavg().map((x) => Math.round(x * 100) / 100) },
    options: o,
    server: {},
    hot: { subscribers: o.connections, held: 0, failed: 0, errors: {} },
    idle: { requested: o.idle, failed: 0, errors: {}, connectSeconds: [] },
    rows: [],
  };
  let server: SpawnedServer | undefined;
  let hot: WorkerSet | undefined;
  let idle: WorkerSet | undefined;
  let publisher: Publisher | undefined;
  hooks.killNow = () => {
    hot?.killNow();
    idle?.killNow();
    server?.killNow();
  };
  try {
    server = await spawnServer(o.serverArgs, []);
    progress(`server: ${server.command} (pid ${server.pid})`);
    result.server = { pid: server.pid, command: server.command };
    const url = new URL(server.url);
    const host = url.hostname;
    const port = Number(url.port);
    const addresses = sourceAddresses(host, o.sourceAddresses);
    // A fresh prefix per run; the hot channel and the idle ones never share a name.
    const prefix = `bench${Date.now().toString(36)}-`;
    const pool = { host, port, transport: o.transport, firstIndex: 0, localAddresses: addresses,
      concurrency: o.connectConcurrency, connectTimeoutMs: o.connectTimeoutMs };

    hot = new WorkerSet({ ...pool, count: o.connections, channels: o.channels, channelPrefix: `${prefix}hot-` }, 1);
    const h = await hot.waitSettled(60_000, () => undefined, signal);
    Object.assign(result.hot, { held: h.held, failed: h.failed, errors: h.errors });
    progress(`hot channel: ${h.held} of ${o.connections} subscribers held${errorText(h.errors)}`);
    if (h.held === 0 || signal.aborted) return result;
    publisher = new Publisher({ host, port, apiKey: o.apiKey, connections: Math.min(o.publishers, o.channels), pipeline: o.pipeline,
      channels: o.channels, channelPrefix: `${prefix}hot-` });
    await sleep(o.settleMs, signal);

    const healthUrl = `${server.url}/healthz`;
    const row = async (idleCount: number, idleHeld: number): Promise<void> => {
      const step = await measureStep(o, hot!, publisher!, healthUrl, [server!.pid], result.rows.length, o.rates[0]!, signal);
      result.rows.push({ idle: idleCount, idleHeld, step });
      progress(rowLine(result.rows[result.rows.length - 1]!));
    };

    await row(0, 0);
    for (let r = 0; r < o.rounds && !signal.aborted; r++) {
      const t0 = Date.now();
      progress(`opening ${o.idle} idle ${o.transport} connections on ${o.idleChannels} other channel(s) over ${o.workers} client process(es)`);
      idle = new WorkerSet({ ...pool, count: o.idle, channels: o.idleChannels, channelPrefix: `${prefix}idle-` }, o.workers);
      const t = await idle.waitSettled(Math.max(60_000, o.idle * 3), (p) =>
        progress(`  ${p.held} held, ${p.failed} failed of ${p.total}${errorText(p.errors)}`), signal);
      result.idle.failed += t.failed;
      for (const [k, v] of Object.entries(t.errors)) result.idle.errors[k] = (result.idle.errors[k] ?? 0) + v;
      result.idle.connectSeconds.push((Date.now() - t0) / 1000);
      progress(`idle: ${t.held} held, ${t.failed} failed in ${((Date.now() - t0) / 1000).toFixed(1)} s${errorText(t.errors)}`);
      if (signal.aborted) break;
      await sleep(o.settleMs, signal);
      await row(o.idle, idle.totals().held);
      await idle.close();
      idle = undefined;
      // Let the server see the closes and collect before the idle-free row.
      await sleep(o.settleMs, signal);
      await row(0, 0);
    }
    return result;
  } finally {
    if (signal.aborted) result.stoppedEarly = String(signal.reason instanceof Error ? signal.reason.message : signal.reason);
    publisher?.close();
    await idle?.close();
    await hot?.close();
    if (server) {
      progress('stopping the server');
      await server.stop();
    }
    hooks.killNow = undefined;
  }
}

function rowLine(r: IdleFanoutRow): string {
  const s = r.step;
  return `idle ${String(r.idleHeld).padStart(7)}: ${s.deliveries.received}/${s.deliveries.expected} delivered, ` +
    `${s.deliveries.perSecond} deliveries/s, p50 ${s.latencyMs.p50} ms, p99 ${s.latencyMs.p99} ms, ` +
    `server CPU ${s.cpuPercent.server ?? '?'} %, ${s.serverCpuUsPerDelivery ?? '?'} µs/delivery` +
    (s.held ? '' : ` (NOT HELD: ${s.why.join('; ')})`);
}

/** The report: one line per row, then the idle rows against the idle-free ones (means). */
export function formatIdleFanout(r: IdleFanoutResult): string {
  const o = r.options;
  const lines = [
    `herald bench idle-fanout: a channel of ${o.connections} ${o.transport} subscribers at ${o.rates[0]} msg/s for ${o.durationMs / 1000} s, ` +
      `without and with ${o.idle} idle connections on ${o.idleChannels} other channel(s)`,
    `machine: ${r.machine.nproc} cores (${r.machine.cpu}), node ${r.machine.node}, load average ${r.machine.loadAverage.join(' ')} at ${r.startedAt}`,
    `server: ${r.server.command ?? '?'}`,
    `hot channel: ${r.hot.held} of ${r.hot.subscribers} subscribers held${errorText(r.hot.errors)}; ` +
      `idle connections: ${r.idle.failed} failed${errorText(r.idle.errors)}, connected in ${r.idle.connectSeconds.map((s) => `${s.toFixed(1)} s`).join(', ') || '-'}`,
    '',
    '| idle held | delivered | deliveries/s | p50 ms | p99 ms | server CPU % | server µs/delivery | server RSS MB | held |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const row of r.rows) {
    const s = row.step;
    lines.push(`| ${row.idleHeld} | ${s.deliveries.received}/${s.deliveries.expected} | ${s.deliveries.perSecond} | ${s.latencyMs.p50} | ` +
      `${s.latencyMs.p99} | ${s.cpuPercent.server ?? '?'} | ${s.serverCpuUsPerDelivery ?? '?'} | ` +
      `${s.serverRssBytes !== undefined ? (s.serverRssBytes / 1024 / 1024).toFixed(1) : '?'} | ${s.held ? 'yes' : `no: ${s.why.join('; ')}`} |`);
  }
  const mean = (rows: IdleFanoutRow[], f: (s: StepResult) => number | undefined): number | undefined => {
    const xs = rows.map((x) => f(x.step)).filter((x): x is number => x !== undefined);
    return xs.length === 0 ? undefined : xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  const without = r.rows.filter((x) => x.idle === 0);
  const withIdle = r.rows.filter((x) => x.idle > 0);
  if (without.length > 0 && withIdle.length > 0) {
    const cmp = (name: string, f: (s: StepResult) => number | undefined, unit: string): string => {
      const a = mean(without, f);
      const b = mean(withIdle, f);
      if (a === undefined || b === undefined) return `${name} ?`;
      return `${name} ${a.toFixed(2)} → ${b.toFixed(2)}${unit}` + (a > 0 ? ` (${((b / a - 1) * 100).toFixed(0)} %)` : '');
    };
    lines.push('', `mean of the idle-free rows → mean with ${o.idle} idle: ` + [
      cmp('deliveries/s', (s) => s.deliveries.perSecond, ''),
      cmp('p50', (s) => s.latencyMs.p50, ' ms'),
      cmp('p99', (s) => s.latencyMs.p99, ' ms'),
      cmp('server CPU per delivery', (s) => s.serverCpuUsPerDelivery, ' µs'),
    ].join(', '));
  }
  if (r.stoppedEarly) lines.push(`stopped early: ${r.stoppedEarly}`);
  return lines.join('\n') + '\n';
}
