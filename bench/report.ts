/** The human-readable report of a bench run. */
import { formatProfile, newestProfile } from './profile.js';
import { errorText, stepLine, type BenchResult } from './run.js';

const KB = 1024;
const MB = 1024 * 1024;

export function formatReport(r: BenchResult): string {
  const o = r.options;
  const lines: string[] = [];
  lines.push(`herald bench ${o.scenario}: ${o.connections} ${o.transport} connections on ${o.channels} channel(s), ` +
    `${o.workers} worker(s), ${o.sourceAddresses} source address(es)`);
  lines.push(`machine: ${r.machine.nproc} cores (${r.machine.cpu}), ${(r.machine.memoryBytes / MB / 1024).toFixed(1)} GiB, ` +
    `node ${r.machine.node}, load average ${r.machine.loadAverage.join(' ')} at ${r.startedAt}`);
  if (r.server.command) lines.push(`server${r.server.nodes ? ` (node 1 of ${r.server.nodes.length})` : ''}: ${r.server.command}`);
  const c = r.connections;
  lines.push(`connections held: ${c.held} of ${c.requested} (${c.failed} failed, ${c.dropped} dropped, ` +
    `connected in ${c.connectSeconds.toFixed(1)} s)${errorText(c.errors)}`);
  const s = r.server;
  if (s.rssBeforeBytes !== undefined && s.rssHeldBytes !== undefined) {
    lines.push(`server RSS${s.nodes ? ` (sum of ${s.nodes.length} nodes)` : ''}: ${(s.rssBeforeBytes / MB).toFixed(1)} MB before, ${(s.rssHeldBytes / MB).toFixed(1)} MB with the connections held` +
      (s.rssPerConnectionBytes !== undefined ? ` → ${(s.rssPerConnectionBytes / KB).toFixed(2)} KB per connection` : ''));
    if (s.rssHeldAfterGcBytes !== undefined && s.rssPerConnectionAfterGcBytes !== undefined) {
      lines.push(`server RSS after a full GC: ${(s.rssHeldAfterGcBytes / MB).toFixed(1)} MB → ` +
        `${(s.rssPerConnectionAfterGcBytes / KB).toFixed(2)} KB per connection`);
    }
    // Several nodes: the lines above are sums; each node's share shows whether the spread was even.
    for (const [k, n] of (s.nodes ?? []).entries()) {
      const mb = (x: number | undefined): string => (x === undefined ? '?' : (x / MB).toFixed(1));
      lines.push(`  node ${k + 1} (${n.url}, pid ${n.pid}): ${mb(n.rssBeforeBytes)} MB before, ${mb(n.rssHeldBytes)} MB held` +
        (n.rssHeldAfterGcBytes !== undefined ? `, ${mb(n.rssHeldAfterGcBytes)} MB after GC` : ''));
    }
    if (s.rssTotalPerConnectionBytes !== undefined) {
      lines.push(`server RSS held / connections held (start-up footprints included): ${(s.rssTotalPerConnectionBytes / KB).toFixed(2)} KB per connection`);
    }
    if (s.machineHeldBytes !== undefined && s.machinePerConnectionBytes !== undefined) {
      lines.push(`server memory held, the node binary's shared file pages counted once (own pages of every process + ` +
        `file pages of the largest): ${(s.machineHeldBytes / MB).toFixed(1)} MB → ${(s.machinePerConnectionBytes / KB).toFixed(2)} KB per connection`);
    }
    // A --workers server: the primary's and each worker's share (the sums above include them all).
    const held = s.processes?.rssHeldBytes;
    if (held && held.length > 1) {
      lines.push(`  ${held.length} server processes held: ` +
        held.map((p, k) => {
          const before = s.processes?.rssBeforeBytes?.find((b) => b.pid === p.pid);
          const split = p.anonBytes !== undefined && p.fileBytes !== undefined
            ? ` (own ${(p.anonBytes / MB).toFixed(1)} + file ${(p.fileBytes / MB).toFixed(1)})` : '';
          return `pid ${p.pid}${k === 0 ? ' (primary)' : ''} ${before ? `${(before.rssBytes / MB).toFixed(1)} → ` : ''}${(p.rssBytes / MB).toFixed(1)} MB${split}`;
        }).join(', '));
    }
  } else if (s.pid === undefined) {
    lines.push('server RSS: not measured (give --server-pid or --spawn)');
  }
  for (const step of r.steps) lines.push(stepLine(step));
  const once = r.steps[0];
  if (o.scenario === 'hold' && once) {
    const d = once.deliveries;
    const every = once.published.ok === 1 && d.expected === c.held && d.received === d.expected && d.duplicates === 0;
    lines.push(`one message to ${c.held} held connections: ${d.received} received it, ${d.lost} did not, ${d.duplicates} twice → ` +
      (every && c.held === c.requested ? 'EVERY CONNECTION GOT IT ONCE' : 'NOT EVERY CONNECTION GOT IT'));
  }
  if (r.steps.length > 0) {
    lines.push(r.maxHeldRate !== undefined ? `highest rate held: ${r.maxHeldRate} msg/s` : 'no rate held');
  }
  if (s.cpuProfDir) {
    const file = newestProfile(s.cpuProfDir);
    lines.push(file ? formatProfile(file).trimEnd() : `server CPU profile: none written in ${s.cpuProfDir}`);
  }
  if (r.stoppedEarly) lines.push(`stopped early: ${r.stoppedEarly}`);
  return lines.join('\n') + '\n';
}
