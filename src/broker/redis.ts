/**
 * The Redis broker, for standalone Redis (PUBLISH/SUBSCRIBE) and Redis Cluster (SPUBLISH/SSUBSCRIBE, so a message
 * travels only to the shard that owns its channel). A node holds a constant number of connections whatever its
 * client count (two per Redis server, see ./redis-link.ts) and multiplexes every channel over them.
 *
 * What it adds to the bare connections, and why:
 * - Its own set of subscribed channels. One shard (./redis-shard.ts) per Redis server: the standalone Redis, or each
 *   Cluster master. Whenever a shard's link breaks (Redis restart, network cut, a stalled subscriber found by the
 *   probe) the shard throws it away, builds a new one with backoff, subscribes the set's channels of its slots again,
 *   proves the path with one probe round trip, and only then reports ready (`onConnectionChange(true, scope)`).
 *   Other shards go on: a dead master pauses only the channels of its slots.
 * - Cluster topology: the slot → master map from CLUSTER SLOTS, read at start, before every retry of a down shard
 *   (which is how a failover is found: the replica's address replaces the dead master's), and on MOVED/ASK or a
 *   channel Redis moved. A new master gets a shard; a master that is gone has its shard closed.
 * - Batching: subscribe/unsubscribe calls made while a batch is pending (same tick, or a burst of joins) go to Redis
 *   as one command per chunk/slot.
 * - A liveness probe: every `probeIntervalMs` it publishes a token to a per-node probe channel (one per shard) and
 *   expects it back on its subscriber connection within `timeoutMs`. A connection that silently stopped delivering
 *   is thus found within seconds, reported by `isReady()` (/readyz), and repaired by a reconnect.
 * - Bounded calls: every Redis call has a timeout; while a channel's shard is down publish and subscribe on it reject
 *   at once with HeraldError('unavailable') (503), never queue, never hang.
 *
 * Data is delivered verbatim: a plain `PUBLISH ch data` from any Redis client reaches every node's subscribers of ch.
 */
