/**
 * A fleet process: holds a share of a chaos run's subscribers (clients.ts) and answers the parent over IPC
 * (fleets.ts holds the other side; the messages are typed in protocol.ts). It exits when the parent goes away, so a
 * run that dies leaves no fleet behind.
 */
import { Histogram } from '../bench/histogram.js';
import { accountClient } from '../test/helpers/accounting.js';
import { startBalancer, type Balancer } from './balancer.js';
import { openClient, type Client } from './clients.js';
import type { FleetReport, FromFleet, KindReport, ToFleet } from './protocol.js';

const clients: Client[] = [];
let balancer: Balancer | undefined;

const send = (m: FromFleet): void => {
  if (process.connected) process.send?.(m);
};

async function start(m: Extract<ToFleet, { type: 'start' }>): Promise<void> {
  let base = m.upstreams[0] as string;
  if (m.upstreams.length > 1) {
    balancer = await startBalancer(m.upstreams, m.localAddress);
    base = balancer.url;
  }
  // Open in small batches: a fleet opening a thousand connections at once measures the kernel's accept queue.
  for (let i = m.from; i < m.to; i++) {
    const kind = m.kinds[i % m.kinds.length]!;
    const channel = m.channels[i % m.channels.length]!;
    clients.push(openClient(kind, { base, channel, localAddress: m.localAddress }));
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 20));
  }
  send({ type: 'started' });
}

function report(m: Extract<ToFleet, { type: 'report' }>): FleetReport {
  const kinds: Record<string, KindReport> = {};
  const latency = new Map<string, Histogram>();
  for (const c of clients) {
    const t = c.trace;
    const k = (kinds[t.kind] ??= {
      clients: 0, delivered: 0, lost: 0, behind: 0, behindClients: 0, covered: 0, duplicates: 0, outOfOrder: 0, unackedLate: 0, reloads: 0, gaveUp: 0, fatal: 0,
      lostClients: 0, resumeMs: [], catchUpMs: [], latencyUs: undefined, signals: {},
    });
    // Acknowledged messages after the last one the client delivered are not lost in a gap: it is behind (still
    // reading, or stopped). They are counted apart, and fail the run apart.
    const acked = m.acked[t.channel] ?? [];
    const lastSeq = t.seqs.length > 0 ? Math.max(...t.seqs) : -1;
    const upTo = acked.filter((s) => s <= lastSeq);
    const a = accountClient(t.seqs, t.missedAt, upTo);
    k.behind += acked.length - upTo.length;
    if (acked.length > upTo.length) k.behindClients++;
    k.clients++;
    k.delivered += t.seqs.length;
    k.lost += a.lost;
    if (a.lost > 0) k.lostClients++;
    k.covered += a.covered;
    k.duplicates += a.duplicates;
    k.outOfOrder += a.outOfOrder;
    k.unackedLate += a.unackedLate;
    k.reloads += t.missedAt.length;
    if (t.gaveUp) k.gaveUp++;
    k.fatal += t.fatal;
    k.resumeMs.push(...t.resumeMs);
    let h = latency.get(t.kind);
    if (!h) latency.set(t.kind, (h = new Histogram()));
    for (const l of t.latencies) h.record(l * 1000);
    const after = m.firstAfter[t.channel];
    if (after !== undefined && m.faultEnd !== undefined) {
      const j = t.seqs.findIndex((s) => s >= after);
      // From the moment that first message could have reached the client (the later of the fault's end and its
      // publication) to its delivery: a client is not slow because its channel was quiet. Never caught up:
      // Infinity does not survive JSON, so -1 stands for it.
      const from = Math.max(m.faultEnd, t.sent[j] ?? 0);
      k.catchUpMs.push(j < 0 ? -1 : Math.max(0, (t.times[j] as number) - from));
    }
    for (const [s, n] of Object.entries(t.signals)) k.signals[s] = (k.signals[s] ?? 0) + n;
  }
  for (const [kind, h] of latency) (kinds[kind] as KindReport).latencyUs = h.toSparse();
  return { kinds };
}

process.on('message', (m: ToFleet) => {
  switch (m.type) {
    case 'start':
      void start(m);
      break;
    case 'status': {
      const reached = clients.filter((c) => {
        const want = m.want[c.trace.channel];
        return want === undefined || (c.trace.seqs.at(-1) ?? -1) >= want;
      }).length;
      send({
        type: 'status',
        total: clients.length,
        live: clients.filter((c) => c.trace.live).length,
        reached,
        gaveUp: clients.filter((c) => c.trace.gaveUp).length,
      });
      break;
    }
    case 'report':
      send({ type: 'report', report: report(m) });
      break;
    case 'close':
      for (const c of clients) c.close();
      balancer?.close();
      process.disconnect();
      break;
  }
});
process.on('disconnect', () => {
  for (const c of clients) c.close();
  balancer?.close();
  // Give the closes a moment to reach the sockets, then go.
  setTimeout(() => process.exit(0), 200).unref();
});
