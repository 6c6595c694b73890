/**
 * The embedded broker: one node, no network. Publications are delivered synchronously, in publish order, to the
 * node's handler for every subscribed channel.
 */
import { HeraldError } from '../errors.js';
import type { Broker, BrokerHandler, Publication, PublishOptions, PublishResult } from './broker.js';

export class MemoryBroker implements Broker {
  readonly kind = 'memory';
  private handler: BrokerHandler | undefined;
  private readonly channels = new Set<string>();
  private closed = false;

  async start(handler: BrokerHandler): Promise<void> {
    this.handler = handler;
  }

  async subscribe(channels: readonly string[]): Promise<void> {
    for (const c of channels) this.channels.add(c);
  }

  async unsubscribe(channels: readonly string[]): Promise<void> {
    for (const c of channels) this.channels.delete(c);
  }

  async publish(channel: string, data: string, _options?: PublishOptions): Promise<PublishResult> {
    if (this.closed || !this.handler) throw new HeraldError('unavailable', 'broker is not running');
    if (this.channels.has(channel)) {
      const publication: Publication = { channel, data, ts: Date.now() };
      this.handler.onPublication(publication);
    }
    return {};
  }

  isReady(): boolean {
    return !this.closed && this.handler !== undefined;
  }

  subscribedCount(): number {
    return this.channels.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.channels.clear();
  }
}
