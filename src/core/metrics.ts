/**
 * Counters, gauges and histograms in Prometheus text format (GET /metrics). Hand-written on purpose (not
 * prom-client): the hot paths add to plain numbers and a histogram observation is a short loop over a fixed bucket
 * list, with no label hashing and no allocation; rendering happens only when scraped (docs/architecture.md,
 * Dependencies).
 *
 * Label values are bounded: a counter given an `allowed` set files any other value under `other`, so no user input
 * or parser code (`HPE_INVALID_METHOD`) can become a time series.
 */
import { DISCONNECT_TABLE, ERROR_TABLE } from '../errors.js';
import type { ReloadReason } from '../protocol/frames.js';

export type Labels = Record<string, string>;

interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  samples(): Iterable<[string, Labels, number]>;
}

/** The label value a bounded counter files unknown values under. */
export const OTHER = 'other';

export class Counter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  /** The unlabelled value, kept apart so hot paths add to a plain number. */
  private plain = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    /** Per label name, the values it may take; any other is counted as `other`. */
    private readonly allowed?: Readonly<Record<string, ReadonlySet<string>>>,
  ) {}
  add(by: number): void {
    this.plain += by;
  }
  inc(labels?: Labels, by = 1): void {
    if (!labels) {
      this.plain += by;
      return;
    }
    if (this.allowed) labels = bounded(labels, this.allowed);
    const key = labelKey(labels);
    const v = this.values.get(key);
    if (v) v.value += by;
    else this.values.set(key, { labels, value: by });
  }
  get(labels?: Labels): number {
    if (!labels) return this.plain;
    return this.values.get(labelKey(this.allowed ? bounded(labels, this.allowed) : labels))?.value ?? 0;
  }
  *samples(): Iterable<[Labels, number]> {
    if (this.plain !== 0 || this.values.size === 0) yield [{}, this.plain];
    for (const v of this.values.values()) yield [v.labels, v.value];
  }
}

/**
 * One histogram series: per-bucket counts, a sum and a count. `observe` walks the bucket bounds (about a dozen)
 * and adds to numbers: cheap enough for once per publication.
 */
export class Histogram {
  private readonly counts: Float64Array;
  private sum = 0;
  private total = 0;
  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.total++;
  }
  get count(): number {
    return this.total;
  }
  /** Cumulative samples, as Prometheus wants them. */
  *samples(name: string, labels: Labels): Iterable<[string, Labels, number]> {
    let cumulative = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.counts[i]!;
      yield [`${name}_bucket`, { ...labels, le: String(this.bounds[i]) }, cumulative];
    }
    yield [`${name}_bucket`, { ...labels, le: '+Inf' }, this.total];
    yield [`${name}_sum`, labels, this.sum];
    yield [`${name}_count`, labels, this.total];
  }
}

/** A histogram with one label whose values are fixed up front (every series exists from the start). */
export class HistogramFamily<V extends string> {
  private readonly series: ReadonlyMap<string, Histogram>;
  constructor(readonly label: string, values: readonly V[], bounds: readonly number[]) {
    this.series = new Map(values.map((v) => [v, new Histogram(bounds)]));
  }
  /** The series for one label value (look it up once and keep it on a hot path). */
  of(value: V): Histogram {
    const h = this.series.get(value);
    if (!h) throw new Error(`no series ${this.label}=${value}`);
    return h;
  }
  *samples(name: string): Iterable<[string, Labels, number]> {
    for (const [value, h] of this.series) yield* h.samples(name, { [this.label]: value });
  }
}

