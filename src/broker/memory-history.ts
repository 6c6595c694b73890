/**
 * The memory broker's history: per channel, a ring buffer of the last `size` messages, an offset and an epoch.
 *
 * Expiry costs no timer per channel: a channel's messages are dropped when it is next touched after `ttlMs` of
 * quiet, and its position after `metaTtlMs`; `sweep()`, called from the broker's one interval, frees channels nobody
 * touches any more. Epochs are random, so a restarted process never hands out positions that look like old ones.
 */
import { randomBytes } from 'node:crypto';
import type { HistoryPolicy, HistoryQuery, HistoryResult, Publication } from './broker.js';
import { formatMessageId, type StreamPosition } from '../protocol/message-id.js';

class ChannelLog {
  offset = 0;
  /** Oldest kept message at ring[head]; `count` kept. */
  private ring: (Publication | undefined)[];
  private head = 0;
  private count = 0;
  messagesExpireAt = 0;
  metaExpiresAt = 0;

  constructor(readonly epoch: string, size: number) {
    this.ring = new Array<Publication | undefined>(size);
  }

  append(channel: string, data: string, policy: HistoryPolicy, now: number): Publication {
    this.expire(now);
    if (this.ring.length !== policy.size) this.resize(policy.size);
    this.offset++;
    const position: StreamPosition = { offset: this.offset, epoch: this.epoch };
    const p: Publication = { channel, data, id: formatMessageId(position), position, ts: now };
    const cap = this.ring.length;
    if (this.count < cap) {
      this.ring[(this.head + this.count) % cap] = p;
      this.count++;
    } else {
      this.ring[this.head] = p;
      this.head = (this.head + 1) % cap;
    }
    this.messagesExpireAt = now + policy.ttlMs;
    this.metaExpiresAt = Math.max(this.metaExpiresAt, now + policy.metaTtlMs);
    return p;
  }

  /** Kept messages with an offset above `after`, oldest first, at most `limit` (call `expire` first). */
  since(after: number, limit: number): Publication[] {
    const out: Publication[] = [];
    const first = this.offset - this.count + 1;
    const cap = this.ring.length;
    for (let o = Math.max(after + 1, first); o <= this.offset && out.length < limit; o++) {
      const p = this.ring[(this.head + (o - first)) % cap];
      if (p) out.push(p);
    }
    return out;
  }

  /** Drop the messages once the channel has been quiet for its TTL; the position stays. */
  expire(now: number): void {
    if (this.count > 0 && now >= this.messagesExpireAt) {
      this.ring.fill(undefined);
      this.head = 0;
      this.count = 0;
    }
  }

  private resize(size: number): void {
    // A policy change keeps the newest messages that fit.
    const kept = this.since(this.offset - Math.min(size, this.count), size);
    this.ring = new Array<Publication | undefined>(size);
    this.head = 0;
    this.count = kept.length;
    kept.forEach((p, i) => (this.ring[i] = p));
  }
}

export class MemoryHistory {
  private readonly logs = new Map<string, ChannelLog>();

  append(channel: string, data: string, policy: HistoryPolicy, now = Date.now()): Publication {
    return this.log(channel, policy, now).append(channel, data, policy, now);
  }

  read(channel: string, query: HistoryQuery, now = Date.now()): HistoryResult {
    const log = this.log(channel, query.policy, now);
    // Reading keeps the position alive: a subscriber of a quiet channel must be able to resume from it.
    log.metaExpiresAt = Math.max(log.metaExpiresAt, now + query.policy.metaTtlMs);
    const position: StreamPosition = { offset: log.offset, epoch: log.epoch };
    const since = query.since;
    log.expire(now);
    const publications =
      since && since.epoch === log.epoch && since.offset < log.offset ? log.since(since.offset, query.limit) : [];
    return { position, publications };
  }

  /** Free what expired. Called from the broker's single interval; O(channels). */
  sweep(now = Date.now()): void {
    for (const [channel, log] of this.logs) {
      if (now >= log.metaExpiresAt) this.logs.delete(channel);
      else log.expire(now);
    }
  }

  /** Channels with a live position (for tests). */
  size(): number {
    return this.logs.size;
  }

  clear(): void {
    this.logs.clear();
  }

  private log(channel: string, policy: HistoryPolicy, now: number): ChannelLog {
    let log = this.logs.get(channel);
    if (log && now >= log.metaExpiresAt) {
      this.logs.delete(channel);
      log = undefined;
    }
    if (!log) {
      log = new ChannelLog(newEpoch(), policy.size);
      log.metaExpiresAt = now + policy.metaTtlMs;
      this.logs.set(channel, log);
    }
    return log;
  }
}

/** 8 random base-36 characters: a new history generation. */
function newEpoch(): string {
  return (randomBytes(6).readUIntBE(0, 6) % 36 ** 8).toString(36).padStart(8, '0');
}
