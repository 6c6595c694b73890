/**
 * The broker: pub/sub between Herald nodes. It never sees a client; it calls the node's handler once per message
 * for every channel the node subscribed. Concrete brokers are chosen only in server.ts.
 *
 * Contract (the conformance suite in test/helpers/broker-conformance.ts checks every point on every broker):
 * - After `subscribe([c])` resolves, every later `publish(c, …)` (from this node or any other) reaches
 *   `handler.onPublication` exactly once per node, until `unsubscribe([c])` resolves.
 * - Per channel, publications reach the handler in the order they were published (from one publisher).
 * - Subscriptions are node-level and idempotent: subscribing a subscribed channel or unsubscribing an unknown one
 *   is a no-op. The Hub counts references; the broker does not.
 * - Channel names are opaque byte strings: no glob or pattern meaning, ever.
 * - `data` is delivered verbatim, with `json` (PublishOptions.json) as published.
 * - Delivery is at most once; history (an optional capability) makes it resumable.
 * - `publish` rejects with HeraldError('unavailable') at once when the broker cannot take it (then nothing was
 *   published), and with HeraldError('outcome_unknown') when the publish was handed over but not answered in time
 *   (it may have been published). It never hangs.
 * - Idempotency (`publish(c, d, { idempotency: { key, windowMs } })`): the first publish under (c, key) within
 *   `windowMs` publishes and remembers its id; a later one publishes nothing and resolves with that id and
 *   `replayed: true`. Checking, publishing and remembering are one atomic step, so a retry after `outcome_unknown`
 *   delivers the message at most once whatever happened to the first attempt.
 *
 * History (`HistoryBroker`, an optional capability; see docs/protocol.md "Message ids and resume"):
 * - `publish(c, d, { history })` with `history.size > 0` keeps the message in c's history and resolves with its id,
 *   `<offset>-<epoch>`; offsets grow by exactly 1 per message within an epoch, so a subscriber can tell a gap.
 * - The id travels with the live publication to every node (`Publication.id`).
 * - Keeping and delivering is atomic: a message is in history before (or at the same time as) any node receives it,
 *   so a reader that subscribed first and read history second misses nothing.
 * - `history(c, { since })` returns c's current position and, when `since` is in the current epoch, the kept messages
 *   after it, oldest first; when `since` is of another epoch (or a read stamp), the current epoch's kept messages
 *   from its start, so a client told to reload gets the new epoch's messages after the reload. It never invents: a
 *   message trimmed, expired or evicted is absent, and the caller sees the hole.
 * - The epoch changes whenever the broker may have lost or handed out again offsets: the channel's position expired
 *   (`metaTtlMs` after its last publication or read) or was evicted, or (Redis) the server's replication id changed
 *   (a restart, from an older snapshot or empty; a failover; a role change). A position of the old epoch then never
 *   matches the new one: a resume across such an event sees another epoch, never re-issued offsets.
 * - Reading never creates state for a channel without history: its position is a read stamp (`0-S…`, see
 *   protocol/message-id.ts). `stampHolds` is true only when `since` is a read stamp from which nothing can have been
 *   missed: issued by this broker (on Redis: under the same replication id) less than `metaTtlMs` ago, nothing
 *   evicted early since, and the current epoch (if any) began after it. Then the first messages published after a
 *   read of a quiet channel are resumable from its stamp without a reload.
  */
import type { StreamPosition } from '../protocol/message-id.js';
import type { Publication } from '../protocol/publication.js';

export type { StreamPosition } from '../protocol/message-id.js';
export type { Publication } from '../protocol/publication.js';

export interface PublishOptions {
  /** Keep the message in the channel's history (where the broker has history). */
  readonly history?: HistoryPolicy;
  /** Publish at most once per (channel, key) within the window (see the contract above). */
  readonly idempotency?: Idempotency;
  /**
   * `data` is JSON text (valid, no CR/LF): every delivery and every history read of it carries Publication.json.
   */
  readonly json?: boolean;
}

export interface Idempotency {
  /** The publisher's key for this message (src/protocol/idempotency.ts checks its shape). */
  readonly key: string;
  /** How long a key is remembered, in milliseconds. */
  readonly windowMs: number;
}

