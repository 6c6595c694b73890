/**
 * A generic webhook dispatcher: events in, signed JSON batches out to one URL, never in the way of the hot path.
 *
 * - `enqueue()` is O(1) and never waits: the event goes into a bounded queue (`queueSize`); past it the event is
 *   dropped and counted (`herald_webhook_dropped_total{reason="overflow"}`).
 * - Batches: up to `batchSize` events, sent `batchMs` after the first of them was queued (at once when full).
 * - One batch in flight per dispatcher, so the receiver sees events in the order they happened.
 * - A batch that fails (network error, timeout, a 5xx, 408 or 429) is sent again after a full-jitter exponential
 *   backoff, up to `maxAttempts` attempts; then it is dropped and counted (`reason="failed"`). Another 4xx is the
 *   receiver refusing the batch: dropped at once (`reason="rejected"`). Every attempt of a batch carries the same
 *   `X-Herald-Webhook-Id`, so a receiver can ignore a batch it already processed.
 * - What the body looks like and how it is signed belong to the caller (`encode`, `sign`): Herald's own webhooks
 *   (webhooks/herald-webhooks.ts) and a Pusher layer (`X-Pusher-Key`, `X-Pusher-Signature`) feed the same machinery.
 *
 * One timer per dispatcher (not per event or connection).
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../util/log.js';
import type { HookName, WebhookMetrics, WebhookSeries } from './metrics.js';

/** What a webhook event must be: a JSON object with a `name` (the receiver dispatches on it). */
export interface WebhookEvent {
  readonly name: string;
}

export interface WebhookDispatcherOptions<E extends WebhookEvent> {
  /** The receiver, an http(s) URL. */
  readonly url: string;
  /** Names the dispatcher in metrics (`hook` label) and logs: `herald`, `pusher`. */
  readonly name: HookName;
  /** The request body for a batch. @default {"time_ms": <now>, "events": [...]} (Pusher's shape) */
  readonly encode?: (events: readonly E[], timeMs: number) => string;
  /** Headers that sign `body` (called for each attempt, so a timestamp in them is fresh). */
  readonly sign: (body: string, timeMs: number) => Record<string, string>;
  /** Events a batch holds at most. @default 100 */
  readonly batchSize?: number;
  /** Milliseconds events wait to be batched with later ones. @default 250 */
  readonly batchMs?: number;
  /** Events waiting at most; more are dropped and counted. @default 10000 */
  readonly queueSize?: number;
  /** Milliseconds one attempt may take, answer included. @default 5000 */
  readonly timeoutMs?: number;
  /** Attempts per batch before it is dropped. @default 6 */
  readonly maxAttempts?: number;
  /** First retry delay's cap; it doubles per attempt up to `retryCapMs` (full jitter). @default 500 */
  readonly retryBaseMs?: number;
  /** @default 30000 */
  readonly retryCapMs?: number;
  readonly metrics: WebhookMetrics;
  readonly log: Logger;
  /** The HTTP client (tests may pass another; the default is the global fetch). */
  readonly fetch?: typeof fetch;
}

/** What a batch attempt came to. */
type Outcome = 'ok' | 'error' | 'timeout' | 'rejected';

/** Receiver answers worth another attempt: its own failures, and the two 4xx that mean "later". */
function retryable(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}

/** The batching, queue and retry settings every dispatcher takes from the configuration's webhook* settings. */
export function dispatcherLimits(config: {
  readonly webhookBatchSize: number;
  readonly webhookBatchMs: number;
  readonly webhookQueueSize: number;
  readonly webhookTimeoutMs: number;
  readonly webhookMaxAttempts: number;
}): Pick<WebhookDispatcherOptions<WebhookEvent>, 'batchSize' | 'batchMs' | 'queueSize' | 'timeoutMs' | 'maxAttempts'> {
  return {
    batchSize: config.webhookBatchSize,
    batchMs: config.webhookBatchMs,
    queueSize: config.webhookQueueSize,
    timeoutMs: config.webhookTimeoutMs,
    maxAttempts: config.webhookMaxAttempts,
  };
}

export function defaultEncode(events: readonly WebhookEvent[], timeMs: number): string {
  return JSON.stringify({ time_ms: timeMs, events });
}