/** Bucket bounds in seconds for work that takes microseconds to milliseconds (fan-out, GC pauses). */
export const FAST_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
/** Bucket bounds in seconds for network round trips (the broker's). */
export const ROUND_TRIP_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class MetricsRegistry {
  private readonly metrics: Metric[] = [];

  counter(name: string, help: string, allowed?: Readonly<Record<string, readonly string[]>>): Counter {
    const sets = allowed
      ? Object.fromEntries(Object.entries(allowed).map(([k, v]) => [k, new Set(v)]))
      : undefined;
    const c = new Counter(name, help, sets);
    this.metrics.push({ name, help, type: 'counter', samples: () => withName(name, c.samples()) });
    return c;
  }

  /** A gauge (or a counter kept elsewhere) read from live state when scraped. */
  gauge(name: string, help: string, read: () => number | Iterable<[Labels, number]>, type: 'gauge' | 'counter' = 'gauge'): void {
    this.metrics.push({
      name,
      help,
      type,
      samples: () => {
        const v = read();
        return withName(name, typeof v === 'number' ? [[{}, v]] : v);
      },
    });
  }

  histogram(name: string, help: string, bounds: readonly number[]): Histogram {
    const h = new Histogram(bounds);
    this.metrics.push({ name, help, type: 'histogram', samples: () => h.samples(name, {}) });
    return h;
  }

  histogramFamily<V extends string>(name: string, help: string, label: string, values: readonly V[], bounds: readonly number[]): HistogramFamily<V> {
    const f = new HistogramFamily(label, values, bounds);
    this.metrics.push({ name, help, type: 'histogram', samples: () => f.samples(name) });
    return f;
  }

  /** Names of every metric family registered (the Grafana dashboard test checks against what /metrics renders). */
  names(): string[] {
    return this.metrics.map((m) => m.name);
  }

  render(): string {
    let out = '';
    for (const m of this.metrics) {
      out += `# HELP ${m.name} ${m.help}\n# TYPE ${m.name} ${m.type}\n`;
      for (const [name, labels, value] of m.samples()) out += `${name}${formatLabels(labels)} ${formatValue(value)}\n`;
    }
    return out;
  }
}

/** The transports a session can have (`SessionOptions.transport`). */
export const TRANSPORTS = ['sub', 'sse', 'ws', 'poll', 'pusher'] as const;
/** Where a publish came from. */
export const PUBLISH_SOURCES = ['api', 'ws', 'pusher', 'admin'] as const;

/** The metrics every node keeps. Every label has a fixed set of values. */
export function createNodeMetrics(registry: MetricsRegistry) {
  return {
    registry,
    connectionsOpened: registry.counter('herald_connections_opened_total', 'Client streams opened, by transport.', {
      transport: TRANSPORTS,
    }),
    disconnects: registry.counter('herald_disconnects_total', 'Client streams ended by the server, by reason.', {
      reason: Object.keys(DISCONNECT_TABLE),
    }),
    published: registry.counter('herald_published_total', 'Messages accepted for publishing, by source.', {
      source: PUBLISH_SOURCES,
    }),
    replayed: registry.counter(
      'herald_publish_replayed_total',
      'Publishes answered from their idempotency key, nothing published again, by source.',
      { source: PUBLISH_SOURCES },
    ),
    // Codes are Herald's error codes only: a parser's own (HPE_INVALID_METHOD, ...) is mapped before it gets here,
    // and anything else is `other`.
    rejected: registry.counter('herald_rejected_requests_total', 'Requests answered with an error, by code.', {
      code: Object.keys(ERROR_TABLE),
    }),
    recoveries: registry.counter('herald_recoveries_total', 'Channel history re-reads after a loss, by cause (gap, epoch, broker).', {
      cause: ['gap', 'epoch', 'broker'],
    }),
    reloads: registry.counter('herald_reloads_total', 'Reload notices sent to clients (messages missed, not replayable), by reason.', {
      reason: ['expired', 'epoch', 'no_history', 'broker_lost', 'oversized'] satisfies ReloadReason[],
    }),
  };
}
export type NodeMetrics = ReturnType<typeof createNodeMetrics>;

function bounded(labels: Labels, allowed: Readonly<Record<string, ReadonlySet<string>>>): Labels {
  let out: Labels | undefined;
  for (const k in labels) {
    const set = allowed[k];
    if (set && !set.has(labels[k]!)) (out ??= { ...labels })[k] = OTHER;
  }
  return out ?? labels;
}

function* withName(name: string, samples: Iterable<[Labels, number]>): Iterable<[string, Labels, number]> {
  for (const [labels, value] of samples) yield [name, labels, value];
}

function labelKey(labels: Labels): string {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return '{' + entries.map(([k, v]) => `${k}="${v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : '\\' + c))}"`).join(',') + '}';
}
