/**
 * The Redis broker, for standalone Redis (PUBLISH/SUBSCRIBE) and Redis Cluster (SPUBLISH/SSUBSCRIBE, so a message
 * travels only to the shard that owns its channel). A node holds a constant number of connections whatever its
 * client count (see ./redis-link.ts) and multiplexes every channel over them.
 *
 * What it adds to the bare connections, and why:
 * - Its own set of subscribed channels. Whenever the link breaks (Redis restart, network cut, a stalled subscriber
 *   found by the probe) it throws the link away, builds a new one with backoff, subscribes the whole set again, proves
 *   the path with one probe round trip, and only then reports ready (`onConnectionChange(true)`).
 * - Batching: subscribe/unsubscribe calls made while a batch is pending (same tick, or a burst of joins) go to Redis
 *   as one command per chunk/slot.
 * - A liveness probe: every `probeIntervalMs` it publishes a token to a per-node probe channel (one per shard) and
 *   expects it back on its subscriber connection within `timeoutMs`. A connection that silently stopped delivering
 *   is thus found within seconds, reported by `isReady()` (/readyz), and repaired by a reconnect.
 * - Bounded calls: every Redis call has a timeout; while the link is down publish and subscribe reject at once with
 *   HeraldError('unavailable') (503), never queue, never hang.
 *
 * Data is delivered verbatim: a plain `PUBLISH ch data` from any Redis client reaches every node's subscribers of ch.
 */
import { randomBytes } from 'node:crypto';
import { HeraldError } from '../errors.js';
import type { Logger } from '../util/log.js';
import type {
  BrokerHandler,
  HistoryBroker,
  HistoryQuery,
  HistoryResult,
  Publication,
  PublishOptions,
  PublishResult,
} from './broker.js';
import { RedisHistory, toPublication } from './redis-history.js';
import { certainlyNotApplied, createLink, type RedisLink } from './redis-link.js';
import { tagForSlot } from './redis-slot.js';

export interface RedisBrokerOptions {
  /** `redis://HOST:PORT`, `rediss://...` or `redis-cluster://HOST:PORT,HOST:PORT`. */
  readonly url: string;
  /** Timeout of every Redis call, of connecting, and of a probe round trip, in milliseconds. */
  readonly timeoutMs: number;
  /** Milliseconds between liveness probes. */
  readonly probeIntervalMs: number;
  readonly log: Logger;
  /** Prefix of the CLIENT SETNAME of this node's connections; a random node id is appended. @default "herald" */
  readonly clientNamePrefix?: string;
}

interface Batch {
  readonly channels: Set<string>;
  readonly promise: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

interface Probe {
  readonly channel: string;
  /** Token in flight and when it was sent; undefined when none is outstanding. */
  token: string | undefined;
  sentAt: number;
  /** When the last message of any channel arrived on this probe's subscriber connection (its shard). */
  lastDataAt: number;
}

/** Reconnect backoff: full jitter between 0 and min(cap, base * 2^attempt) (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015). */
function backoffMs(attempt: number): number {
  return Math.random() * Math.min(2000, 50 * 2 ** attempt);
}

export class RedisBroker implements HistoryBroker {
  readonly kind: string;
  /** CLIENT SETNAME of every connection of this node: tells its connections apart in CLIENT LIST. */
  readonly clientName: string;
  private readonly probePrefix: string;
  private handler: BrokerHandler | undefined;
  /** Channels this node is subscribed to: the truth that every new link is rebuilt from. */
  private readonly channels = new Set<string>();
  /** The link being proven or in use; undefined while connecting. */
  private link: RedisLink | undefined;
  /** The link is up, every channel is subscribed on it, and a probe came back: publish and subscribe may use it. */
  private ready = false;
  private connecting: Promise<void> | undefined;
  /** The link an attempt is building, so close() can end it mid-attempt (its sockets would keep the process alive). */
  private attempting: RedisLink | undefined;
  /** Links lost since start (for /metrics). */
  reconnects = 0;
  private probes: Probe[] = [];
  private probeTimer: NodeJS.Timeout | undefined;
  private probeSeq = 0;
  private subBatch: Batch | undefined;
  private unsubBatch: Batch | undefined;
  /** Last readiness told to the handler, so each change is told once. */
  private told = true;
  private closed = false;
  /** History (./redis-history.ts): the `herald` Redis Function library, run through `command`. */
  private readonly store = new RedisHistory(
    (key, args, write) => this.command(key, args, write),
    () => this.publishCommand,
  );