export class WebhookDispatcher<E extends WebhookEvent> {
  private readonly queue: E[] = [];
  /** Index of the queue's first event: dequeuing moves it, and the array is compacted now and then. */
  private head = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The batch being sent or waiting for its retry. */
  private current: { id: string; events: E[]; attempts: number } | undefined;
  private sending: Promise<void> | undefined;
  private closed = false;
  private readonly series: WebhookSeries;
  private readonly encode: (events: readonly E[], timeMs: number) => string;
  private readonly batchSize: number;
  private readonly batchMs: number;
  private readonly queueSize: number;
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly retryBaseMs: number;
  private readonly retryCapMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly options: WebhookDispatcherOptions<E>) {
    this.encode = options.encode ?? defaultEncode;
    this.batchSize = options.batchSize ?? 100;
    this.batchMs = options.batchMs ?? 250;
    this.queueSize = options.queueSize ?? 10_000;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.maxAttempts = options.maxAttempts ?? 6;
    this.retryBaseMs = options.retryBaseMs ?? 500;
    this.retryCapMs = options.retryCapMs ?? 30_000;
    this.fetchImpl = options.fetch ?? fetch;
    this.series = options.metrics.series(options.name, () => this.pending());
  }

  /** Events queued or in the batch being sent. */
  pending(): number {
    return this.queue.length - this.head + (this.current?.events.length ?? 0);
  }

  /** Queue an event; false when it was dropped (the queue is full, or the dispatcher closed). Never waits. */
  enqueue(event: E): boolean {
    if (this.closed || this.queue.length - this.head >= this.queueSize) {
      this.series.dropped('overflow', 1);
      return false;
    }
    this.queue.push(event);
    this.series.queued();
    if (!this.current && !this.timer) {
      this.schedule(this.queue.length - this.head >= this.batchSize ? 0 : this.batchMs);
    }
    return true;
  }

  /**
   * Stop, after one last attempt at what is queued (each batch tried once, all within `withinMs`). What is still
   * waiting then is dropped and counted as failed.
   */
  async close(withinMs = this.timeoutMs): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const deadline = Date.now() + withinMs;
    if (this.sending) await this.sending.catch(() => undefined);
    while (Date.now() < deadline && (this.current || this.queue.length > this.head)) {
      const batch = this.current ?? this.take();
      if (!batch) break;
      this.current = batch;
      await this.attempt(batch, Math.max(1, deadline - Date.now()), true);
    }
    const left = this.pending();
    if (left > 0) this.series.dropped('failed', left);
    this.current = undefined;
    this.queue.length = 0;
    this.head = 0;
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.sending = this.sendNext().finally(() => (this.sending = undefined));
    }, ms);
    this.timer.unref();
  }

  private take(): { id: string; events: E[]; attempts: number } | undefined {
    const n = Math.min(this.batchSize, this.queue.length - this.head);
    if (n === 0) return undefined;
    const events = this.queue.slice(this.head, this.head + n);
    this.head += n;
    // Compact once the consumed part is the larger half: amortized O(1) per event.
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return { id: randomBytes(12).toString('base64url'), events, attempts: 0 };
  }

  private async sendNext(): Promise<void> {
    const batch = this.current ?? this.take();
    if (!batch) return;
    this.current = batch;
    const outcome = await this.attempt(batch, this.timeoutMs, false);
    if (this.closed) return;
    if (outcome === 'ok' || outcome === 'rejected' || batch.attempts >= this.maxAttempts) {
      if (outcome === 'rejected') this.series.dropped('rejected', batch.events.length);
      else if (outcome !== 'ok') {
        this.series.dropped('failed', batch.events.length);
        this.options.log.warn('webhook batch dropped after its last attempt', {
          hook: this.options.name,
          events: batch.events.length,
          attempts: batch.attempts,
        });
      }
      this.current = undefined;
      const waiting = this.queue.length - this.head;
      if (waiting > 0) this.schedule(waiting >= this.batchSize ? 0 : this.batchMs);
      return;
    }
    this.series.retried();
    const cap = Math.min(this.retryCapMs, this.retryBaseMs * 2 ** (batch.attempts - 1));
    this.schedule(Math.random() * cap);
  }

  /** One POST of `batch`; never throws. */
  private async attempt(batch: { id: string; events: E[]; attempts: number }, timeoutMs: number, last: boolean): Promise<Outcome> {
    batch.attempts++;
    const now = Date.now();
    const started = performance.now();
    let outcome: Outcome;
    let status = 0;
    try {
      const body = this.encode(batch.events, now);
      const res = await this.fetchImpl(this.options.url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': 'herald-webhooks',
          'X-Herald-Webhook-Id': batch.id,
          ...this.options.sign(body, now),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = res.status;
      // The answer's body is not read: only its status counts. Cancelling frees the connection for the next batch.
      await res.body?.cancel().catch(() => undefined);
      outcome = status >= 200 && status < 300 ? 'ok' : retryable(status) ? 'error' : 'rejected';
    } catch (err) {
      outcome = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError') ? 'timeout' : 'error';
    }
    this.series.attempt(outcome, (performance.now() - started) / 1000);
    if (outcome === 'ok') this.series.delivered(batch.events.length);
    else if (!last || outcome !== 'rejected') {
      this.options.log.debug('webhook attempt failed', { hook: this.options.name, outcome, status, attempt: batch.attempts });
    }
    if (last) {
      if (outcome === 'ok') this.current = undefined;
      else {
        this.series.dropped(outcome === 'rejected' ? 'rejected' : 'failed', batch.events.length);
        this.current = undefined;
      }
    }
    return outcome;
  }
}
