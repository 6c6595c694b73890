/**
 * The comparison as an SVG bar chart, written by the harness (no plotting dependency): one group of bars per
 * scenario, one bar per server. Rate scenarios show the highest rate held (longer is better); churn the server CPU
 * while connections come and go (shorter is better, lost and late deliveries in the label); idle ones the server
 * RSS per connection (shorter is better). Each group is scaled to its own largest value.
 */
import type { CompareCase } from './compare.js';
import { bestStep } from './compare.js';

const COLORS: Record<string, string> = { herald: '#63b3ed', 'herald-workers': '#2b6cb0', nchan: '#c05621', socketio: '#2f855a' };
const BAR = 16;
const GAP = 10;
const LABEL_W = 230;
const PLOT_W = 420;

interface Bar {
  server: string;
  value: number | undefined;
  text: string;
}

export function compareChart(cases: CompareCase[], title: string): string {
  const groups = new Map<string, Bar[]>();
  for (const c of cases) {
    const idle = c.scenario === 'idle';
    const churn = c.scenario === 'churn';
    const unit = idle ? ' (KB/conn, less is better)' : churn ? ' (server CPU %, less is better)' : ' (msg/s held)';
    const key = `${c.scenario} /${c.transport} ${c.connections.toLocaleString('en-US')}${unit}`;
    let value: number | undefined;
    let text = 'failed';
    if (c.result) {
      const step = c.result.steps[0];
      if (churn && step) {
        value = step.cpuPercent.server;
        text = `${value ?? '?'} %, lost ${step.deliveries.lost}, late ${step.deliveries.late}, churn ${step.churn?.livePerSecond ?? '?'}/s`;
      } else if (idle) {
        const per = c.result.server.rssPerConnectionBytes;
        value = per === undefined ? undefined : per / 1024;
        text = value === undefined ? '?' : `${value.toFixed(1)} KB (${c.result.connections.held} held)`;
      } else {
        value = bestStep(c.result)?.rate ?? 0;
        text = value > 0 ? `${value} msg/s` : 'none held';
      }
    }
    const list = groups.get(key) ?? [];
    list.push({ server: c.server, value, text });
    groups.set(key, list);
  }
  let y = 50;
  const parts: string[] = [];
  for (const [key, bars] of groups) {
    parts.push(`<text x="8" y="${y + BAR - 3}" font-size="12">${escape(key)}</text>`);
    const max = Math.max(1e-9, ...bars.map((b) => b.value ?? 0));
    for (const b of bars) {
      const w = Math.max(1, ((b.value ?? 0) / max) * PLOT_W);
      parts.push(`<rect x="${LABEL_W}" y="${y}" width="${w.toFixed(1)}" height="${BAR}" fill="${COLORS[b.server] ?? '#718096'}"/>`);
      parts.push(`<text x="${LABEL_W + w + 4}" y="${y + BAR - 3}" font-size="11">${escape(`${b.server}: ${b.text}`)}</text>`);
      y += BAR + 2;
    }
    y += GAP;
  }
  const width = LABEL_W + PLOT_W + 200;
  const legend = Object.entries(COLORS)
    .filter(([s]) => cases.some((c) => c.server === s))
    .map(([s, color], i) => `<rect x="${8 + i * 130}" y="26" width="12" height="12" fill="${color}"/><text x="${24 + i * 130}" y="37" font-size="12">${s}</text>`)
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/><text x="8" y="18" font-size="14" font-weight="bold">${escape(title)}</text>${legend}` +
    parts.join('') + '</svg>\n';
}

function escape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
