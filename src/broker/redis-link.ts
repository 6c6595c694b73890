/**
 * One set of live connections to a Redis deployment, standalone or Cluster, behind one small interface. A link never
 * reconnects by itself (node-redis' reconnectStrategy is off): when any of its connections breaks it calls
 * `onBroken` once and is thrown away; the broker (./redis.ts) builds a new link and restores subscriptions from its
 * own set. One owner of reconnection keeps the states few and testable.
 *
 * Connections: standalone, one command connection + one subscriber connection. Cluster, per master, one command
 * connection + one sharded-subscriber connection (node-redis opens the latter per shard on the first SSUBSCRIBE).
 * Every channel is multiplexed over them, whatever the number of clients.
 */
import {
  AbortError,
  ClientClosedError,
  ClientOfflineError,
  createClient,
  createCluster,
  ErrorReply,
  SocketTimeoutDuringMaintenanceError,
  TimeoutError,
} from '@redis/client';
import { slotOf, tagForSlot } from './redis-slot.js';

type StandaloneClient = ReturnType<typeof createClient>;
type ClusterClient = ReturnType<typeof createCluster>;

export interface LinkOptions {
  /** `redis://...`, `rediss://...` or `redis-cluster://HOST:PORT,HOST:PORT`. */
  readonly url: string;
  /** CLIENT SETNAME of every connection (so operators and tests can tell a node's connections in CLIENT LIST). */
  readonly clientName: string;
  /** Connect timeout and per-command timeout, milliseconds. */
  readonly timeoutMs: number;
  onMessage(channel: string, data: string): void;
  /** Called once, when the first of the link's connections breaks. */
  onBroken(reason: string): void;
}

export interface RedisLink {
  /** "redis" or "redis-cluster". */
  readonly kind: string;
  /** The publish command a script must use on this deployment: PUBLISH (standalone) or SPUBLISH (cluster). */
  readonly publishCommand: 'PUBLISH' | 'SPUBLISH';
  connect(): Promise<void>;
  publish(channel: string, data: string): Promise<void>;
  subscribe(channels: readonly string[]): Promise<void>;
  unsubscribe(channels: readonly string[]): Promise<void>;
  /** Channels whose round trip proves every subscriber connection delivers: one per shard. */
  probeChannels(prefix: string): string[];
  /** Index, in `probeChannels`' answer, of the probe sharing `channel`'s subscriber connection. */
  shardOf(channel: string): number;
  /** Run a raw command on the connection that owns `key` (any connection when undefined). */
  command(key: string | undefined, args: readonly string[]): Promise<unknown>;
  destroy(): void;
}

/**
 * Did a failed command certainly not take effect? True when node-redis refused it before writing it (the client was
 * closed or offline, the command was aborted, or its timeout fired while it still waited to be written: node-redis
 * drops the timeout once a command is written) or when Redis answered it with an error. Anything else (the socket
 * closed, the client was destroyed, no answer in time) may have reached Redis: its outcome is unknown.
 */
export function certainlyNotApplied(err: unknown): boolean {
  return (
    err instanceof ClientClosedError ||
    err instanceof ClientOfflineError ||
    err instanceof AbortError ||
    (err instanceof TimeoutError && !(err instanceof SocketTimeoutDuringMaintenanceError)) ||
    err instanceof ErrorReply ||
    (err instanceof Error && err.message === 'The queue is full')
  );
}

/** Largest number of channels in one SUBSCRIBE/UNSUBSCRIBE command. */
const CHUNK = 1000;

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

export function createLink(options: LinkOptions): RedisLink {
  return options.url.startsWith('redis-cluster://') ? new ClusterLink(options) : new StandaloneLink(options);
}

class StandaloneLink implements RedisLink {
  readonly kind = 'redis';
  readonly publishCommand = 'PUBLISH';
  private readonly cmd: StandaloneClient;
  private readonly sub: StandaloneClient;
  private broken = false;
  private readonly listener = (message: string, channel: string): void => this.options.onMessage(channel, message);

  constructor(private readonly options: LinkOptions) {
    this.cmd = createClient({
      url: options.url,
      name: options.clientName,
      // Commands fail at once while the connection is down, instead of queueing: a publish answers 503 at once.
      disableOfflineQueue: true,
      socket: { connectTimeout: options.timeoutMs, reconnectStrategy: false },
      commandOptions: { timeout: options.timeoutMs },
    });
    this.sub = this.cmd.duplicate();
    for (const c of [this.cmd, this.sub]) {
      c.on('error', (err: Error) => this.fail(`connection error: ${err.message}`));
      c.on('end', () => this.fail('connection closed'));
    }
  }

  async connect(): Promise<void> {
    await Promise.all([this.cmd.connect(), this.sub.connect()]);
  }

