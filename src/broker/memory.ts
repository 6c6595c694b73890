/**
 * The embedded broker: one node, no network. Publications are delivered synchronously, in publish order, to the
 * node's handler for every subscribed channel. It keeps history (see ./memory-history.ts): appending and delivering
 * happen in one synchronous step, which is the atomicity the history contract asks for. Its history is bounded by
 * `maxHistoryBytes` for all channels together (the least recently published channels go first).
 */
import { HeraldError } from '../errors.js';
import type {
  BrokerHandler,
  HistoryBroker,
  HistoryQuery,
  HistoryResult,
  HistoryUsage,
  Publication,
  PublishOptions,
  PublishResult,
} from './broker.js';
import { NODE_CONTROL_CHANNEL } from './broker.js';
import { IdempotencyMemo } from './idempotency-memo.js';
import { MemoryHistory } from './memory-history.js';
import { systemClock, type Clock, type Repeating } from '../util/clock.js';

/** How often expired history is freed. Expiry itself is exact: reads check the time. */
const SWEEP_MS = 10_000;

export class MemoryBroker implements HistoryBroker {
  readonly kind = 'memory';
  private handler: BrokerHandler | undefined;
  private readonly channels = new Set<string>();
  private readonly store: MemoryHistory;
  /** Idempotency keys: checked, published and remembered in one synchronous step. */
  readonly idempotency = new IdempotencyMemo();
  private sweeper: Repeating | undefined;
  private closed = false;

  /** `maxHistoryBytes`: the bound on all channels' history together (config `historyMaxBytes`). */
  private readonly clock: Clock;

  /** `clock`: time for history TTLs and idempotency windows (util/clock.ts); a unit test's ManualClock moves it. */
  constructor(options: { maxHistoryBytes?: number; clock?: Clock } = {}) {
    this.store = new MemoryHistory(options.maxHistoryBytes);
    this.clock = options.clock ?? systemClock;
  }

  async start(handler: BrokerHandler): Promise<void> {
    this.handler = handler;
    this.sweeper = this.clock.every(SWEEP_MS, () => this.store.sweep(this.clock.now()));
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    for (const c of channels) this.channels.add(c);
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    for (const c of channels) this.channels.delete(c);
  }

  async publish(channel: string, data: string, options?: PublishOptions): Promise<PublishResult> {
    if (this.closed || !this.handler) throw new HeraldError('unavailable', 'broker is not running');
    const once = options?.idempotency;
    const now = this.clock.now();
    if (once) {
      const seen = this.idempotency.lookup(channel, once.key, now);
      if (seen) return seen.id === undefined ? { replayed: true } : { id: seen.id, replayed: true };
    }
    const policy = options?.history;
    const json = options?.json === true;
    const publication: Publication =
      policy && policy.size > 0
        ? this.store.append(channel, data, policy, now, json)
        : json
          ? { channel, data, json, ts: now }
          : { channel, data, ts: now };
    if (this.channels.has(channel)) this.handler.onPublication(publication);
    if (once) this.idempotency.remember(channel, once.key, publication.id, once.windowMs, now);
    return publication.id === undefined ? {} : { id: publication.id };
  }

  async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    if (this.closed) throw new HeraldError('unavailable', 'broker is not running');
    return this.store.read(channel, query, this.clock.now());
  }

  async removeHistory(channel: string): Promise<void> {
    if (this.closed) throw new HeraldError('unavailable', 'broker is not running');
    this.store.removeMessages(channel);
  }

  historyUsage(): HistoryUsage {
    return this.store.usage();
  }

  isReady(): boolean {
    return !this.closed && this.handler !== undefined;
  }

  subscribedCount(): number {
    return this.channels.size - (this.channels.has(NODE_CONTROL_CHANNEL) ? 1 : 0);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.channels.clear();
    this.store.clear();
    this.idempotency.clear();
    this.sweeper?.stop();
  }
}
