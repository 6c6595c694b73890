/**
 * The memory broker's history: per channel, a ring of its last `size` messages, an offset and an epoch, all within
 * one bound of bytes for the whole process (`historyMaxBytes`).
 *
 * - Expiry costs no timer per channel: a channel's messages are dropped when it is next touched after `ttlMs` of
 *   quiet, and its position after `metaTtlMs`; `sweep()`, called from the broker's one interval, frees channels
 *   nobody touches any more.
 * - Reading never creates anything: a channel without history answers a read stamp (`0-S<time><tag>`, see
 *   protocol/message-id.ts), so reads of unknown channels cost no memory at all.
 * - The bound: every channel counts its estimated bytes (`messageBytes`, `channelBytes`). Channels are linked in the
 *   order of their last publication, so when the total passes `maxBytes` the least recently published channel is
 *   the list's head, found in O(1) with no scan. Eviction takes the cheap loss first:
 *   1. the messages of the least recently published channels, which keep their position (epoch and offset): their
 *      live subscribers notice nothing, and a client resuming into the dropped messages is told to reload
 *      (`expired`), as after the history TTL. Such a bare channel moves to a second list, also in publication order;
 *   2. whole bare channels (their positions), oldest first, once bare positions hold more than a quarter of the
 *      bound (so positions never crowd out messages) or no other channel has messages left: a client holding a
 *      position there is told to reload (`epoch`: the channel's next message starts another epoch), and read stamps
 *      issued before stop vouching (`lastEvictionAt`), since the dropped epoch may have been one they did not know of.
 *   Dropping messages first matters under load: with more active channels than the bound holds, dropping whole
 *   channels would start a new epoch (and a reload for every live subscriber) at almost every publication.
 * - Epochs are random and stamps carry a random tag of this process: a restarted process (all history gone) never
 *   hands out positions that look like old ones, and never vouches for a stamp it did not issue.
 * - Rings grow as messages come (4, 8, ... up to `size` slots), so a channel with one message costs one slot.
 */
import { randomBytes } from 'node:crypto';
import type { HistoryPolicy, HistoryQuery, HistoryResult, HistoryUsage, Publication } from './broker.js';
import { formatMessageId, isReadStamp, type StreamPosition } from '../protocol/message-id.js';

/**
 * Estimated bytes of one kept message besides its data: the Publication object, its id string and parsed position,
 * and its ring slot (measured on Node 20 with `--expose-gc`: about 150; rounded up).
 */
export const MESSAGE_OVERHEAD_BYTES = 200;
/** Estimated bytes of one channel besides its name and ring slots: its log object, Map entry and epoch text. */
export const CHANNEL_OVERHEAD_BYTES = 300;

/** A message's estimated bytes: 2 per UTF-16 unit of data (the most a JavaScript string takes) and the overhead. */
function messageBytes(p: Publication): number {
  return 2 * p.data.length + MESSAGE_OVERHEAD_BYTES;
}

/** A channel's estimated bytes without its messages: its name, its ring's slots and the overhead. */
function channelBytes(channel: string, slots: number): number {
  return 2 * channel.length + 8 * slots + CHANNEL_OVERHEAD_BYTES;
}

/** The two ends of a doubly linked list of channels, oldest publication first. */
interface LogList {
  oldest: ChannelLog | undefined;
  newest: ChannelLog | undefined;
}

class ChannelLog {
  offset = 0;
  /** Oldest kept message at ring[head]; `count` kept. Grows on demand up to the policy's size. */
  private ring: (Publication | undefined)[] = [];
  private head = 0;
  private count = 0;
  /** Estimated bytes of this channel, messages included. */
  bytes: number;
  messagesExpireAt = 0;
  metaExpiresAt = 0;
  /** Neighbours in the order of last publication (the bound evicts from the oldest), in one of two lists. */
  older: ChannelLog | undefined;
  newer: ChannelLog | undefined;
  /** In the list of channels whose messages were evicted (position only) rather than the main one. */
  bare = false;

  constructor(readonly channel: string, readonly epoch: string, readonly createdAt: number) {
    this.bytes = channelBytes(channel, 0);
  }

  append(data: string, policy: HistoryPolicy, now: number, json: boolean): Publication {
    this.expire(now);
    while (this.count >= policy.size) this.dropOldest();
    if (this.count === this.ring.length) this.regrow(Math.min(policy.size, Math.max(4, this.ring.length * 2)));
    this.offset++;
    const position: StreamPosition = { offset: this.offset, epoch: this.epoch };
    // The log's own channel string: every kept message shares it, whatever string the publisher passed.
    const id = formatMessageId(position);
    const p: Publication = json ? { channel: this.channel, data, json, id, position, ts: now } : { channel: this.channel, data, id, position, ts: now };
    this.ring[(this.head + this.count) % this.ring.length] = p;
    this.count++;
    this.bytes += messageBytes(p);
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
    if (this.count > 0 && now >= this.messagesExpireAt) this.dropMessages();
  }