export interface HistoryPolicy {
  /** Messages kept per channel (at least 1: a channel without history has no policy). */
  readonly size: number;
  /** Milliseconds a channel's messages live after its last publication. */
  readonly ttlMs: number;
  /** Milliseconds a channel's position (epoch and offset) lives after its last publication or read; >= ttlMs. */
  readonly metaTtlMs: number;
}

export interface HistoryQuery {
  /** Return the messages after this position (none when absent; the current epoch's from its start when of another). */
  readonly since?: StreamPosition;
  /** At most this many messages (the oldest first). */
  readonly limit: number;
  /** The channel's policy: its position TTL is how long a read stamp vouches (see the contract above). */
  readonly policy: HistoryPolicy;
}

export interface HistoryResult {
  /** The channel's current position: the last message published in the current epoch (offset 0 before any). */
  readonly position: StreamPosition;
  /**
   * Kept messages after `since` (of the current epoch from its start when `since` is of another one), oldest first,
   * each with `id` and `position`.
   */
  readonly publications: readonly Publication[];
  /** `since` is a read stamp from which nothing was missed (see the contract above): resume it from offset 0. */
  readonly stampHolds?: boolean;
}

/** What a broker's own history holds (where it lives in the node's memory): for metrics and the memory bound. */
export interface HistoryUsage {
  /** Estimated bytes kept (docs/configuration.md `historyMaxBytes` says how they are counted). */
  readonly bytes: number;
  /** Channels with a position. */
  readonly channels: number;
  /** Channels dropped before their time to stay within the bound. */
  readonly evictions: number;
}

/** The optional history capability. Brokers that keep history implement it; `hasHistory` tells them apart. */
export interface HistoryBroker extends Broker {
  history(channel: string, query: HistoryQuery): Promise<HistoryResult>;
  /** Where history lives in this process (the memory broker): its size. Absent where it lives elsewhere (Redis). */
  historyUsage?(): HistoryUsage;
  /**
   * Drop the channel's kept messages (the server API's `remove_history`). Its position stays, so a client resuming
   * from before it is told to reload (`expired`), and the next message continues the offsets.
   */
  removeHistory?(channel: string): Promise<void>;
}

export function hasHistory(broker: Broker): broker is HistoryBroker {
  return typeof (broker as Partial<HistoryBroker>).history === 'function';
}

export interface PublishResult {
  readonly id?: string;
  /** True when an earlier publish under the same idempotency key was found: nothing was published now. */
  readonly replayed?: boolean;
}

/**
 * The channel nodes talk to each other on (src/core/control-path.ts). Client channel names cannot hold control
 * characters (protocol/channel.ts), so no client can subscribe or publish to it. It keeps no history, and
 * `subscribedCount` leaves it out: it is the node's own, not a client's.
 */
export const NODE_CONTROL_CHANNEL = '\u0000herald:control';

export interface BrokerHandler {
  onPublication(publication: Publication): void;
  /**
   * The broker lost (false) or regained (true) a connection; after regaining, its subscriptions were restored and
   * messages published meanwhile may have been missed. `scope` says which channels that connection carries (Redis
   * Cluster: one shard's slots; called at once, it answers for the current slot map); undefined means every channel.
   */
  onConnectionChange?(ready: boolean, scope?: (channel: string) => boolean): void;
}

export interface Broker {
  /** A short name for logs and metrics: "memory", "redis", "redis-cluster". */
  readonly kind: string;
  start(handler: BrokerHandler): Promise<void>;
  subscribe(channels: readonly string[]): Promise<void>;
  unsubscribe(channels: readonly string[]): Promise<void>;
  publish(channel: string, data: string, options?: PublishOptions): Promise<PublishResult>;
  /** True when the broker can publish and deliver now, on every channel. */
  isReady(): boolean;
  /** True when `channel` can be published and delivered now; brokers without shards leave it out (isReady answers). */
  isReadyFor?(channel: string): boolean;
  /** Brokers with shards (Redis Cluster): how many are up, of how many (for /readyz: some up is serving). */
  shardReadiness?(): { readonly ready: number; readonly total: number } | undefined;
  /** Channels this node is subscribed to at the broker for its clients (for tests and metrics; NODE_CONTROL_CHANNEL aside). */
  subscribedCount(): number;
  close(): Promise<void>;
}
