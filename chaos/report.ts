/** A run's figures: a table for people, or JSON (`--json`) for scripts. */
import type { RunResult } from './harness.js';

export function quantile(values: readonly number[], q: number): number | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

/** p50/p99/max of a list of ms, -1 meaning "never" (shown as ∞). */
function spread(values: readonly number[]): string {
  if (values.length === 0) return '-';
  const v = values.map((x) => (x < 0 ? Infinity : x));
  const f = (x: number | undefined): string => (x === undefined || x === Infinity ? '∞' : `${Math.round(x)}`);
  return `${f(quantile(v, 0.5))}/${f(quantile(v, 0.99))}/${f(quantile(v, 1))}`;
}

const mb = (b: number): string => `${(b / 1048576).toFixed(0)} MB`;

export function summaryJson(r: RunResult): unknown {
  const kinds = Object.fromEntries(
    Object.entries(r.kinds).map(([k, v]) => {
      const { latency, resumeMs, catchUpMs, ...rest } = v;
      return [
        k,
        {
          ...rest,
          resumeMs: { count: resumeMs.length, p50: quantile(resumeMs, 0.5), p99: quantile(resumeMs, 0.99), max: quantile(resumeMs, 1) },
          catchUpMs: catchUpMs.length === 0 ? undefined : {
            count: catchUpMs.length, never: catchUpMs.filter((x) => x < 0).length,
            p50: quantile(catchUpMs.filter((x) => x >= 0), 0.5), p99: quantile(catchUpMs.filter((x) => x >= 0), 0.99),
            max: quantile(catchUpMs.filter((x) => x >= 0), 1),
          },
          latencyMs: { p50: latency.quantile(0.5) / 1000, p99: latency.quantile(0.99) / 1000, max: latency.max / 1000 },
        },
      ];
    }),
  );
  return { ...r, kinds, ok: r.failures.length === 0 };
}

export function table(r: RunResult): string {
  const out: string[] = [];
  out.push(`chaos ${r.scenario}: ${r.options.subscribers} subscribers in ${r.fleetProcesses} processes, ${r.options.rate} publishes/s`);
  const head = ['transport', 'clients', 'delivered', 'lost', 'behind', 'dup', 'order', 'late unacked', 'covered', 'reloads', 'gave up', 'resume p50/p99/max ms', 'back after fault p50/p99/max ms', 'latency p99 ms'];
  const rows = Object.entries(r.kinds).map(([k, v]) => [
    k, v.clients, v.delivered, v.lost, v.behind, v.duplicates, v.outOfOrder, v.unackedLate, v.covered, v.reloads, v.gaveUp,
    `${spread(v.resumeMs)} (${v.resumeMs.length})`, spread(v.catchUpMs), (v.latency.quantile(0.99) / 1000).toFixed(0),
  ].map(String));
  const all = Object.values(r.kinds);
  rows.push([
    'all', ...['clients', 'delivered', 'lost', 'behind', 'duplicates', 'outOfOrder', 'unackedLate', 'covered', 'reloads', 'gaveUp'].map((f) =>
      String(all.reduce((n, v) => n + (v[f as keyof typeof v] as number), 0))),
    `${spread(all.flatMap((v) => v.resumeMs))} (${all.reduce((n, v) => n + v.resumeMs.length, 0)})`, spread(all.flatMap((v) => v.catchUpMs)), '',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const fmt = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  out.push(fmt(head), ...rows.map(fmt));
  const p = r.publish;
  out.push(
    `publish: ${p.acked} acknowledged; 503 ${p.unavailable} (${p.unavailableWithRetryAfter} with Retry-After), 504 ${p.unknown}, ` +
      `unreachable ${p.unreachable}${Object.keys(p.other).length ? `, other ${JSON.stringify(p.other)}` : ''}; longest time without an ack ${(p.longestGapMs / 1000).toFixed(1)} s`,
  );
  for (const n of r.nodes) {
    const a = n.after;
    out.push(
      `node ${n.url}: peak RSS ${mb(n.peakRssBytes)}, peak descriptors ${n.peakFds}; ` +
        (a === undefined
          ? 'not running at the end'
          : `after: sessions ${a.sessions}, channels ${a.channels}, broker channels ${a.brokerChannels}, descriptors ${a.fds} (start ${n.before.fds}), RSS ${mb(a.rssBytes)} (start ${mb(n.before.rssBytes)})`),
    );
  }
  const signals: Record<string, number> = {};
  for (const v of all) for (const [s, n] of Object.entries(v.signals)) signals[s] = (signals[s] ?? 0) + n;
  if (Object.keys(signals).length) out.push(`signals seen by clients: ${Object.entries(signals).map(([s, n]) => `${s}: ${n}`).join(', ')}`);
  for (const [k, v] of Object.entries(r.extra)) out.push(`${k}: ${v}`);
  for (const n of r.notes) out.push(`note: ${n}`);
  out.push(r.failures.length === 0 ? 'PASS' : `FAIL\n${r.failures.map((f) => `  - ${f}`).join('\n')}`);
  return out.join('\n');
}
