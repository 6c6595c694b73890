/**
 * Metrics of the message flow: the fan-out histogram (publish-to-write on this node), broker round trips, and
 * per-namespace counters. Namespace labels are the configured namespaces plus `default`: a bounded set, whatever
 * channel names clients and backends use.
 */
import { hasHistory, type Broker } from '../broker/broker.js';
import { FAST_SECONDS, ROUND_TRIP_SECONDS, type HistogramFamily, type MetricsRegistry } from './metrics.js';

/** The label of channels outside every configured namespace. */
export const DEFAULT_NAMESPACE_LABEL = 'default';

type BrokerOp = 'publish' | 'history';

export class PublicationMetrics {
  private readonly fanOut;
  private readonly roundTrips: HistogramFamily<BrokerOp>;
  /** Per namespace label: [publications fanned out, frames delivered, publishes accepted through this node]. */
  private readonly perNamespace = new Map<string, { messages: number; delivered: number; published: number }>();

  constructor(
    registry: MetricsRegistry,
    namespaces: readonly string[],
    /** The namespace of a channel, "" for the default one (auth/namespaces.ts `nameOf`). */
    private readonly namespaceOf: (channel: string) => string,
  ) {
    for (const ns of [DEFAULT_NAMESPACE_LABEL, ...namespaces]) this.perNamespace.set(ns, { messages: 0, delivered: 0, published: 0 });
    this.fanOut = registry.histogram(
      'herald_publish_to_write_seconds',
      'Per publication with local subscribers: from this node taking it from its broker to its frames written to every local subscriber socket, in seconds.',
      FAST_SECONDS,
    );
    this.roundTrips = registry.histogramFamily(
      'herald_broker_round_trip_seconds',
      'Broker calls from call to answer, in seconds, by operation (publish, history read).',
      'op',
      ['publish', 'history'],
      ROUND_TRIP_SECONDS,
    );
    const series = (field: 'messages' | 'delivered' | 'published') => () =>
      [...this.perNamespace].map(([namespace, c]): [Record<string, string>, number] => [{ namespace }, c[field]]);
    registry.gauge('herald_namespace_messages_total', 'Publications this node fanned out to local subscribers, by namespace.', series('messages'), 'counter');
    registry.gauge('herald_namespace_delivered_total', 'Frames handed to local subscribers, by namespace.', series('delivered'), 'counter');
    registry.gauge('herald_namespace_published_total', 'Publishes accepted through this node (any source), by namespace.', series('published'), 'counter');
  }

  /** Hub's fan-out observer. */
  readonly fannedOut = (channel: string, delivered: number, seconds: number): void => {
    this.fanOut.observe(seconds);
    const c = this.countersOf(channel);
    if (!c) return;
    c.messages++;
    c.delivered += delivered;
  };

  /**
   * Time every `publish` and `history` call of this broker, whoever makes it (publish API, WebSocket clients,
   * recovery), by wrapping the two methods of this one instance; the nodes' control channel is left out. With the embedded broker a publish delivers
   * synchronously, so its "round trip" includes this node's fan-out.
   */
  timeBroker(broker: Broker): void {
    const publish = broker.publish.bind(broker);
    const publishes = this.roundTrips.of('publish');
    broker.publish = async (channel, data, options) => {
      // The nodes' own control messages (a NUL first) are not publishes of anyone's: they go untimed and uncounted.
      if (channel.charCodeAt(0) === 0) return publish(channel, data, options);
      const started = performance.now();
      try {
        const result = await publish(channel, data, options);
        const c = result.replayed ? undefined : this.countersOf(channel);
        if (c) c.published++;
        return result;
      } finally {
        publishes.observe((performance.now() - started) / 1000);
      }
    };
    if (hasHistory(broker)) {
      const history = broker.history.bind(broker);
      const reads = this.roundTrips.of('history');
      broker.history = async (channel, options) => {
        const started = performance.now();
        try {
          return await history(channel, options);
        } finally {
          reads.observe((performance.now() - started) / 1000);
        }
      };
    }
  }

  /** Undefined for the nodes' own channels (NODE_CONTROL_CHANNEL: a NUL first, which no client channel has). */
  private countersOf(channel: string): { messages: number; delivered: number; published: number } | undefined {
    if (channel.charCodeAt(0) === 0) return undefined;
    const ns = this.namespaceOf(channel);
    return this.perNamespace.get(ns === '' ? DEFAULT_NAMESPACE_LABEL : ns) ?? this.perNamespace.get(DEFAULT_NAMESPACE_LABEL)!;
  }
}