  constructor(private readonly options: RedisBrokerOptions) {
    this.kind = options.url.startsWith('redis-cluster://') ? 'redis-cluster' : 'redis';
    const id = randomBytes(6).toString('hex');
    this.clientName = `${options.clientNamePrefix ?? 'herald'}-${id}`;
    this.probePrefix = `herald:probe:${id}`;
  }

  /** Connects once; if Redis is unreachable the node still starts (not ready) and keeps trying in the background. */
  async start(handler: BrokerHandler): Promise<void> {
    this.handler = handler;
    // Wait for the first attempt only (connect, resubscribe, probe: each bounded by timeoutMs): a Redis that is down
    // must not keep the node from starting; it starts not ready and keeps trying.
    await new Promise<void>((resolve) => {
      this.reconnect(resolve).then(resolve, resolve);
    });
    this.probeTimer = setInterval(() => this.probeTick(), this.options.probeIntervalMs);
    this.probeTimer.unref();
  }

  isReady(): boolean {
    return this.ready && !this.closed;
  }

  subscribedCount(): number {
    return this.channels.size;
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    const fresh = channels.filter((c) => !this.channels.has(c));
    if (fresh.length === 0) return;
    this.requireLink();
    this.subBatch ??= this.newBatch(() => this.flushSubscribe());
    for (const c of fresh) this.subBatch.channels.add(c);
    return this.subBatch.promise;
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    const known = channels.filter((c) => this.channels.delete(c));
    // Down: nothing to tell Redis; the next link is built from the set, which no longer holds them.
    if (known.length === 0 || !this.ready) return;
    this.unsubBatch ??= this.newBatch(() => this.flushUnsubscribe());
    for (const c of known) this.unsubBatch.channels.add(c);
    return this.unsubBatch.promise;
  }

  async publish(channel: string, data: string, options?: PublishOptions): Promise<PublishResult> {
    const link = this.requireLink();
    const policy = options?.history && options.history.size > 0 ? options.history : undefined;
    const once = options?.idempotency;
    // With history or an idempotency key: check the key, append, trim, expire and publish (with the id) in one
    // atomic function call. A retry after an unknown outcome thus publishes at most once.
    if (policy || once) {
      const r = await this.store.publish(channel, data, policy, once);
      return { ...(r.id !== '' ? { id: r.id } : {}), ...(r.replayed ? { replayed: true } : {}) };
    }
    await this.bounded(link.publish(channel, data), 'publish', true);
    return {};
  }

  async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    return this.store.read(channel, query);
  }

  /**
   * Run a raw Redis command on the connection that owns `key` (the shard of the key in Cluster). A seam for
   * capabilities built on this broker (history scripts): use keys from `keyInSlotOf(channel, prefix)` so a script
   * that touches the key and then publishes to the channel stays on one slot. Bounded and 503 while down; `write`
   * marks a command that publishes (see `bounded`).
   */
  async command(key: string | undefined, args: readonly string[], write = false): Promise<unknown> {
    return this.bounded(this.requireLink().command(key, args), 'command', write);
  }

  /** PUBLISH (standalone) or SPUBLISH (Cluster): what a script must call to reach this broker's subscribers. */
  get publishCommand(): 'PUBLISH' | 'SPUBLISH' {
    return this.kind === 'redis-cluster' ? 'SPUBLISH' : 'PUBLISH';
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.link?.destroy();
    this.attempting?.destroy();
    this.link = undefined;
    this.ready = false;
    this.channels.clear();
  }

  // --- connection lifecycle -------------------------------------------------------------------------------------

