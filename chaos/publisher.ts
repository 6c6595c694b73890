/**
 * The run's publisher: `POST /api/publish` of `m<seq> <sent ms> [padding]` at a steady rate, seq growing over the
 * whole run, through the nodes in turn (the next one when a node refuses or is unreachable). A few loops run side by
 * side, each owning some channels, so each channel's publishes are sequential and its acknowledged order is the
 * order subscribers must see. It counts every answer: 503 with and without Retry-After, 504, unreachable, and the
 * longest time without any acknowledgement (the publish outage).
 */
import { sleep } from '../bench/clock.js';

export interface PublisherOptions {
  readonly urls: () => readonly string[];
  readonly channels: readonly string[];
  /** Messages per second over all channels. */
  readonly rate: number;
  /** Bytes of padding per message (slow-consumers, history-pressure). @default 0 */
  readonly padding?: number;
}

export interface PublishFigures {
  acked: number;
  /** 503s, and how many of them said Retry-After. */
  unavailable: number;
  unavailableWithRetryAfter: number;
  /** 504 outcome_unknown: maybe published, so not counted as acknowledged. */
  unknown: number;
  unreachable: number;
  other: Record<string, number>;
  /** The longest time between two acknowledgements, ms. */
  longestGapMs: number;
}

export class Publisher {
  /** Per channel, the acknowledged seqs in order. */
  readonly acked = new Map<string, number[]>();
  /** Per channel, [seq, acknowledged at] of each acknowledged publish. */
  private readonly ackTimes = new Map<string, [number, number][]>();
  readonly figures: PublishFigures = {
    acked: 0, unavailable: 0, unavailableWithRetryAfter: 0, unknown: 0, unreachable: 0, other: {}, longestGapMs: 0,
  };
  private seq = 0;
  private running = true;
  private lastAck = 0;
  private readonly loops: Promise<void>[] = [];
  private readonly pad: string;

  constructor(private readonly o: PublisherOptions) {
    for (const c of o.channels) {
      this.acked.set(c, []);
      this.ackTimes.set(c, []);
    }
    this.pad = o.padding ? ' ' + 'x'.repeat(o.padding) : '';
    // Sequential per channel; 16 loops keep 200/s even when each publish takes 50 ms on a busy machine.
    const loops = Math.min(16, o.channels.length);
    // Loop l starts at node l: with two nodes, half the publishes go through the node a scenario kills, so its
    // in-flight publishes (unacknowledged, maybe published) are part of every node-kill run, not only of busy ones.
    for (let l = 0; l < loops; l++) this.loops.push(this.loop(o.channels.filter((_, i) => i % loops === l), o.rate / loops, l));
  }

  private async loop(channels: readonly string[], rate: number, firstNode: number): Promise<void> {
    const interval = 1000 / rate;
    const start = Date.now();
    let node = firstNode;
    for (let i = 0; this.running; i++) {
      const channel = channels[i % channels.length] as string;
      const seq = this.seq++;
      const urls = this.o.urls();
      const url = urls[node % urls.length] as string;
      const status = await this.publish(url, channel, seq);
      if (status === 200) {
        const now = Date.now();
        if (this.lastAck > 0) this.figures.longestGapMs = Math.max(this.figures.longestGapMs, now - this.lastAck);
        this.lastAck = now;
        this.figures.acked++;
        this.acked.get(channel)?.push(seq);
        this.ackTimes.get(channel)?.push([seq, now]);
      } else node++;
      const due = start + (i + 1) * interval - Date.now();
      if (due > 0) await sleep(due);
    }
  }

  private async publish(url: string, channel: string, seq: number): Promise<number> {
    try {
      const res = await fetch(`${url}/api/publish`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ channel, data: `m${seq} ${Date.now()}${this.pad}` }),
        signal: AbortSignal.timeout(10_000),
      });
      await res.arrayBuffer();
      if (res.status === 503) {
        this.figures.unavailable++;
        if (res.headers.get('retry-after') !== null) this.figures.unavailableWithRetryAfter++;
      } else if (res.status === 504) this.figures.unknown++;
      else if (res.status !== 200) this.figures.other[String(res.status)] = (this.figures.other[String(res.status)] ?? 0) + 1;
      return res.status;
    } catch {
      this.figures.unreachable++;
      return 0;
    }
  }

  /** Per channel, the first seq acknowledged at or after `t` (ms since the epoch). */
  firstAckedAfter(t: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [c, list] of this.ackTimes) {
      const first = list.find(([, at]) => at >= t);
      if (first) out[c] = first[0];
    }
    return out;
  }

  /** Per channel, the last acknowledged seq. */
  last(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [c, list] of this.acked) if (list.length > 0) out[c] = list[list.length - 1] as number;
    return out;
  }

  ackedRecord(): Record<string, number[]> {
    return Object.fromEntries(this.acked);
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

/** Publish a warm-up message `w` to every channel (not counted), so every subscriber learns its position. */
export async function warmUp(url: string, channels: readonly string[]): Promise<void> {
  for (let i = 0; i < channels.length; i += 20) {
    await Promise.all(
      channels.slice(i, i + 20).map((channel) =>
        fetch(`${url}/api/publish`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ channel, data: 'w' }),
        })
          .then((r) => r.arrayBuffer())
          .catch(() => undefined),
      ),
    );
  }
}
