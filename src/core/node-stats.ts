/**
 * The figures the admin dashboard shows, one snapshot per node per second, taken on the node's one ticker (never
 * per viewer), and shared with the other nodes over the control path, so any node's dashboard shows them all.
 * A node not heard from for PEER_EXPIRY_MS (stopped, or cut from the broker) drops off the list.
 *
 * Every total here is the value of a /metrics series at the same moment (named beside each field), so what the
 * page shows can be checked against what Prometheus scrapes.
 */
import { hostname } from 'node:os';
import { VERSION } from '../version.js';
import type { ChannelActivity } from './hub.js';
import type { HeraldNode } from './node.js';
import type { ControlMessage } from './control-path.js';

export const STATS_MESSAGE = 'stats';
/** A peer whose last snapshot is older than this is gone. */
export const PEER_EXPIRY_MS = 5000;
/** Busiest channels per node in a snapshot. */
export const BUSIEST_LIMIT = 10;
/** Peers remembered at most (a bound on what the control channel can make a node keep). */
const MAX_PEERS = 256;

export interface NodeStats {
  readonly node: string;
  readonly host: string;
  readonly pid: number;
  readonly startedAt: number;
  /** Herald's version on that node (absent from nodes older than the server API). */
  readonly version?: string;
  /** When the snapshot was taken (ms since the epoch). */
  readonly at: number;
  /** `herald_broker_ready` (1 → true) and the broker's kind. */
  readonly broker: { readonly kind: string; readonly ready: boolean; readonly shards?: { ready: number; total: number } };
  readonly draining: boolean;
  /** `herald_open_sessions{transport}`. */
  readonly connections: Readonly<Record<string, number>>;
  /** `herald_hub_channels`. */
  readonly channels: number;
  /** `herald_hub_subscriptions`. */
  readonly subscriptions: number;
  /** Per second over the last tick: messages accepted for publishing here, delivered here, frames written. */
  readonly rates: { readonly messagesIn: number; readonly messagesOut: number; readonly deliveries: number };
  readonly totals: {
    /** `herald_published_total`, every source. */
    readonly messagesIn: number;
    /** `herald_hub_publications_total`. */
    readonly messagesOut: number;
    /** `herald_delivered_total`. */
    readonly deliveries: number;
    /** `herald_disconnects_total{reason="slow"}`. */
    readonly slow: number;
    /** `herald_reloads_total`, every reason. */
    readonly reloads: number;
  };
  /** Channels with the most messages in the last second, on this node. */
  readonly busiest: readonly ChannelActivity[];
}

export type StatsListener = (nodes: readonly NodeStats[]) => void;

export class ClusterStats {
  private own: NodeStats | undefined;
  private readonly peers = new Map<string, NodeStats>();
  private readonly listeners = new Set<StatsListener>();
  private readonly startedAt = Date.now();
  private readonly host = hostname();
  private previous: { at: number; messagesIn: number; messagesOut: number; deliveries: number } | undefined;

  constructor(private readonly node: HeraldNode) {
    node.control.on(STATS_MESSAGE, (m) => this.peerStats(m));
    node.onTick((now) => this.tick(now));
    // Announced as soon as the node can hear answers, not at its first tick: the cluster-wide calls of the other
    // nodes wait for it from then on, and the peers answer the hello with their own stats, so it knows them at once.
    node.control.onSubscribed(() => this.announce());
  }

  /** Our stats now, to every node, asking each for theirs (`hello`). */
  private announce(): void {
    this.own = this.sample(Date.now());
    this.node.control.send(STATS_MESSAGE, { stats: this.own, hello: true }).catch(() => undefined);
  }

  /** This node first, then its peers by id. */
  nodes(): NodeStats[] {
    const out: NodeStats[] = [];
    if (this.own) out.push(this.own);
    return out.concat([...this.peers.values()].sort((a, b) => (a.node < b.node ? -1 : 1)));
  }

  /** A node's latest snapshot, this one's included. */
  find(nodeId: string): NodeStats | undefined {
    return nodeId === this.node.nodeId ? this.own : this.peers.get(nodeId);
  }

