/**
 * Webhook figures in /metrics, one set of families for every dispatcher of the process, told apart by the `hook`
 * label (`herald`, `pusher`): created once per registry (server.ts) and handed to each dispatcher.
 */
import { ROUND_TRIP_SECONDS, type Counter, type HistogramFamily, type MetricsRegistry } from '../core/metrics.js';

/** The dispatcher names a `hook` label may take (anything else would be counted as `other`). */
export const HOOK_NAMES = ['herald', 'pusher'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

export type DropReason = 'overflow' | 'failed' | 'rejected';

/** One dispatcher's view of the families. */
export interface WebhookSeries {
  queued(): void;
  delivered(events: number): void;
  dropped(reason: DropReason, events: number): void;
  retried(): void;
  attempt(outcome: 'ok' | 'error' | 'timeout' | 'rejected', seconds: number): void;
}

export class WebhookMetrics {
  private readonly events: Counter;
  private readonly deliveredEvents: Counter;
  private readonly droppedEvents: Counter;
  private readonly retries: Counter;
  private readonly attempts: Counter;
  private readonly durations: HistogramFamily<HookName>;
  private readonly queues = new Map<string, () => number>();

  constructor(registry: MetricsRegistry) {
    const hook = { hook: [...HOOK_NAMES] };
    this.events = registry.counter('herald_webhook_events_total', 'Webhook events queued, by dispatcher.', hook);
    this.deliveredEvents = registry.counter('herald_webhook_delivered_total', 'Webhook events the receiver accepted (2xx).', hook);
    this.droppedEvents = registry.counter(
      'herald_webhook_dropped_total',
      'Webhook events dropped: overflow (queue full), failed (every attempt failed), rejected (the receiver answered 4xx).',
      { ...hook, reason: ['overflow', 'failed', 'rejected'] },
    );
    this.retries = registry.counter('herald_webhook_retries_total', 'Webhook batches sent again after a failed attempt.', hook);
    this.attempts = registry.counter('herald_webhook_attempts_total', 'Webhook POSTs, by outcome (ok, error, timeout, rejected).', {
      ...hook,
      outcome: ['ok', 'error', 'timeout', 'rejected'],
    });
    // Every dispatcher name has its series from the start (0 where none runs): a family never renders empty.
    registry.gauge('herald_webhook_queue', 'Webhook events waiting to be sent, by dispatcher.', () =>
      HOOK_NAMES.map((name): [Record<string, string>, number] => [{ hook: name }, this.queues.get(name)?.() ?? 0]),
    );
    this.durations = registry.histogramFamily('herald_webhook_duration_seconds', 'Time of one webhook POST, answer included.', 'hook', HOOK_NAMES, ROUND_TRIP_SECONDS);
  }

  series(name: HookName, pending: () => number): WebhookSeries {
    this.queues.set(name, pending);
    const hook = { hook: name };
    return {
      queued: () => this.events.inc(hook),
      delivered: (n) => this.deliveredEvents.inc(hook, n),
      dropped: (reason, n) => this.droppedEvents.inc({ hook: name, reason }, n),
      retried: () => this.retries.inc(hook),
      attempt: (outcome, seconds) => {
        this.attempts.inc({ hook: name, outcome });
        this.durations.of(name).observe(seconds);
      },
    };
  }
}
