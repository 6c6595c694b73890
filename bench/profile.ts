/**
 * A short text summary of a V8 .cpuprofile (what `node --cpu-prof` writes): self time per function, heaviest
 * first. Enough to see where the server's CPU goes without opening DevTools.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileLine {
  name: string;
  where: string;
  selfMs: number;
  percent: number;
}

export function summarizeProfile(file: string, top = 20): { totalMs: number; lines: ProfileLine[] } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<string, { name: string; where: string; us: number }>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0;
    const node = byId.get(p.samples[i]!);
    if (!node) continue;
    total += dt;
    const f = node.callFrame;
    const where = f.url ? `${f.url.replace(/^.*\/(dist|node_modules)\//, '$1/').replace(/^node:/, 'node:')}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName}@${where}`;
    const e = self.get(key) ?? { name: f.functionName || '(anonymous)', where, us: 0 };
    e.us += dt;
    self.set(key, e);
  }
  const lines = [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({ name: e.name, where: e.where, selfMs: Math.round(e.us / 1000), percent: Math.round((e.us / total) * 1000) / 10 }));
  return { totalMs: Math.round(total / 1000), lines };
}

/** The newest .cpuprofile in `dir`, if any. */
export function newestProfile(dir: string): string | undefined {
  try {
    const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort();
    const last = files[files.length - 1];
    return last === undefined ? undefined : join(dir, last);
  } catch {
    return undefined;
  }
}

export function formatProfile(file: string, top = 20): string {
  const s = summarizeProfile(file, top);
  const out = [`server CPU profile ${file}: ${s.totalMs} ms sampled; self time, heaviest first:`];
  for (const l of s.lines) out.push(`  ${l.percent.toFixed(1).padStart(5)} %  ${String(l.selfMs).padStart(6)} ms  ${l.name}  ${l.where}`);
  return out.join('\n') + '\n';
}
