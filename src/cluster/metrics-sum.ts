/**
 * /metrics across workers: the Prometheus texts of every Herald process of the machine, summed sample by sample
 * (same name and labels), so a scrape of any worker describes the whole machine, as one node would. Counters,
 * connection gauges, RSS and histogram buckets add up; a few gauges do not, and are combined as their meaning asks:
 * a start time is the earliest, a build info or an event-loop lag the largest, broker readiness the lowest.
 */

const COMBINE: readonly [RegExp, (a: number, b: number) => number][] = [
  [/^process_start_time_seconds$/, Math.min],
  [/^herald_broker_ready$/, Math.min],
  [/_info$/, Math.max],
  [/^nodejs_eventloop_lag_/, Math.max],
];

function combinerOf(name: string): (a: number, b: number) => number {
  for (const [pattern, fn] of COMBINE) if (pattern.test(name)) return fn;
  return (a, b) => a + b;
}

/** Sum Prometheus text-format documents: families keep their HELP/TYPE once, in first-seen order. */
export function sumMetrics(texts: readonly string[]): string {
  /** family name → its comment lines and its samples (key → value), in first-seen order. */
  const families = new Map<string, { comments: string[]; samples: Map<string, number> }>();
  let current: { comments: string[]; samples: Map<string, number> } | undefined;
  const family = (name: string): { comments: string[]; samples: Map<string, number> } => {
    let f = families.get(name);
    if (!f) families.set(name, (f = { comments: [], samples: new Map() }));
    return f;
  };
  for (const text of texts) {
    for (const line of text.split('\n')) {
      if (line === '') continue;
      if (line.startsWith('#')) {
        const name = line.split(' ')[2] ?? '';
        current = family(name);
        if (!current.comments.includes(line)) current.comments.push(line);
        continue;
      }
      const space = line.lastIndexOf(' ');
      if (space <= 0) continue;
      const key = line.slice(0, space);
      const value = Number(line.slice(space + 1));
      const name = key.replace(/\{.*$/, '');
      const f = current && families.get(baseOf(name, families)) === current ? current : family(baseOf(name, families));
      const before = f.samples.get(key);
      f.samples.set(key, before === undefined ? value : combinerOf(name)(before, value));
    }
  }
  const out: string[] = [];
  for (const f of families.values()) {
    out.push(...f.comments);
    for (const [key, value] of f.samples) out.push(`${key} ${formatValue(value)}`);
  }
  return out.join('\n') + '\n';
}

/** A histogram's `_bucket`, `_sum` and `_count` samples belong to its family. */
function baseOf(name: string, families: Map<string, unknown>): string {
  if (families.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return families.has(base) ? base : name;
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(12)));
}