  /** Called with every node's snapshot once a second; returns the function that stops it. */
  subscribe(listener: StatsListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A snapshot now, without waiting for the ticker (the dashboard's first figures). */
  current(): NodeStats[] {
    if (!this.own) this.own = this.sample(Date.now());
    else {
      // The counts of this node are read live: the last sample may be up to a tick old (or the start-up announce),
      // and an API caller who just opened a connection expects to see it. Rates stay those of the last tick.
      const node = this.node;
      this.own = { ...this.own, connections: node.sessionsByTransport(), channels: node.hub.channelCount(), subscriptions: node.hub.subscriptionCount() };
    }
    return this.nodes();
  }

  private tick(now: number): void {
    this.own = this.sample(now);
    for (const [id, s] of this.peers) if (now - s.at > PEER_EXPIRY_MS) this.peers.delete(id);
    // Shared whatever the broker: alone on the memory broker nobody listens, and it costs one small message a second.
    this.node.control.send(STATS_MESSAGE, { stats: this.own }).catch(() => undefined);
    if (this.listeners.size === 0) return;
    const nodes = this.nodes();
    for (const l of this.listeners) l(nodes);
  }

  private sample(now: number): NodeStats {
    const node = this.node;
    const metrics = node.metrics;
    const totals = {
      messagesIn: sumOf(metrics.published.samples()),
      messagesOut: node.hub.publications,
      deliveries: node.hub.deliveries,
      slow: metrics.disconnects.get({ reason: 'slow' }),
      reloads: sumOf(metrics.reloads.samples()),
    };
    const prev = this.previous;
    const seconds = prev ? Math.max(0.001, (now - prev.at) / 1000) : 1;
    const rate = (key: 'messagesIn' | 'messagesOut' | 'deliveries'): number =>
      prev ? Math.round(((totals[key] - prev[key]) / seconds) * 10) / 10 : 0;
    const rates = { messagesIn: rate('messagesIn'), messagesOut: rate('messagesOut'), deliveries: rate('deliveries') };
    this.previous = { at: now, messagesIn: totals.messagesIn, messagesOut: totals.messagesOut, deliveries: totals.deliveries };
    const shards = node.broker.shardReadiness?.();
    return {
      node: node.nodeId,
      host: this.host,
      pid: process.pid,
      startedAt: this.startedAt,
      version: VERSION,
      at: now,
      broker: { kind: node.broker.kind, ready: node.broker.isReady(), ...(shards ? { shards } : {}) },
      draining: node.isDraining,
      connections: node.sessionsByTransport(),
      channels: node.hub.channelCount(),
      subscriptions: node.hub.subscriptionCount(),
      rates,
      totals,
      busiest: node.hub.takeBusiest(BUSIEST_LIMIT),
    };
  }

  private peerStats(message: ControlMessage): void {
    const stats = checkStats(message.body['stats'], message.from);
    if (!stats) return;
    if (!this.peers.has(stats.node) && this.peers.size >= MAX_PEERS) return;
    // Stamped with our clock: a peer whose clock is off must not look expired (or immortal).
    this.peers.set(stats.node, { ...stats, at: Date.now() });
    // A node that just started: tell it of us now rather than at our next tick (to it alone).
    if (message.body['hello'] === true) {
      this.own ??= this.sample(Date.now());
      this.node.control.send(STATS_MESSAGE, { stats: this.own }, message.from).catch(() => undefined);
    }
  }
}

function sumOf(samples: Iterable<[Record<string, string>, number]>): number {
  let n = 0;
  for (const [, v] of samples) n += v;
  return n;
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const record = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A peer's snapshot, checked field by field (it came over the broker); undefined when malformed. */
export function checkStats(v: unknown, from: string): NodeStats | undefined {
  if (!record(v) || v['node'] !== from) return undefined;
  const { host, pid, startedAt, broker, draining, connections, channels, subscriptions, rates, totals, busiest } = v;
  if (typeof host !== 'string' || host.length > 255 || !finite(pid) || !finite(startedAt)) return undefined;
  if (!record(broker) || typeof broker['kind'] !== 'string' || broker['kind'].length > 32 || typeof broker['ready'] !== 'boolean') return undefined;
  if (typeof draining !== 'boolean' || !finite(channels) || !finite(subscriptions)) return undefined;
  if (!record(connections) || Object.keys(connections).length > 16) return undefined;
  for (const [k, n] of Object.entries(connections)) if (k.length > 32 || !finite(n)) return undefined;
  if (!record(rates) || !['messagesIn', 'messagesOut', 'deliveries'].every((k) => finite(rates[k]))) return undefined;
  if (!record(totals) || !['messagesIn', 'messagesOut', 'deliveries', 'slow', 'reloads'].every((k) => finite(totals[k]))) return undefined;
  if (!Array.isArray(busiest) || busiest.length > BUSIEST_LIMIT) return undefined;
  for (const b of busiest as unknown[]) {
    if (!record(b) || typeof b['channel'] !== 'string' || b['channel'].length > 255 || !finite(b['messages']) || !finite(b['subscribers'])) return undefined;
  }
  const shards = broker['shards'];
  const version = v['version'];
  return {
    node: from,
    host,
    pid,
    startedAt,
    ...(typeof version === 'string' && version.length <= 64 ? { version } : {}),
    at: Date.now(),
    broker: {
      kind: broker['kind'],
      ready: broker['ready'],
      ...(record(shards) && finite(shards['ready']) && finite(shards['total']) ? { shards: { ready: shards['ready'], total: shards['total'] } } : {}),
    },
    draining,
    connections: { ...(connections as Record<string, number>) },
    channels,
    subscriptions,
    // Rebuilt rather than passed on, so nothing but these fields travels on to a dashboard.
    rates: { messagesIn: rates['messagesIn'] as number, messagesOut: rates['messagesOut'] as number, deliveries: rates['deliveries'] as number },
    totals: {
      messagesIn: totals['messagesIn'] as number,
      messagesOut: totals['messagesOut'] as number,
      deliveries: totals['deliveries'] as number,
      slow: totals['slow'] as number,
      reloads: totals['reloads'] as number,
    },
    busiest: (busiest as Record<string, unknown>[]).map((b) => ({
      channel: b['channel'] as string,
      messages: b['messages'] as number,
      subscribers: b['subscribers'] as number,
    })),
  };
}
