/**
 * The live connections to one Redis server: the standalone Redis, or one master of a Redis Cluster (the broker keeps
 * one link per master, ./redis.ts). A link is two connections, one for commands and one subscriber, and it never
 * reconnects by itself (node-redis' reconnectStrategy is off): when either connection breaks it calls `onBroken` once
 * and is thrown away; the broker's shard (./redis-shard.ts) builds a new one and restores its subscriptions from the
 * broker's own set. One owner of reconnection keeps the states few and testable.
 *
 * `destroy()` closes both sockets at once, also while they are still connecting: every socket of a link is created
 * with the link's AbortSignal, so a destroy can never leave behind a socket that finishes connecting later (node-redis'
 * own destroy() misses a socket whose TCP handshake is in flight; such sockets piled up, one per failed attempt, and
 * kept a stopping process alive).
 */
import { slotOf } from './redis-slot.js';

type RedisLib = typeof import('@redis/client');
type Client = ReturnType<RedisLib['createClient']>;

/**
 * node-redis is loaded by the first Redis broker that starts, not at import: it is ~20 MB of a process's RSS, and a
 * node on the embedded broker (every worker of `herald serve --workers N` without Redis) never uses it.
 */
let redisLib: RedisLib | undefined;

export async function loadRedisClient(): Promise<void> {
  redisLib ??= await import('@redis/client');
}

function redis(): RedisLib {
  if (!redisLib) throw new Error('node-redis is not loaded: RedisBroker.start() loads it (loadRedisClient)');
  return redisLib;
}

export interface LinkOptions {
  /** `redis://[user:pass@]HOST:PORT[/db]` or `rediss://...`: one server. */
  readonly url: string;
  /** CLIENT SETNAME of every connection (so operators and tests can tell a node's connections in CLIENT LIST). */
  readonly clientName: string;
  /** Connect timeout and per-command timeout, milliseconds. */
  readonly timeoutMs: number;
  /** Cluster: sharded pub/sub (SSUBSCRIBE/SPUBLISH, channels grouped by slot). Standalone: SUBSCRIBE/PUBLISH. */
  readonly sharded: boolean;
  onMessage(channel: string, data: string): void;
  /** Called once, when the first of the link's connections breaks. */
  onBroken(reason: string): void;
  /** Redis unsubscribed `channel` on its own: its slot now belongs to another master (a resharding or failover). */
  onMoved?(channel: string): void;
  /** A command was answered MOVED or ASK: the cluster's slot map changed. */
  onRedirect?(): void;
}