  async publish(channel: string, data: string): Promise<void> {
    await this.cmd.publish(channel, data);
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    await Promise.all(chunks(channels).map((c) => this.sub.subscribe(c, this.listener)));
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    await Promise.all(chunks(channels).map((c) => this.sub.unsubscribe(c, this.listener)));
  }

  probeChannels(prefix: string): string[] {
    return [prefix];
  }

  shardOf(_channel: string): number {
    return 0;
  }

  command(_key: string | undefined, args: readonly string[]): Promise<unknown> {
    return this.cmd.sendCommand([...args]);
  }

  destroy(): void {
    this.broken = true;
    for (const c of [this.cmd, this.sub]) {
      try {
        c.destroy();
      } catch {
        /* not open */
      }
    }
  }

  private fail(reason: string): void {
    if (this.broken) return;
    this.broken = true;
    this.options.onBroken(reason);
  }
}

/** `redis-cluster://[user:pass@]h1:p1,h2:p2` → root node URLs and credentials. */
export function parseClusterUrl(url: string): { rootNodes: { url: string }[]; username?: string; password?: string } {
  let rest = url.slice('redis-cluster://'.length);
  let username: string | undefined;
  let password: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    const auth = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = auth.indexOf(':');
    username = decodeURIComponent(colon >= 0 ? auth.slice(0, colon) : '') || undefined;
    password = decodeURIComponent(colon >= 0 ? auth.slice(colon + 1) : auth);
  }
  const rootNodes = rest.split(',').filter((h) => h.length > 0).map((h) => ({ url: `redis://${h}` }));
  return { rootNodes, ...(username ? { username } : {}), ...(password ? { password } : {}) };
}

class ClusterLink implements RedisLink {
  readonly kind = 'redis-cluster';
  readonly publishCommand = 'SPUBLISH';
  private readonly cluster: ClusterClient;
  /** Slot → index of the probe on the master serving it (filled by probeChannels). */
  private readonly probeOfSlot = new Uint8Array(16384);
  private broken = false;
  private readonly listener = (message: string, channel: string): void => this.options.onMessage(channel, message);

  constructor(private readonly options: LinkOptions) {
    const { rootNodes, username, password } = parseClusterUrl(options.url);
    this.cluster = createCluster({
      rootNodes,
      defaults: {
        name: options.clientName,
        disableOfflineQueue: true,
        socket: { connectTimeout: options.timeoutMs, reconnectStrategy: false },
        ...(username ? { username } : {}),
        ...(password ? { password } : {}),
      },
      commandOptions: { timeout: options.timeoutMs },
    });
    this.cluster.on('error', (err: Error) => this.fail(`cluster error: ${err.message}`));
    this.cluster.on('node-error', (err: Error) => this.fail(`node error: ${err.message}`));
    this.cluster.on('node-disconnect', () => this.fail('node connection closed'));
  }

  async connect(): Promise<void> {
    await this.cluster.connect();
  }

  async publish(channel: string, data: string): Promise<void> {
    await this.cluster.sPublish(channel, data);
  }

  /** SSUBSCRIBE accepts the channels of one slot per call: group by slot; node-redis pipelines the calls. */
  async subscribe(channels: readonly string[]): Promise<void> {
    await Promise.all(this.bySlot(channels).map((c) => this.cluster.sSubscribe(c, this.listener)));
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    await Promise.all(this.bySlot(channels).map((c) => this.cluster.sUnsubscribe(c, this.listener)));
  }

  /** One probe channel per master, each hashed (by a tag) to a slot that master serves. */
  probeChannels(prefix: string): string[] {
    const out: string[] = [];
    const index = new Map<string, number>();
    for (let slot = 0; slot < 16384; slot++) {
      const master = this.cluster.getSlotMaster(slot);
      const id = `${master.host}:${master.port}`;
      let i = index.get(id);
      if (i === undefined) {
        i = out.length;
        index.set(id, i);
        out.push(`${prefix}:${tagForSlot(slot)}`);
      }
      this.probeOfSlot[slot] = i;
    }
    return out;
  }

  shardOf(channel: string): number {
    return this.probeOfSlot[slotOf(channel)] ?? 0;
  }

  command(key: string | undefined, args: readonly string[]): Promise<unknown> {
    return this.cluster.sendCommand(key, false, [...args]);
  }

  destroy(): void {
    this.broken = true;
    try {
      this.cluster.destroy();
    } catch {
      /* not open */
    }
  }

  private bySlot(channels: readonly string[]): string[][] {
    const groups = new Map<number, string[]>();
    for (const c of channels) {
      const slot = slotOf(c);
      const g = groups.get(slot);
      if (g) g.push(c);
      else groups.set(slot, [c]);
    }
    return [...groups.values()].flatMap((g) => chunks(g));
  }

  private fail(reason: string): void {
    if (this.broken) return;
    this.broken = true;
    this.options.onBroken(reason);
  }
}
