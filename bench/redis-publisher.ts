/**
 * Publishing with a plain Redis `PUBLISH`, as a backend in any language would (`--redis URL`): the same schedule
 * and message format as the HTTP publisher (publisher.ts), through one @redis/client connection whose commands
 * issued in one tick are pipelined.
 */
import { createClient } from '@redis/client';
import { nowUs, sleep } from './clock.js';
import { channelName, messageData } from './protocol.js';
import type { PublishResult } from './publisher.js';

const TICK_MS = 2;
const ANSWER_WAIT_MS = 10_000;

export class RedisPublisher {
  private readonly client: ReturnType<typeof createClient>;
  private connected: Promise<unknown> | undefined;

  constructor(private readonly spec: { url: string; channels: number; channelPrefix: string; maxInFlight: number }) {
    this.client = createClient({ url: spec.url, socket: { reconnectStrategy: false, connectTimeout: 5000 } });
    this.client.on('error', () => undefined);
  }

  async run(step: number, rate: number, durationMs: number, signal?: AbortSignal): Promise<PublishResult> {
    this.connected ??= this.client.connect();
    await this.connected;
    const C = this.spec.channels;
    const scheduled = Math.floor((rate * durationMs) / 1000);
    const r: PublishResult = {
      rate, durationMs, scheduled, sent: 0, ok: 0, failed: 0, unsent: 0,
      okPerChannel: new Array<number>(C).fill(0), errors: {}, startUs: nowUs(), endUs: 0,
    };
    const names = Array.from({ length: C }, (_, c) => channelName(this.spec.channelPrefix, c));
    const intervalUs = 1e6 / rate;
    let inFlight = 0;
    let k = 0;
    while (k < scheduled && !signal?.aborted) {
      const due = Math.min(scheduled, Math.floor((nowUs() - r.startUs) / intervalUs) + 1);
      for (; k < due && inFlight < this.spec.maxInFlight; k++) {
        const c = k % C;
        inFlight++;
        r.sent++;
        this.client.publish(names[c]!, messageData(step, Math.floor(k / C), Math.round(r.startUs + k * intervalUs))).then(
          () => {
            inFlight--;
            r.ok++;
            r.okPerChannel[c]!++;
          },
          (err: unknown) => {
            inFlight--;
            r.failed++;
            const code = err instanceof Error ? err.name : 'error';
            r.errors[code] = (r.errors[code] ?? 0) + 1;
          },
        );
      }
      await sleep(TICK_MS);
    }
    r.unsent = scheduled - k;
    const deadline = Date.now() + ANSWER_WAIT_MS;
    while (inFlight > 0 && Date.now() < deadline && !signal?.aborted) await sleep(5);
    if (inFlight > 0) {
      r.failed += inFlight;
      r.errors['no_answer'] = inFlight;
    }
    r.endUs = nowUs();
    return r;
  }

  close(): void {
    if (this.client.isOpen) this.client.destroy();
  }
}