import { randomBytes } from 'node:crypto';
import { HeraldError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { brokerAddress } from '../util/redact.js';
import { redisFailureCause } from './redis-failure.js';
import type {
  BrokerHandler,
  HistoryBroker,
  HistoryQuery,
  HistoryResult,
  Publication,
  PublishOptions,
  PublishResult,
} from './broker.js';
import { NODE_CONTROL_CHANNEL } from './broker.js';
import { historyKeys, plainPayload, RedisHistory, toPublication } from './redis-history.js';
import { certainlyNotApplied, clusterSlotsFrom, loadRedisClient, nodeUrl, parseClusterUrl, type RedisLink } from './redis-link.js';
import { Shard, type ShardOwner } from './redis-shard.js';
import { parseClusterSlots, slotOf, tagForSlot } from './redis-slot.js';
import { reconnectDelayMs } from '../util/backoff.js';

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

interface Batch<T> {
  readonly channels: Set<string>;
  readonly promise: Promise<T>;
}


/** The standalone Redis' shard key. */
const STANDALONE = '';

export class RedisBroker implements HistoryBroker {
  readonly kind: string;
  /** CLIENT SETNAME of every connection of this node: tells its connections apart in CLIENT LIST. */
  readonly clientName: string;
  private readonly sharded: boolean;
  private readonly probePrefix: string;
  private handler: BrokerHandler | undefined;
  /** Channels this node is subscribed to: the truth that every new link is rebuilt from. */
  private readonly channels = new Set<string>();
  /** One per Redis server: the standalone Redis (key ''), or every Cluster master (key `host:port`). */
  private readonly shards = new Map<string, Shard>();
  /** Cluster: the master (`host:port`) serving each slot, '' where none does; undefined until first read. */
  private owners: string[] | undefined;
  private topologyRead: Promise<void> | undefined;
  /** Channels Redis unsubscribed on its own (their slot moved), to subscribe where they live now. */
  private readonly moved = new Set<string>();
  /** Shards whose loss the handler was told of (or that took over lost slots), not yet told back. */
  private readonly down = new Set<Shard>();
  /** Why the last root node asked for the slot map did not give it (for the start-up log line). */
  private discoveryFailure: string | undefined;
  /** The first connection attempts of the shards of the first slot map, which start() waits for. */
  private readonly firstAttempts: Promise<void>[] = [];
  private probeTimer: NodeJS.Timeout | undefined;
  private subBatch: Batch<Map<string, unknown>> | undefined;
  private unsubBatch: Batch<void> | undefined;
  private closed = false;
  /** Aborts the topology reads in flight (their connections) on close. */
  private readonly closing = new AbortController();
  /** What the shards call back. */
  private readonly owner: ShardOwner;
  /** History (./redis-history.ts): the `herald` Redis Function library, run through `command`. */
  private readonly store = new RedisHistory(
    (key, args, write) => this.command(key, args, write),
    () => this.publishCommand,
  );

  constructor(private readonly options: RedisBrokerOptions) {
    this.sharded = options.url.startsWith('redis-cluster://');
    this.kind = this.sharded ? 'redis-cluster' : 'redis';
    const id = randomBytes(6).toString('hex');
    this.clientName = `${options.clientNamePrefix ?? 'herald'}-${id}`;
    this.probePrefix = `herald:probe:${id}`;
    this.owner = {
      log: options.log,
      timeoutMs: options.timeoutMs,
      clientName: this.clientName,
      sharded: this.sharded,
      channelsOf: (shard) => [...this.channels].filter((c) => this.shardFor(c) === shard),
      probeChannelOf: (shard) => this.probeChannelOf(shard),
      onMessage: (shard, channel, data) => this.onMessage(shard, channel, data),
      onReadyChange: (shard, ready) => this.shardReadyChanged(shard, ready),
      onMoved: (_shard, channel) => this.channelMoved(channel),
      onRedirect: () => void this.readTopology(),
      beforeRetry: async (shard) => {
        if (this.sharded) await this.readTopology();
        return !this.closed && this.shards.get(shard.address) === shard;
      },
      verify: (shard, link) => this.verifyJoined(shard, link),
      bounded: (call, what) => this.bounded(call, what),
    };
  }

  /** Connects once; if Redis is unreachable the node still starts (not ready) and keeps trying in the background. */
  async start(handler: BrokerHandler): Promise<void> {
    this.handler = handler;
    await loadRedisClient();
    // Wait for the first attempt only (connect, resubscribe, probe: each bounded by timeoutMs): a Redis that is down
    // must not keep the node from starting; it starts not ready and keeps trying.
    if (this.sharded) await this.discover();
    else await this.addShard(STANDALONE, this.options.url).start();
    this.probeTimer = setInterval(() => {
      const now = Date.now();
      for (const shard of this.shards.values()) shard.probeTick(now);
    }, this.options.probeIntervalMs);
    this.probeTimer.unref();
  }

  /** Every channel can be published and delivered now: every shard is up and every slot has a master. */
  isReady(): boolean {
    if (this.closed || this.shards.size === 0) return false;
    if (this.sharded && (!this.owners || this.owners.includes(''))) return false;
    for (const shard of this.shards.values()) if (!shard.ready) return false;
    return true;
  }

  /** `channel`'s shard is up: it can be published and delivered now. */
  isReadyFor(channel: string): boolean {
    return !this.closed && this.shardFor(channel)?.ready === true;
  }

  /** Cluster: how many masters this node can use now, of how many it knows (for /readyz). */
  shardReadiness(): { ready: number; total: number } | undefined {
    if (!this.sharded) return undefined;
    let ready = 0;
    for (const shard of this.shards.values()) if (shard.ready) ready++;
    return { ready, total: this.shards.size };
  }

  /** Links lost since start, over the shards this node holds now (for /metrics). */
  get reconnects(): number {
    let n = 0;
    for (const shard of this.shards.values()) n += shard.reconnects;
    return n;
  }

  subscribedCount(): number {
    return this.channels.size - (this.channels.has(NODE_CONTROL_CHANNEL) ? 1 : 0);
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    const fresh = channels.filter((c) => !this.channels.has(c));
    if (fresh.length === 0) return;
    for (const c of fresh) this.requireLink(c);
    this.subBatch ??= this.newBatch(() => this.flushSubscribe());
    const batch = this.subBatch;
    for (const c of fresh) batch.channels.add(c);
    // One batch serves many callers; each fails only for its own channels (a shard that is down fails only its own).
    const failed = await batch.promise;
    for (const c of fresh) if (failed.has(c)) throw failed.get(c);
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    const known = channels.filter((c) => this.channels.delete(c));
    // Nothing to tell a shard that is down: its next link is built from the set, which no longer holds them.
    if (known.length === 0) return;
    this.unsubBatch ??= this.newBatch(() => this.flushUnsubscribe());
    for (const c of known) this.unsubBatch.channels.add(c);
    return this.unsubBatch.promise;
  }

  async publish(channel: string, data: string, options?: PublishOptions): Promise<PublishResult> {
    const link = this.requireLink(channel);
    const policy = options?.history && options.history.size > 0 ? options.history : undefined;
    const once = options?.idempotency;
    // With history or an idempotency key: check the key, append, trim, expire and publish (with the id) in one
    // atomic function call. A retry after an unknown outcome thus publishes at most once.
    if (policy || once) {
      const r = await this.store.publish(channel, data, policy, once, options?.json === true);
      return { ...(r.id !== '' ? { id: r.id } : {}), ...(r.replayed ? { replayed: true } : {}) };
    }
    await this.bounded(link.publish(channel, plainPayload(data, options?.json === true)), 'publish', true);
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
    return this.bounded(this.requireLink(key).command(key, args), 'command', write);
  }

  /** Drop a channel's kept messages (its stream key); its position (the meta hash) stays. */
  async removeHistory(channel: string): Promise<void> {
    const [stream] = historyKeys(channel, this.sharded);
    await this.command(stream, ['DEL', stream], true);
  }

  /** PUBLISH (standalone) or SPUBLISH (Cluster): what a script must call to reach this broker's subscribers. */
  get publishCommand(): 'PUBLISH' | 'SPUBLISH' {
    return this.sharded ? 'SPUBLISH' : 'PUBLISH';
  }

  /** Closes every connection at once, those of reconnect attempts and topology reads in flight included. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.closing.abort();
    for (const shard of this.shards.values()) shard.close();
    this.shards.clear();
    this.down.clear();
    this.channels.clear();
  }

  // --- shards and topology --------------------------------------------------------------------------------------

  private addShard(address: string, url: string): Shard {
    const shard = new Shard(address, url, this.owner);
    this.shards.set(address, shard);
    return shard;
  }

  /** The shard serving `name` (a channel or key); undefined when no master serves its slot. */
  private shardFor(name: string): Shard | undefined {
    if (!this.sharded) return this.shards.get(STANDALONE);
    const address = this.owners?.[slotOf(name)];
    return address ? this.shards.get(address) : undefined;
  }

  private probeChannelOf(shard: Shard): string | undefined {
    if (!this.sharded) return this.probePrefix;
    const slot = this.owners?.indexOf(shard.address) ?? -1;
    return slot < 0 ? undefined : `${this.probePrefix}:${tagForSlot(slot)}`;
  }

  /**
   * A master that just restarted answers CLUSTERDOWN to writes (history publishes) for a while, ~2 s, until it has
   * rejoined; its pub/sub already works, so the probe alone would call it ready. Not ready while it says
   * `cluster_state:fail` and a master that is up says `ok`. (When every master says fail, e.g. a shard is down under
   * `cluster-require-full-coverage yes`, the writes fail on every shard alike: waiting would not help.)
   */
  private async verifyJoined(shard: Shard, link: RedisLink): Promise<void> {
    if (!this.sharded) return;
    const stateOf = async (l: RedisLink): Promise<string> =>
      /cluster_state:(\w+)/.exec(String(await this.bounded(l.command(undefined, ['CLUSTER', 'INFO']), 'cluster info')))?.[1] ?? '';
    if ((await stateOf(link)) === 'ok') return;
    const other = [...this.shards.values()].find((s) => s !== shard && s.ready && s.link);
    if (other?.link && (await stateOf(other.link)) === 'ok') {
      throw new HeraldError('unavailable', `${shard.address} has not rejoined the cluster yet`);
    }
  }

  /** Cluster start: read the slot map (retrying in the background until a node answers), start a shard per master. */
  private async discover(): Promise<void> {
    await this.readTopology();
    if (this.owners || this.closed) {
      await Promise.all(this.firstAttempts.splice(0));
      return;
    }
    // One line with why, and the URL without its password.
    this.options.log.warn('redis cluster unavailable, retrying', { url: brokerAddress(this.options.url), cause: this.discoveryFailure });
    void (async () => {
      for (let attempt = 0; !this.owners && !this.closed; attempt++) {
        await new Promise((r) => setTimeout(r, reconnectDelayMs(attempt)).unref());
        await this.readTopology();
      }
    })();
  }

  /** Read CLUSTER SLOTS and apply it; one read at a time, callers meanwhile share it. Never rejects. */
  private readTopology(): Promise<void> {
    if (!this.sharded) return Promise.resolve();
    this.topologyRead ??= this.fetchSlots()
      .then((owners) => {
        if (owners && !this.closed) this.applyTopology(owners);
      })
      .catch((err: unknown) => this.options.log.debug('redis cluster slots not read', { err: String(err) }))
      .finally(() => {
        this.topologyRead = undefined;
      });
    return this.topologyRead;
  }

  /**
   * The slot map from a master whose link is up (no new connection), else from the root nodes of the URL, one at a
   * time, each over one short-lived connection.
   */
  private async fetchSlots(): Promise<string[] | undefined> {
    for (const shard of this.shards.values()) {
      if (!shard.ready || !shard.link) continue;
      try {
        const reply = await this.bounded(shard.link.command(undefined, ['CLUSTER', 'SLOTS']), 'cluster slots');
        const owners = parseClusterSlots(reply, hostOf(shard.address));
        if (owners) return owners;
      } catch {
        /* ask the next */
      }
    }
    for (const root of parseClusterUrl(this.options.url).rootNodes) {
      if (this.closed) return undefined;
      const address = root.url.slice('redis://'.length);
      try {
        const reply = await this.bounded(
          clusterSlotsFrom(nodeUrl(this.options.url, address), this.options.timeoutMs, this.closing.signal),
          'cluster slots',
        );
        const owners = parseClusterSlots(reply, hostOf(address));
        if (owners) return owners;
        this.discoveryFailure = `${address}: no slot map (not a cluster node, or the cluster is not set up)`;
      } catch (err) {
        this.discoveryFailure = `${address}: ${redisFailureCause(err)}`;
      }
    }
    return undefined;
  }

  /**
   * A new slot map: close the shards of masters that are gone (failed over, removed), start one for each new master,
   * and subscribe channels whose slot moved between two masters that stay where they live now.
   */
  private applyTopology(owners: string[]): void {
    const before = this.owners;
    this.owners = owners;
    const masters = new Set(owners.filter((a) => a !== ''));
    for (const [address, shard] of this.shards) {
      if (masters.has(address)) continue;
      this.options.log.warn('redis master left the slot map', { server: address });
      shard.close();
      this.shards.delete(address);
      this.down.delete(shard);
    }
    for (const address of masters) {
      if (this.shards.has(address)) continue;
      const shard = this.addShard(address, nodeUrl(this.options.url, address));
      if (!before) {
        this.firstAttempts.push(shard.start());
        continue;
      }
      // It took over slots whose messages may have been lost meanwhile (a failover): its subscribers are told to
      // recover when it is ready.
      this.options.log.info('redis master joined the slot map', { server: address });
      this.down.add(shard);
      void shard.start();
    }
    if (!before) return;
    for (const c of this.channels) {
      const slot = slotOf(c);
      if (before[slot] !== owners[slot]) this.moved.add(c);
    }
    this.resubscribeMoved();
  }

  /** Redis unsubscribed `channel` on its own: its slot moved. Find where, and subscribe it there. */
  private channelMoved(channel: string): void {
    this.moved.add(channel);
    void this.readTopology().then(() => this.resubscribeMoved());
  }

  /**
   * Subscribe moved channels on the shard that serves them now, if it is up (one that is connecting subscribes them
   * itself), and have their subscribers recover what they may have missed.
   */
  private resubscribeMoved(): void {
    const byShard = new Map<Shard, string[]>();
    for (const c of this.moved) {
      const shard = this.shardFor(c);
      if (!this.channels.has(c)) this.moved.delete(c);
      if (!this.channels.has(c) || !shard?.ready || !shard.link) continue;
      this.moved.delete(c);
      const list = byShard.get(shard);
      if (list) list.push(c);
      else byShard.set(shard, [c]);
    }
    for (const [shard, list] of byShard) {
      const link = shard.link as RedisLink;
      this.bounded(link.subscribe(list), 'subscribe').then(
        () => {
          const moved = new Set(list);
          this.handler?.onConnectionChange?.(true, (c) => moved.has(c));
        },
        (err: unknown) => this.options.log.warn('redis resubscribe after a slot move failed', { server: shard.address, err: String(err) }),
      );
    }
  }

  /**
   * Tell the handler once per change: standalone about every channel, Cluster about the channels of the shard's
   * slots. A shard that comes up after a loss (or took over lost slots) loads the history library there first.
   */
  private shardReadyChanged(shard: Shard, ready: boolean): void {
    if (this.closed || this.shards.get(shard.address) !== shard) return;
    if (ready) {
      // Its link subscribed every channel of its slots, moved ones included.
      for (const c of this.moved) if (this.shardFor(c) === shard) this.moved.delete(c);
      this.loadHistoryLibrary(shard);
      if (!this.down.delete(shard)) return;
    } else {
      if (this.down.has(shard)) return;
      this.down.add(shard);
    }
    const scope = this.sharded ? (c: string): boolean => this.shardFor(c) === shard : undefined;
    this.handler?.onConnectionChange?.(ready, scope);
  }

  /**
   * Load the history library on the shard now, so a backend can FCALL it before any Herald node published (and
   * after a Redis restart that lost it). In the background: history calls load it themselves where it is missing.
   */
  private loadHistoryLibrary(shard: Shard): void {
    const slot = this.owners?.indexOf(shard.address) ?? -1;
    const key = this.sharded ? (slot >= 0 ? tagForSlot(slot) : undefined) : undefined;
    if (this.sharded && key === undefined) return;
    this.store.load(key).catch((err: unknown) => this.options.log.warn('redis history library not loaded yet', { err: String(err) }));
  }

  /** The link of the shard serving `key` (any shard that is up when undefined); 503 when it is down. */
  private requireLink(key?: string): RedisLink {
    if (this.closed) throw new HeraldError('unavailable', 'broker is closed');
    const shard = key === undefined ? [...this.shards.values()].find((s) => s.ready) : this.shardFor(key);
    if (!shard?.link || !shard.ready) {
      throw new HeraldError('unavailable', this.sharded ? 'the redis cluster shard is unreachable' : 'redis is unreachable');
    }
    return shard.link;
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

  // --- messages -------------------------------------------------------------------------------------------------

  private onMessage(shard: Shard, channel: string, data: string): void {
    // Channels left behind by a failed unsubscribe are ignored: the set is the truth. So are messages from a master
    // that no longer serves the channel's slot: its new master delivers them.
    if (!this.channels.has(channel)) return;
    if (this.sharded && this.shardFor(channel) !== shard) return;
    this.handler?.onPublication(this.toPublication(channel, data));
  }

  /** Redis message → Publication: Herald's envelope gives the id; a plain PUBLISH is verbatim, without id. */
  private toPublication(channel: string, data: string): Publication {
    return toPublication(channel, data, Date.now());
  }

  // --- batching -------------------------------------------------------------------------------------------------

  private newBatch<T>(flush: () => Promise<T>): Batch<T> {
    const channels = new Set<string>();
    // Flush after the current I/O events: joins arriving together go out as one command.
    const promise = new Promise<T>((resolve, reject) => setImmediate(() => flush().then(resolve, reject)));
    return { channels, promise };
  }

  /** Subscribe a batch, per shard; resolves with the channels that failed and why. */
  private async flushSubscribe(): Promise<Map<string, unknown>> {
    const batch = this.subBatch;
    this.subBatch = undefined;
    const failed = new Map<string, unknown>();
    if (!batch) return failed;
    const groups = new Map<Shard, string[]>();
    for (const c of batch.channels) {
      const shard = this.shardFor(c);
      if (this.closed || !shard?.ready || !shard.link) {
        failed.set(c, new HeraldError('unavailable', 'redis is unreachable'));
        continue;
      }
      const list = groups.get(shard);
      if (list) list.push(c);
      else groups.set(shard, [c]);
    }
    await Promise.all(
      [...groups].map(async ([shard, list]) => {
        const link = shard.link as RedisLink;
        try {
          await this.bounded(link.subscribe(list), 'subscribe');
          // A new link built meanwhile was subscribed from a set that lacked these: the caller must try again.
          if (link !== shard.link || !shard.ready) {
            throw new HeraldError('unavailable', 'redis connection was replaced during subscribe');
          }
          for (const c of list) {
            // Its slot moved to another master meanwhile: that one was not subscribed to it.
            if (this.shardFor(c) === shard) this.channels.add(c);
            else failed.set(c, new HeraldError('unavailable', 'redis cluster slot moved during subscribe'));
          }
        } catch (err) {
          for (const c of list) failed.set(c, err);
        }
      }),
    );
    return failed;
  }

  private async flushUnsubscribe(): Promise<void> {
    const batch = this.unsubBatch;
    this.unsubBatch = undefined;
    if (!batch) return;
    const groups = new Map<RedisLink, string[]>();
    // A channel subscribed again since (set holds it) must stay subscribed at Redis.
    for (const c of batch.channels) {
      const shard = this.shardFor(c);
      if (this.channels.has(c) || !shard?.ready || !shard.link) continue;
      const list = groups.get(shard.link);
      if (list) list.push(c);
      else groups.set(shard.link, [c]);
    }
    await Promise.all(
      [...groups].map(async ([link, list]) => {
        try {
          await this.bounded(link.unsubscribe(list), 'unsubscribe');
        } catch (err) {
          // Harmless: a stale subscription's messages are dropped in onMessage, and the next link will not have it.
          this.options.log.debug('redis unsubscribe failed', { err: String(err) });
        }
      }),
    );
  }
}

/** `host` of `host:port` (IPv6 hosts hold colons). */
function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(':'));
}
