/**
 * Pusher webhooks (docs/pusher.md "Webhooks"): channel_occupied, channel_vacated, member_added, member_removed and
 * client_event, POSTed as Pusher does (`{"time_ms": ..., "events": [...]}`, `X-Pusher-Key`, `X-Pusher-Signature` =
 * hex HMAC-SHA256(secret, body)), through the generic dispatcher of src/webhooks/: bounded queue with overflow
 * counted (herald_webhook_*{hook="pusher"}), batches, retries with backoff.
 *
 * Occupied and vacated are the node observer's (this node's first and last subscriber; the machine's on --workers
 * with the embedded broker, HeraldNode.occupancyFrom); member events are sent by the node
 * that holds the member's client, once per user as Pusher counts them (pusher/presence.ts).
 */
import type { HeraldConfig } from '../config.js';
import type { HeraldNode } from '../core/node.js';
import type { Logger } from '../util/log.js';
import { dispatcherLimits, WebhookDispatcher } from '../webhooks/dispatcher.js';
import type { WebhookMetrics } from '../webhooks/metrics.js';
import type { PusherApp, PusherApps } from './apps.js';
import { hmacHex } from './protocol.js';

export interface PusherWebhookEvent {
  readonly name: string;
  readonly channel: string;
  readonly user_id?: string;
  readonly event?: string;
  readonly data?: string;
  readonly socket_id?: string;
}

interface Hook {
  readonly events: ReadonlySet<string>;
  readonly dispatcher: WebhookDispatcher<PusherWebhookEvent>;
}

export class PusherWebhooks {
  private readonly hooks = new Map<PusherApp, Hook[]>();

  constructor(
    private readonly apps: PusherApps,
    node: HeraldNode,
    config: HeraldConfig,
    metrics: WebhookMetrics,
    log: Logger,
  ) {
    for (const app of apps.all) {
      const hooks = app.config.webhooks.map((h): Hook => ({
        events: new Set(h.events),
        dispatcher: new WebhookDispatcher<PusherWebhookEvent>({
          url: h.url,
          name: 'pusher',
          sign: (body) => ({ 'X-Pusher-Key': app.key, 'X-Pusher-Signature': hmacHex(app.secret, body) }),
          ...dispatcherLimits(config),
          metrics,
          log,
        }),
      }));
      if (hooks.length > 0) this.hooks.set(app, hooks);
    }
    if (this.hooks.size === 0) return;
    node.observe({
      channelOccupied: (channel) => this.channelEvent('channel_occupied', channel),
      channelVacated: (channel) => this.channelEvent('channel_vacated', channel),
    });
  }

  /** A Herald channel's event, for every app it is a channel of. */
  channelEvent(name: string, channel: string, extra: Omit<PusherWebhookEvent, 'name' | 'channel'> = {}): void {
    if (this.hooks.size === 0) return;
    for (const app of this.apps.all) {
      const pusherName = app.pusherChannel(channel);
      if (pusherName !== undefined) this.send(app, { name, channel: pusherName, ...extra });
    }
  }

  send(app: PusherApp, event: PusherWebhookEvent): void {
    for (const hook of this.hooks.get(app) ?? []) if (hook.events.has(event.name)) hook.dispatcher.enqueue(event);
  }

  async close(withinMs: number): Promise<void> {
    await Promise.all([...this.hooks.values()].flat().map((h) => h.dispatcher.close(withinMs)));
  }
}