  /** Drop every kept message; the position (epoch and offset) stays, so readers see the hole as expired. */
  dropMessages(): void {
    this.ring = [];
    this.head = 0;
    this.count = 0;
    this.bytes = channelBytes(this.channel, 0);
  }

  hasMessages(): boolean {
    return this.count > 0;
  }

  /** Drop the oldest messages until the log is within `bytes`, keeping at least the newest. */
  trimTo(bytes: number): void {
    while (this.count > 1 && this.bytes > bytes) this.dropOldest();
  }

  private dropOldest(): void {
    const p = this.ring[this.head];
    this.ring[this.head] = undefined;
    this.head = (this.head + 1) % this.ring.length;
    this.count--;
    if (p) this.bytes -= messageBytes(p);
  }

  private regrow(slots: number): void {
    const kept = this.since(this.offset - this.count, this.count);
    this.bytes += 8 * (slots - this.ring.length);
    this.ring = new Array<Publication | undefined>(slots);
    for (let i = 0; i < kept.length; i++) this.ring[i] = kept[i];
    this.head = 0;
  }
}

export class MemoryHistory {
  private readonly logs = new Map<string, ChannelLog>();
  /** Least and most recently published channels: the ends of the eviction order. */
  private readonly main: LogList = { oldest: undefined, newest: undefined };
  /** Channels whose messages the bound evicted (position only), in the same order: evicted whole only after the rest. */
  private readonly bareList: LogList = { oldest: undefined, newest: undefined };
  /** Estimated bytes of the bare channels (constant while a channel is bare: it has no messages to change). */
  private bareBytes = 0;
  private bytes = 0;
  private evicted = 0;
  /** When a channel was last dropped before its time (stamps issued earlier no longer vouch). */
  private lastEvictionAt = -Infinity;
  /** This process's tag on its read stamps. */
  private readonly tag = randomBase36(8);

  /** `maxBytes`: the bound on the estimated bytes of all channels' history (`historyMaxBytes`). */
  constructor(private readonly maxBytes = Number.POSITIVE_INFINITY) {}

  /** `json`: the data is JSON text (Publication.json), kept with the message so a replay says so too. */
  append(channel: string, data: string, policy: HistoryPolicy, now = Date.now(), json = false): Publication {
    let log = this.live(channel, now);
    if (log) {
      this.unlink(log);
      log.bare = false; // published again: back in the main order
    } else {
      log = new ChannelLog(channel, newEpoch(), now);
      this.logs.set(channel, log);
      this.bytes += log.bytes;
    }
    this.linkNewest(log);
    const before = log.bytes;
    const p = log.append(data, policy, now, json);
    this.bytes += log.bytes - before;
    if (this.bytes > this.maxBytes) this.evict(log, now);
    return p;
  }

  read(channel: string, query: HistoryQuery, now = Date.now()): HistoryResult {
    const since = query.since;
    const log = this.live(channel, now);
    if (!log) {
      // No history: a read stamp, and nothing created.
      const stampHolds = since !== undefined && this.stampHolds(since, now, query.policy, undefined);
      return { position: { offset: 0, epoch: this.stamp(now) }, publications: [], stampHolds };
    }
    // Reading keeps the position alive: a subscriber of a quiet channel must be able to resume from it.
    log.metaExpiresAt = Math.max(log.metaExpiresAt, now + query.policy.metaTtlMs);
    const before = log.bytes;
    log.expire(now);
    this.bytes += log.bytes - before;
    const position: StreamPosition = { offset: log.offset, epoch: log.epoch };
    if (!since) return { position, publications: [] };
    const current = since.epoch === log.epoch;
    // Of another epoch: this epoch's messages from its start (the client is told to reload first, unless its stamp holds).
    const after = current ? since.offset : 0;
    const publications = after < log.offset ? log.since(after, query.limit) : [];
    const stampHolds = !current && this.stampHolds(since, now, query.policy, log.createdAt);
    return { position, publications, stampHolds };
  }

  /** Free what expired. Called from the broker's single interval; O(channels). */
  sweep(now = Date.now()): void {
    for (const [channel, log] of this.logs) {
      if (now >= log.metaExpiresAt) this.drop(channel, log);
      else {
        const before = log.bytes;
        log.expire(now);
        this.bytes += log.bytes - before;
      }
    }
  }

