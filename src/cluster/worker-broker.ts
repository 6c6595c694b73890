/**
 * The broker of a worker on the embedded broker: the machine's one MemoryBroker lives in the primary (broker-host.ts)
 * and this forwards to it over the worker's PrimaryLink. To the node it is a broker like any other (the conformance
 * suite runs on it): subscriptions are this worker's, publications arrive once per worker in the broker's order,
 * history and message ids are the machine's, so a client resumes on whichever worker it lands on.
 */
import type {
  BrokerHandler,
  HistoryBroker,
  HistoryQuery,
  HistoryResult,
  PublishOptions,
  PublishResult,
} from '../broker/broker.js';
import { NODE_CONTROL_CHANNEL } from '../broker/broker.js';
import { HeraldError } from '../errors.js';
import { parseMessageId } from '../protocol/message-id.js';
import type { Publication } from '../protocol/publication.js';
import { Op } from './frames.js';
import type { PrimaryLink } from './primary-link.js';

export class WorkerBroker implements HistoryBroker {
  /** It is the embedded broker, reached through the primary. */
  readonly kind = 'memory';
  private handler: BrokerHandler | undefined;
  private readonly channels = new Set<string>();
  private closed = false;

  constructor(private readonly link: PrimaryLink) {}

  async start(handler: BrokerHandler): Promise<void> {
    this.handler = handler;
    const events = this.link.events;
    this.link.events = {
      onPublication: (channel, data, id, ts) => {
        if (!this.channels.has(channel)) return;
        const p: Publication = id === undefined ? { channel, data, ts } : { channel, data, id, ts };
        this.handler?.onPublication(p);
      },
      metrics: () => events?.metrics() ?? '',
      onClose: () => {
        this.handler?.onConnectionChange?.(false);
        events?.onClose();
      },
    };
    if (!this.link.isOpen) await this.link.connect();
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    this.check();
    const fresh = channels.filter((c) => !this.channels.has(c));
    for (const c of fresh) this.channels.add(c);
    if (fresh.length > 0) await this.link.request(Op.SUB, fresh);
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    this.check();
    const gone = channels.filter((c) => this.channels.delete(c));
    if (gone.length > 0) await this.link.request(Op.UNSUB, gone);
  }

  async publish(channel: string, data: string, options?: PublishOptions): Promise<PublishResult> {
    this.check();
    const answer = (await this.link.request(Op.PUBLISH, channel, data, options?.history ?? null, options?.idempotency ?? null)) as [
      string | null,
      boolean,
    ];
    const id = answer[0] ?? undefined;
    return { ...(id === undefined ? {} : { id }), ...(answer[1] ? { replayed: true } : {}) };
  }

  async history(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    this.check();
    const result = (await this.link.request(Op.HISTORY, channel, query)) as HistoryResult;
    // Positions travel as plain objects; a publication without one gets it from its id.
    const publications = result.publications.map((p) => (p.position || !p.id ? p : { ...p, position: parseMessageId(p.id) }));
    return { ...result, publications };
  }

  async removeHistory(channel: string): Promise<void> {
    this.check();
    await this.link.request(Op.REMOVE_HISTORY, channel);
  }

  isReady(): boolean {
    return !this.closed && this.handler !== undefined && this.link.isOpen;
  }

  subscribedCount(): number {
    return this.channels.size - (this.channels.has(NODE_CONTROL_CHANNEL) ? 1 : 0);
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.channels];
    this.channels.clear();
    if (all.length > 0 && this.link.isOpen) await this.link.request(Op.UNSUB, all).catch(() => undefined);
  }

  private check(): void {
    if (this.closed || !this.handler) throw new HeraldError('unavailable', 'broker is not running');
  }
}