  /** Build links (in the background) until one is up with every channel subscribed and a probe round trip done. */
  private reconnect(onFirstAttempt?: () => void): Promise<void> {
    this.connecting ??= this.connectLoop(onFirstAttempt).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connectLoop(onFirstAttempt?: () => void): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      const link = createLink({
        url: this.options.url,
        clientName: this.clientName,
        timeoutMs: this.options.timeoutMs,
        onMessage: (channel, data) => this.onMessage(link, channel, data),
        onBroken: (reason) => this.linkBroken(link, reason),
      });
      this.attempting = link;
      try {
        await this.bounded(link.connect(), 'connect');
        const probes = link.probeChannels(this.probePrefix).map((channel): Probe => ({ channel, token: undefined, sentAt: 0, lastDataAt: 0 }));
        await this.bounded(link.subscribe([...probes.map((p) => p.channel), ...this.channels]), 'resubscribe');
        this.probes = probes;
        this.link = link; // from here on, the probe's echo is accepted
        await this.probeOnce(link);
        if (this.closed) {
          link.destroy();
          break;
        }
        this.ready = true;
        this.tell(true);
        this.loadHistoryLibrary();
        if (attempt > 0) this.options.log.info('redis broker connected', { channels: this.channels.size, attempts: attempt + 1 });
        return;
      } catch (err) {
        if (this.link === link) this.link = undefined;
        link.destroy();
        if (attempt === 0) {
          this.options.log.warn('redis broker unavailable, retrying', { err: String(err) });
          this.tell(false);
          onFirstAttempt?.();
        }
        await new Promise((r) => setTimeout(r, backoffMs(attempt)).unref());
      } finally {
        if (this.attempting === link) this.attempting = undefined;
      }
    }
  }

  private linkBroken(link: RedisLink, reason: string): void {
    if (this.closed) return;
    if (this.link !== link) return; // a link still connecting fails its own attempt
    this.options.log.warn('redis broker connection lost', { reason });
    this.reconnects++;
    this.link = undefined;
    this.ready = false;
    link.destroy();
    this.tell(false);
    this.reconnect().catch(() => undefined);
  }

  /**
   * Load the history library on every shard now, so a backend can FCALL it before any Herald node published (and
   * after a Redis restart that lost it). In the background: history calls load it themselves where it is missing.
   */
  private loadHistoryLibrary(): void {
    const load = async (): Promise<void> => {
      if (this.kind !== 'redis-cluster') return this.store.load();
      const ranges = await this.command(undefined, ['CLUSTER', 'SLOTS']);
      if (!Array.isArray(ranges)) return;
      await Promise.all(ranges.map((r: unknown) => this.store.load(tagForSlot(Number(Array.isArray(r) ? r[0] : 0)))));
    };
    load().catch((err: unknown) => this.options.log.warn('redis history library not loaded yet', { err: String(err) }));
  }

  private tell(ready: boolean): void {
    if (this.told === ready) return;
    this.told = ready;
    this.handler?.onConnectionChange?.(ready);
  }

  private requireLink(): RedisLink {
    if (this.closed) throw new HeraldError('unavailable', 'broker is closed');
    if (!this.link || !this.ready) throw new HeraldError('unavailable', 'redis is unreachable');
    return this.link;
  }

  /**
   * A Redis call with a deadline. Failures become HeraldError('unavailable'), except for a `write` (a command that
   * publishes) whose outcome cannot be known: one that timed out after it was sent, or whose connection broke before
   * the answer, may have been carried out, so it becomes 'outcome_unknown' (504). Only a write that certainly never
   * took effect (redis-link.ts certainlyNotApplied) is 'unavailable' (503): "not published" must be true.
   */
  private bounded<T>(call: Promise<T>, what: string, write = false): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            write
              ? new HeraldError('outcome_unknown', `redis ${what} not answered within ${this.options.timeoutMs} ms: it may have been published`)
              : new HeraldError('unavailable', `redis ${what} timed out`),
          ),
        // A write's own deadline comes a little after node-redis' command timeout, which fires only for a command
        // still waiting to be written: such a command is known not to have left, and answers 503.
        this.options.timeoutMs + (write ? 25 : 0),
      );
    });
    return Promise.race([call, deadline])
      .catch((err: unknown) => {
        if (err instanceof HeraldError) throw err;
        if (write && !certainlyNotApplied(err)) {
          throw new HeraldError('outcome_unknown', `redis ${what} interrupted before its answer: it may have been published`, { cause: err });
        }
        throw new HeraldError('unavailable', `redis ${what} failed`, { cause: err });
      })
      .finally(() => clearTimeout(timer));
  }

  // --- messages and probes --------------------------------------------------------------------------------------

  private onMessage(link: RedisLink, channel: string, data: string): void {
    if (link !== this.link) return;
    // Any message proves its connection delivers: a probe stuck behind a backlog is late, not lost.
    const shard = this.probes[link.shardOf(channel)];
    if (shard) shard.lastDataAt = Date.now();
    if (channel.startsWith(this.probePrefix)) {
      const probe = this.probes.find((p) => p.channel === channel);
      if (probe && probe.token === data) probe.token = undefined;
      return;
    }
    // Channels left behind by a failed unsubscribe are ignored: the set is the truth.
    if (!this.channels.has(channel)) return;
    this.handler?.onPublication(this.toPublication(channel, data));
  }

  /** Redis message → Publication: Herald's envelope gives the id; a plain PUBLISH is verbatim, without id. */
  private toPublication(channel: string, data: string): Publication {
    return toPublication(channel, data, Date.now());
  }

  /** Every interval: a probe that has not come back within timeoutMs means a stalled link; else send the next. */
  private probeTick(): void {
    const link = this.link;
    if (!link || !this.ready || this.closed) return;
    const now = Date.now();
    for (const probe of this.probes) {
      if (probe.token !== undefined) {
        // Overdue and nothing at all arrived on that connection since the probe was sent: it stopped delivering.
        // Were messages still arriving, the node is merely behind (CPU-starved, a burst): reconnecting would only
        // throw away what Redis has buffered for it, so wait for the echo.
        if (now - probe.sentAt > this.options.timeoutMs && probe.lastDataAt <= probe.sentAt) {
          this.linkBroken(link, `probe on ${probe.channel} not delivered within ${this.options.timeoutMs} ms`);
          return;
        }
        continue;
      }
      probe.token = String(++this.probeSeq);
      probe.sentAt = now;
      this.bounded(link.publish(probe.channel, probe.token), 'probe publish').catch((err: unknown) => {
        this.linkBroken(link, `probe publish failed: ${String(err)}`);
      });
    }
  }

  /** One round trip on every probe channel: resolves when all came back, rejects after timeoutMs. */
  private async probeOnce(link: RedisLink): Promise<void> {
    const deadline = Date.now() + this.options.timeoutMs;
    for (const p of this.probes) {
      p.token = String(++this.probeSeq);
      p.sentAt = Date.now();
    }
    await Promise.all(this.probes.map((p) => this.bounded(link.publish(p.channel, p.token ?? ''), 'probe publish')));
    while (this.probes.some((p) => p.token !== undefined)) {
      if (Date.now() > deadline || link !== this.link) throw new HeraldError('unavailable', 'probe not delivered');
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  // --- batching -------------------------------------------------------------------------------------------------

  private newBatch(flush: () => Promise<void>): Batch {
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<void>((ok, fail) => {
      resolve = ok;
      reject = fail;
    });
    const batch: Batch = { channels: new Set(), promise, resolve, reject };
    // Flush after the current I/O events: joins arriving together go out as one command.
    setImmediate(() => flush().then(batch.resolve, batch.reject));
    return batch;
  }

  private async flushSubscribe(): Promise<void> {
    const batch = this.subBatch;
    this.subBatch = undefined;
    if (!batch) return;
    const link = this.requireLink();
    const channels = [...batch.channels];
    await this.bounded(link.subscribe(channels), 'subscribe');
    // A new link built meanwhile was subscribed from a set that lacked these: the caller must try again.
    if (link !== this.link || !this.ready) {
      throw new HeraldError('unavailable', 'redis connection was replaced during subscribe');
    }
    for (const c of channels) this.channels.add(c);
  }

  private async flushUnsubscribe(): Promise<void> {
    const batch = this.unsubBatch;
    this.unsubBatch = undefined;
    const link = this.link;
    if (!batch || !link) return;
    // A channel subscribed again since (set holds it) must stay subscribed at Redis.
    const channels = [...batch.channels].filter((c) => !this.channels.has(c));
    if (channels.length === 0) return;
    try {
      await this.bounded(link.unsubscribe(channels), 'unsubscribe');
    } catch (err) {
      // Harmless: a stale subscription's messages are dropped in onMessage, and the next link will not have it.
      this.options.log.debug('redis unsubscribe failed', { err: String(err) });
    }
  }
}
