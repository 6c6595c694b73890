/**
 * One Redis server the broker talks to, the standalone Redis or one Cluster master, and the life of its link
 * (./redis-link.ts): connect, subscribe the broker's channels that this server carries, prove the path with one probe
 * round trip, and only then report ready. When the link breaks (the server died, a network cut, a stalled subscriber
 * found by the probe) the shard throws it away and builds a new one with backoff; other shards are not touched, so a
 * dead master pauses only the channels of its slots.
 *
 * Connections: at most one link (two connections) per shard at any time. A new attempt starts only after the last
 * one was destroyed, and destroying a link closes its sockets even mid-connect, so a master that stays down costs
 * its shard two refused connection attempts per backoff step, never a growing pile.
 */
import { HeraldError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { createLink, type RedisLink } from './redis-link.js';
import { reconnectDelayMs } from '../util/backoff.js';
import { brokerAddress } from '../util/redact.js';
import { redisFailureCause } from './redis-failure.js';

/** What a shard needs from its broker (./redis.ts). */
export interface ShardOwner {
  readonly log: Logger;
  readonly timeoutMs: number;
  readonly clientName: string;
  /** Cluster (sharded pub/sub) or standalone. */
  readonly sharded: boolean;
  /** The channels of the broker's set that this shard carries now (the probe excluded). */
  channelsOf(shard: Shard): string[];
  /** This node's probe channel on a slot the shard serves; undefined when it serves none. */
  probeChannelOf(shard: Shard): string | undefined;
  onMessage(shard: Shard, channel: string, data: string): void;
  /** The shard's link was proven (ready) or the shard lost it / failed its first attempt (not ready). */
  onReadyChange(shard: Shard, ready: boolean): void;
  /** Redis unsubscribed `channel` on this shard by itself: its slot moved. */
  onMoved(shard: Shard, channel: string): void;
  /** A command was answered MOVED or ASK. */
  onRedirect(): void;
  /** Before each retry: refresh the slot map. False when this server is no longer a master (the shard was closed). */
  beforeRetry(shard: Shard): Promise<boolean>;
  /** Checks before a link may be proven, e.g. that a Cluster master takes writes; rejects to retry later. */
  verify(shard: Shard, link: RedisLink): Promise<void>;
  /** A Redis call with the broker's deadline and error mapping. */
  bounded<T>(call: Promise<T>, what: string): Promise<T>;
}

interface Probe {
  readonly channel: string;
  /** Token in flight and when it was sent; undefined when none is outstanding. */
  token: string | undefined;
  sentAt: number;
  /** When the last message of any channel arrived on this shard's subscriber connection. */
  lastDataAt: number;
}


let probeSeq = 0;

export class Shard {
  /** The link in use or being proven (its probe echo is accepted); undefined while connecting or down. */
  link: RedisLink | undefined;
  /** The link is up, every channel of the shard is subscribed on it, and a probe came back. */
  ready = false;
  /** Links lost since start (for /metrics). */
  reconnects = 0;
  private connecting: Promise<void> | undefined;
  /** The link an attempt is building, so close() can end it mid-attempt (its sockets would keep the process alive). */
  private attempting: RedisLink | undefined;
  private closed = false;
  private probe: Probe | undefined;

  constructor(
    /** `host:port` of the server (Cluster), or '' for the standalone Redis. */
    readonly address: string,
    private readonly url: string,
    private readonly owner: ShardOwner,
  ) {}

  /** Connect in the background; resolves after the first attempt, whether it succeeded or not. */
  start(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.reconnect(resolve).then(resolve, resolve);
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Close every connection of the shard, also those of an attempt in flight, and stop reconnecting. */
  close(): void {
    this.closed = true;
    this.ready = false;
    this.link?.destroy();
    this.attempting?.destroy();
    this.link = undefined;
    this.attempting = undefined;
  }

  private reconnect(onFirstAttempt?: () => void): Promise<void> {
    this.connecting ??= this.connectLoop(onFirstAttempt).finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connectLoop(onFirstAttempt?: () => void): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      // A master that is gone for good (failed over) is replaced by its successor's shard: stop here.
      if (attempt > 0 && !(await this.owner.beforeRetry(this))) return;
      if (this.closed) return;
      const link: RedisLink = createLink({
        url: this.url,
        clientName: this.owner.clientName,
        timeoutMs: this.owner.timeoutMs,
        sharded: this.owner.sharded,
        onMessage: (channel, data) => this.onLinkMessage(link, channel, data),
        onBroken: (reason) => this.linkBroken(link, reason),
        onMoved: (channel) => {
          if (link === this.link) this.owner.onMoved(this, channel);
        },
        onRedirect: () => this.owner.onRedirect(),
      });
      this.attempting = link;
      try {
        await this.owner.bounded(link.connect(), 'connect');
        await this.owner.verify(this, link);
        const probeChannel = this.owner.probeChannelOf(this);
        if (probeChannel === undefined) throw new HeraldError('unavailable', `${this.address} serves no slot`);
        await this.owner.bounded(link.subscribe([probeChannel, ...this.owner.channelsOf(this)]), 'resubscribe');
        this.probe = { channel: probeChannel, token: undefined, sentAt: 0, lastDataAt: 0 };
        this.link = link; // from here on, the probe's echo is accepted
        await this.probeOnce(link);
        if (this.closed) return; // close() destroyed the link
        this.ready = true;
        if (attempt > 0) this.owner.log.info('redis connected', { server: this.address || undefined, attempts: attempt + 1 });
        this.owner.onReadyChange(this, true);
        return;
      } catch (err) {
        if (this.link === link) this.link = undefined;
        link.destroy();
        if (attempt === 0 && !this.closed) {
          // One line that says why (refused, host not found, auth, TLS, timeout), and where, without the password.
          this.owner.log.warn('redis unavailable, retrying', {
            server: this.address || brokerAddress(this.url),
            cause: redisFailureCause(err, this.url),
          });
          this.owner.onReadyChange(this, false);
          onFirstAttempt?.();
        }
        await new Promise((r) => setTimeout(r, reconnectDelayMs(attempt)).unref());
      } finally {
        if (this.attempting === link) this.attempting = undefined;
      }
    }
  }

  private linkBroken(link: RedisLink, reason: string): void {
    if (this.closed || this.link !== link) return; // a link still connecting fails its own attempt
    this.owner.log.warn('redis connection lost', { server: this.address || undefined, reason });
    this.reconnects++;
    this.link = undefined;
    this.ready = false;
    link.destroy();
    this.owner.onReadyChange(this, false);
    this.reconnect().catch(() => undefined);
  }

  private onLinkMessage(link: RedisLink, channel: string, data: string): void {
    const probe = this.probe;
    if (link !== this.link || !probe) return;
    // Any message proves the connection delivers: a probe stuck behind a backlog is late, not lost.
    probe.lastDataAt = Date.now();
    if (channel === probe.channel) {
      if (probe.token === data) probe.token = undefined;
      return;
    }
    this.owner.onMessage(this, channel, data);
  }

  /** On the broker's interval: a probe not back within timeoutMs means a stalled link; else send the next one. */
  probeTick(now: number): void {
    const link = this.link;
    const probe = this.probe;
    if (!link || !probe || !this.ready || this.closed) return;
    if (probe.token !== undefined) {
      // Overdue and nothing at all arrived on that connection since the probe was sent: it stopped delivering.
      // Were messages still arriving, the node is merely behind (CPU-starved, a burst): reconnecting would only
      // throw away what Redis has buffered for it, so wait for the echo.
      if (now - probe.sentAt > this.owner.timeoutMs && probe.lastDataAt <= probe.sentAt) {
        this.linkBroken(link, `probe on ${probe.channel} not delivered within ${this.owner.timeoutMs} ms`);
      }
      return;
    }
    probe.token = String(++probeSeq);
    probe.sentAt = now;
    this.owner.bounded(link.publish(probe.channel, probe.token), 'probe publish').catch((err: unknown) => {
      this.linkBroken(link, `probe publish failed: ${String(err)}`);
    });
  }

  /** One probe round trip: resolves when it came back, rejects after timeoutMs. */
  private async probeOnce(link: RedisLink): Promise<void> {
    const probe = this.probe;
    if (!probe) throw new HeraldError('unavailable', 'no probe channel');
    const deadline = Date.now() + this.owner.timeoutMs;
    probe.token = String(++probeSeq);
    probe.sentAt = Date.now();
    await this.owner.bounded(link.publish(probe.channel, probe.token), 'probe publish');
    while (probe.token !== undefined) {
      if (Date.now() > deadline || link !== this.link) throw new HeraldError('unavailable', 'probe not delivered');
      await new Promise((r) => setTimeout(r, 5));
    }
  }
}
