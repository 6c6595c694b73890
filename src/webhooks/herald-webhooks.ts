/**
 * Herald's own webhooks (`webhook` URL): client connected / disconnected and channel occupied / vacated, fed from
 * the node's observer (core/node.ts NodeObserver) into a WebhookDispatcher signed with `webhookSecret`.
 *
 * Occupied and vacated are the node's observer's: this node's first local subscriber and last, or on `--workers`
 * with the embedded broker the machine's (HeraldNode.occupancyFrom: the primary tells one worker). With several
 * nodes on Redis each reports its own (the event names the node), as docs/webhooks.md says. The observer only builds a small
 * object and queues it: nothing here waits, and nothing runs on the fan-out path.
 */
import type { HeraldConfig } from '../config.js';
import type { HeraldNode } from '../core/node.js';
import type { Session } from '../core/session.js';
import type { Logger } from '../util/log.js';
import { dispatcherLimits, WebhookDispatcher } from './dispatcher.js';
import type { WebhookMetrics } from './metrics.js';
import { SIGNATURE_HEADER, webhookSignature } from './signature.js';

export const HERALD_WEBHOOK_EVENTS = ['client_connected', 'client_disconnected', 'channel_occupied', 'channel_vacated'] as const;
export type HeraldWebhookEventName = (typeof HERALD_WEBHOOK_EVENTS)[number];

/** One event as the receiver gets it (docs/webhooks.md). */
export interface HeraldWebhookEvent {
  readonly name: HeraldWebhookEventName;
  /** Milliseconds since the epoch when it happened (the batch's `time_ms` is when it was sent). */
  readonly time_ms: number;
  /** The node it happened on. */
  readonly node: string;
  readonly channel?: string;
  readonly client?: string;
  readonly user?: string;
  readonly transport?: string;
  readonly channels?: readonly string[];
  readonly reason?: string;
}

/** The dispatcher and observer, when `webhook` is set; `close()` sends what is queued on shutdown. */
export function startHeraldWebhooks(
  config: HeraldConfig,
  node: HeraldNode,
  metrics: WebhookMetrics,
  log: Logger,
): WebhookDispatcher<HeraldWebhookEvent> | undefined {
  if (config.webhook === '') return undefined;
  const secret = config.webhookSecret;
  const dispatcher = new WebhookDispatcher<HeraldWebhookEvent>({
    url: config.webhook,
    name: 'herald',
    sign: (body, timeMs) => ({ [SIGNATURE_HEADER]: webhookSignature(secret, body, timeMs) }),
    ...dispatcherLimits(config),
    metrics,
    log,
  });
  const wanted = new Set<string>(config.webhookEvents);
  const nodeId = node.nodeId;
  // Polls are requests, not connections: each would be a connect and a disconnect (their channels still count).
  const lasting = (s: Session): boolean => s.options.transport !== 'poll';
  const client = (s: Session): Pick<HeraldWebhookEvent, 'client' | 'user' | 'transport'> => ({
    client: s.id,
    ...(s.options.user !== undefined ? { user: s.options.user } : {}),
    transport: s.options.transport,
  });
  node.observe({
    ...(wanted.has('client_connected')
      ? {
          sessionOpened: (s) => {
            if (!lasting(s)) return;
            dispatcher.enqueue({
              name: 'client_connected',
              time_ms: Date.now(),
              node: nodeId,
              ...client(s),
              channels: s.targets.map((t) => t.channel),
            });
          },
        }
      : {}),
    ...(wanted.has('client_disconnected')
      ? {
          sessionEnded: (s, reason) => {
            if (!lasting(s)) return;
            dispatcher.enqueue({ name: 'client_disconnected', time_ms: Date.now(), node: nodeId, ...client(s), reason });
          },
        }
      : {}),
    ...(wanted.has('channel_occupied')
      ? { channelOccupied: (channel) => dispatcher.enqueue({ name: 'channel_occupied', time_ms: Date.now(), node: nodeId, channel }) }
      : {}),
    ...(wanted.has('channel_vacated')
      ? { channelVacated: (channel) => dispatcher.enqueue({ name: 'channel_vacated', time_ms: Date.now(), node: nodeId, channel }) }
      : {}),
  });
  return dispatcher;
}
