/** Reading Prometheus text in tests: samples by name and labels, and the families a scrape holds. */
import assert from 'node:assert/strict';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: m[3] === '+Inf' ? Infinity : Number(m[3]) });
  }
  return out;
}

/** The value of the one sample with this name whose labels include `labels`; fails when there is none. */
export function valueOf(text: string, name: string, labels: Record<string, string> = {}): number {
  const found = parseSamples(text).filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  assert.ok(found.length > 0, `no sample ${name}${JSON.stringify(labels)} in /metrics`);
  return found.reduce((sum, s) => sum + s.value, 0);
}

/** Metric family names declared by `# TYPE` lines. */
export function familiesOf(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

/** Every name a query may use for the families in `text` (histograms add _bucket, _sum and _count). */
export function seriesNamesOf(text: string): Set<string> {
  const out = new Set<string>();
  for (const [name, type] of familiesOf(text)) {
    out.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) out.add(name + suffix);
  }
  return out;
}
