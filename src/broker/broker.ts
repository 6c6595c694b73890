/**
 * The broker: pub/sub between Herald nodes. It never sees a client; it calls the node's handler once per message
 * for every channel the node subscribed. Concrete brokers are chosen only in server.ts.
 *
 * Contract (the conformance suite in ./conformance.ts checks every point on every broker):
 * - After `subscribe([c])` resolves, every later `publish(c, …)` (from this node or any other) reaches
 *   `handler.onPublication` exactly once per node, until `unsubscribe([c])` resolves.
 * - Per channel, publications reach the handler in the order they were published (from one publisher).
 * - Subscriptions are node-level and idempotent: subscribing a subscribed channel or unsubscribing an unknown one
 *   is a no-op. The Hub counts references; the broker does not.
 * - Channel names are opaque byte strings: no glob or pattern meaning, ever.
 * - `data` is delivered verbatim.
 * - Delivery is at most once; history (an optional capability) makes it resumable.
 * - `publish` rejects with HeraldError('unavailable') at once when the broker cannot take it; it never hangs.
 */

export interface Publication {
  readonly channel: string;
  readonly data: string;
  /** Position in the channel's history, where the broker keeps one: orders the message within its channel. */
  readonly id?: string;
  /** Milliseconds since the epoch when the node received it. */
  readonly ts: number;
}

export interface PublishOptions {
  /** Keep the message in the channel's history (where the broker has history). */
  readonly history?: HistoryPolicy;
}

export interface HistoryPolicy {
  /** Messages kept per channel. */
  readonly size: number;
  /** Milliseconds a channel's history lives after its last publication. */
  readonly ttlMs: number;
}

export interface PublishResult {
  readonly id?: string;
}

export interface BrokerHandler {
  onPublication(publication: Publication): void;
  /** The broker lost (false) or regained (true) its connection; after regaining, subscriptions were restored. */
  onConnectionChange?(ready: boolean): void;
}

export interface Broker {
  /** A short name for logs and metrics: "memory", "redis", "redis-cluster". */
  readonly kind: string;
  start(handler: BrokerHandler): Promise<void>;
  subscribe(channels: readonly string[]): Promise<void>;
  unsubscribe(channels: readonly string[]): Promise<void>;
  publish(channel: string, data: string, options?: PublishOptions): Promise<PublishResult>;
  /** True when the broker can publish and deliver now (for /readyz). */
  isReady(): boolean;
  /** Channels this node is subscribed to at the broker (for tests and metrics). */
  subscribedCount(): number;
  close(): Promise<void>;
}