  /** Channels with a live position. */
  /** Drop a channel's messages, keeping its position. */
  removeMessages(channel: string): void {
    const log = this.logs.get(channel);
    if (!log) return;
    const before = log.bytes;
    log.dropMessages();
    this.bytes += log.bytes - before;
  }

  size(): number {
    return this.logs.size;
  }

  usage(): HistoryUsage {
    return { bytes: this.bytes, channels: this.logs.size, evictions: this.evicted };
  }

  clear(): void {
    this.logs.clear();
    this.main.oldest = this.main.newest = undefined;
    this.bareList.oldest = this.bareList.newest = undefined;
    this.bytes = this.bareBytes = 0;
  }

  /** The channel's log unless its position expired (then it is freed). */
  private live(channel: string, now: number): ChannelLog | undefined {
    const log = this.logs.get(channel);
    if (log && now >= log.metaExpiresAt) {
      this.drop(channel, log);
      return undefined;
    }
    return log;
  }

  /**
   * Over the bound: drop the messages of the least recently published channels (they keep their positions), then
   * whole channels whose messages are gone, then, if need be, the oldest messages of `current`.
   */
  private evict(current: ChannelLog, now: number): void {
    while (this.bytes > this.maxBytes) {
      const bare = this.bareList.oldest;
      const log = this.main.oldest;
      if (bare && (this.bareBytes > this.maxBytes / 4 || !log || log === current)) {
        this.drop(bare.channel, bare);
        this.evicted++;
        this.lastEvictionAt = now;
      } else if (log && log !== current) {
        this.unlink(log);
        const before = log.bytes;
        if (log.hasMessages()) this.evicted++;
        log.dropMessages();
        this.bytes += log.bytes - before;
        log.bare = true;
        this.linkNewest(log);
      } else break;
    }
    if (this.bytes > this.maxBytes) {
      // `current` alone is over the bound: it keeps its newest messages that fit (a gap its readers see as `expired`).
      const before = current.bytes;
      current.trimTo(current.bytes - (this.bytes - this.maxBytes));
      this.bytes += current.bytes - before;
    }
  }

  private drop(channel: string, log: ChannelLog): void {
    this.logs.delete(channel);
    this.unlink(log);
    this.bytes -= log.bytes;
  }

  private unlink(log: ChannelLog): void {
    const list = log.bare ? this.bareList : this.main;
    if (log.bare) this.bareBytes -= log.bytes; // every log in `logs` is linked in exactly one list
    if (log.older) log.older.newer = log.newer;
    else if (list.oldest === log) list.oldest = log.newer;
    if (log.newer) log.newer.older = log.older;
    else if (list.newest === log) list.newest = log.older;
    log.older = log.newer = undefined;
  }

  private linkNewest(log: ChannelLog): void {
    const list = log.bare ? this.bareList : this.main;
    if (log.bare) this.bareBytes += log.bytes;
    log.older = list.newest;
    if (list.newest) list.newest.newer = log;
    list.newest = log;
    list.oldest ??= log;
  }

  /** `S<milliseconds, base 36><tag>`: "this process found no history here at this time". */
  private stamp(now: number): string {
    return 'S' + Math.floor(now).toString(36) + this.tag;
  }

  /**
   * Whether a client at `since` (a read stamp) missed nothing before the channel's current epoch (created at
   * `createdAt`; undefined when the channel has no history): the stamp is this process's, younger than the
   * position TTL (an epoch created after it cannot have expired since), no channel was evicted since it was issued,
   * and the current epoch began at or after it.
   */
  private stampHolds(since: StreamPosition, now: number, policy: HistoryPolicy, createdAt: number | undefined): boolean {
    const s = since.epoch;
    if (since.offset !== 0 || !isReadStamp(s) || s.length <= 1 + this.tag.length || !s.endsWith(this.tag)) return false;
    const issued = parseInt(s.slice(1, s.length - this.tag.length), 36);
    if (!Number.isSafeInteger(issued) || issued > now || now - issued >= policy.metaTtlMs) return false;
    if (this.lastEvictionAt >= issued) return false;
    return createdAt === undefined || createdAt >= issued;
  }
}

/** 8 random base-36 characters: a new history generation (never starting with `S`: lowercase). */
function newEpoch(): string {
  return randomBase36(8);
}

function randomBase36(length: number): string {
  return (randomBytes(8).readUIntBE(0, 6) % 36 ** length).toString(36).padStart(length, '0');
}