export interface RedisLink {
  /** The publish command a script must use on this deployment: PUBLISH (standalone) or SPUBLISH (cluster). */
  readonly publishCommand: 'PUBLISH' | 'SPUBLISH';
  connect(): Promise<void>;
  publish(channel: string, data: string): Promise<void>;
  subscribe(channels: readonly string[]): Promise<void>;
  unsubscribe(channels: readonly string[]): Promise<void>;
  /** Run a raw command on the command connection (`key` only names what the broker routed it by). */
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
  // No node-redis loaded: no node-redis error, and nothing was handed to Redis.
  const lib = redisLib;
  if (!lib) return err instanceof Error && err.message === 'The queue is full';
  return (
    err instanceof lib.ClientClosedError ||
    err instanceof lib.ClientOfflineError ||
    err instanceof lib.AbortError ||
    (err instanceof lib.TimeoutError && !(err instanceof lib.SocketTimeoutDuringMaintenanceError)) ||
    err instanceof lib.ErrorReply ||
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

/** SSUBSCRIBE accepts the channels of one slot per call: group by slot (node-redis pipelines the calls). */
function bySlot(channels: readonly string[]): string[][] {
  const groups = new Map<number, string[]>();
  for (const c of channels) {
    const slot = slotOf(c);
    const g = groups.get(slot);
    if (g) g.push(c);
    else groups.set(slot, [c]);
  }
  return [...groups.values()].flatMap((g) => chunks(g));
}

/** A MOVED or ASK error reply: the command went to a master that no longer serves the slot. */
export function isRedirect(err: unknown): boolean {
  return err instanceof Error && /^(MOVED|ASK) /.test(err.message);
}

export function createLink(options: LinkOptions): RedisLink {
  return new ServerLink(options);
}

class ServerLink implements RedisLink {
  readonly publishCommand: 'PUBLISH' | 'SPUBLISH';
  private readonly cmd: Client;
  private readonly sub: Client;
  /** Destroys every socket of this link, connected or still connecting. */
  private readonly abort = new AbortController();
  private broken = false;
  /** The first error a connection reported, the cause a failed connect() may not carry itself. */
  private firstError: Error | undefined;
  private readonly listener = (message: string, channel: string): void => this.options.onMessage(channel, message);

  constructor(private readonly options: LinkOptions) {
    this.publishCommand = options.sharded ? 'SPUBLISH' : 'PUBLISH';
    this.cmd = redis().createClient({
      url: options.url,
      name: options.clientName,
      // Commands fail at once while the connection is down, instead of queueing: a publish answers 503 at once.
      disableOfflineQueue: true,
      socket: { connectTimeout: options.timeoutMs, reconnectStrategy: false, signal: this.abort.signal },
      commandOptions: { timeout: options.timeoutMs },
    });
    this.sub = this.cmd.duplicate();
    for (const c of [this.cmd, this.sub]) {
      c.on('error', (err: Error) => {
        this.firstError ??= err;
        this.fail(`connection error: ${err.message}`);
      });
      c.on('end', () => this.fail('connection closed'));
    }
    this.sub.on('sharded-channel-moved', (channel: string) => {
      if (!this.broken) this.options.onMoved?.(channel);
    });
  }

  async connect(): Promise<void> {
    const started = Date.now();
    try {
      await Promise.all([this.cmd.connect(), this.sub.connect()]);
    } catch (err) {
      // node-redis rejects with "Socket closed unexpectedly" both when its connect timeout cut a server that never
      // answered and after the socket said why (a TLS error, a server that is not Redis): keep what tells the cause
      // apart, so the start-up log line names it (./redis-failure.ts).
      const errors = [this.firstError, err].filter((e, i, all) => e !== undefined && all.indexOf(e) === i);
      if (Date.now() - started >= this.options.timeoutMs * 0.9) errors.unshift(Object.assign(new Error(`no answer within ${this.options.timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      if (errors.length > 1) throw new AggregateError(errors, (err as Error).message);
      throw err;
    }
    if (this.broken) throw new Error('link destroyed while connecting');
  }

  async publish(channel: string, data: string): Promise<void> {
    await this.watch(this.options.sharded ? this.cmd.sPublish(channel, data) : this.cmd.publish(channel, data));
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    // A MOVED answer here means the slot map changed: watch() has it re-read.
    if (this.options.sharded) await Promise.all(bySlot(channels).map((c) => this.watch(this.sub.sSubscribe(c, this.listener))));
    else await Promise.all(chunks(channels).map((c) => this.sub.subscribe(c, this.listener)));
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    if (this.options.sharded) await Promise.all(bySlot(channels).map((c) => this.sub.sUnsubscribe(c, this.listener)));
    else await Promise.all(chunks(channels).map((c) => this.sub.unsubscribe(c, this.listener)));
  }

  command(_key: string | undefined, args: readonly string[]): Promise<unknown> {
    return this.watch(this.cmd.sendCommand([...args]));
  }

  destroy(): void {
    this.broken = true;
    this.abort.abort();
    for (const c of [this.cmd, this.sub]) {
      try {
        c.destroy();
      } catch {
        /* not open */
      }
    }
  }

  private watch<T>(call: Promise<T>): Promise<T> {
    return call.catch((err: unknown) => {
      if (isRedirect(err)) this.options.onRedirect?.();
      throw err;
    });
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

/** The `redis://` URL of one cluster node (`host:port`), with the cluster URL's credentials. */
export function nodeUrl(clusterUrl: string, address: string): string {
  const { username, password } = parseClusterUrl(clusterUrl);
  const auth = password !== undefined ? `${encodeURIComponent(username ?? '')}:${encodeURIComponent(password)}@` : '';
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon);
  // An IPv6 address goes in brackets in a URL.
  return `redis://${auth}${host.includes(':') ? `[${host}]` : host}${address.slice(colon)}`;
}

/**
 * One CLUSTER SLOTS from a cluster node that no link holds (when no master is reachable through a link): a single
 * connection, closed when answered, failed or aborted.
 */
export async function clusterSlotsFrom(url: string, timeoutMs: number, signal: AbortSignal): Promise<unknown> {
  const abort = new AbortController();
  const onAbort = (): void => abort.abort();
  signal.addEventListener('abort', onAbort);
  await loadRedisClient();
  const client = redis().createClient({
    url,
    disableOfflineQueue: true,
    socket: { connectTimeout: timeoutMs, reconnectStrategy: false, signal: abort.signal },
    commandOptions: { timeout: timeoutMs },
  });
  client.on('error', () => undefined);
  try {
    if (signal.aborted) throw new Error('closed');
    await client.connect();
    return await client.sendCommand(['CLUSTER', 'SLOTS']);
  } finally {
    signal.removeEventListener('abort', onAbort);
    abort.abort();
    try {
      client.destroy();
    } catch {
      /* not open */
    }
  }
}
