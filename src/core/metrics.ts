/**
 * Counters and gauges in Prometheus text format (GET /metrics). Small on purpose: integer increments on the hot
 * path, rendering only when scraped.
 */

type Labels = Record<string, string>;

interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  samples(): Iterable<[Labels, number]>;
}

export class Counter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  /** The unlabelled value, kept apart so hot paths add to a plain number. */
  private plain = 0;
  constructor(readonly name: string, readonly help: string) {}
  add(by: number): void {
    this.plain += by;
  }
  inc(labels?: Labels, by = 1): void {
    if (!labels) {
      this.plain += by;
      return;
    }
    const key = labelKey(labels);
    const v = this.values.get(key);
    if (v) v.value += by;
    else this.values.set(key, { labels, value: by });
  }
  get(labels?: Labels): number {
    if (!labels) return this.plain;
    return this.values.get(labelKey(labels))?.value ?? 0;
  }
  *samples(): Iterable<[Labels, number]> {
    if (this.plain !== 0 || this.values.size === 0) yield [{}, this.plain];
    for (const v of this.values.values()) yield [v.labels, v.value];
  }
}

export class MetricsRegistry {
  private readonly metrics: Metric[] = [];

  counter(name: string, help: string): Counter {
    const c = new Counter(name, help);
    this.metrics.push({ name, help, type: 'counter', samples: () => c.samples() });
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
        return typeof v === 'number' ? [[{}, v]] : v;
      },
    });
  }

  render(): string {
    let out = '';
    for (const m of this.metrics) {
      out += `# HELP ${m.name} ${m.help}\n# TYPE ${m.name} ${m.type}\n`;
      for (const [labels, value] of m.samples()) out += `${m.name}${formatLabels(labels)} ${value}\n`;
    }
    return out;
  }
}

/** The metrics every node keeps. */
export function createNodeMetrics(registry: MetricsRegistry) {
  return {
    registry,
    connectionsOpened: registry.counter('herald_connections_opened_total', 'Client streams opened, by transport.'),
    disconnects: registry.counter('herald_disconnects_total', 'Client streams ended by the server, by reason.'),
    published: registry.counter('herald_published_total', 'Messages accepted for publishing, by source.'),
    replayed: registry.counter('herald_publish_replayed_total', 'Publishes answered from their idempotency key, nothing published again, by source.'),
    rejected: registry.counter('herald_rejected_requests_total', 'Requests answered with an error, by code.'),
    recoveries: registry.counter('herald_recoveries_total', 'Channel history re-reads after a loss, by cause (gap, epoch, broker).'),
    reloads: registry.counter('herald_reloads_total', 'Reload notices sent to clients (messages missed, not replayable), by reason.'),
  };
}
export type NodeMetrics = ReturnType<typeof createNodeMetrics>;

function labelKey(labels: Labels): string {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');
}

function formatLabels(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return '{' + entries.map(([k, v]) => `${k}="${v.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : '\\' + c))}"`).join(',') + '}';
}
