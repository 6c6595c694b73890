/**
 * Presence on Redis: each node writes its own members, per channel, under keys of its own, and refreshes them on a
 * heartbeat; a node that dies stops refreshing, and its entries expire. Readers skip a node whose heartbeat is past
 * its deadline even before Redis drops its keys. So a killed node's members are gone from every answer at most
 * `presenceTtlSeconds` after its last heartbeat (docs/presence.md).
 *
 * Keys of channel C, all on C's cluster slot (`keyInSlotOf`), so one script touches them on one shard:
 *   herald:pi:{t}C          sorted set: node id → deadline (ms); the nodes that hold members of C
 *   herald:pm:<node>:{t}C   hash: client id → member JSON (that node's members of C)
 *   herald:pu:<node>:{t}C   hash: user → that node's clients of the user in C (named users only)
 * All three carry a TTL of `presenceTtlSeconds`, refreshed by the heartbeat.
 *
 * Counting C costs O(nodes): HLEN per live node (the distinct users: HKEYS per other node, a union). Listing costs
 * O(members). Writes are one script call per join or leave; a heartbeat is one call per channel with members here.
 * Redis restarted (or a write failed): the heartbeat's script answers that the node's hash is gone, and the node
 * rewrites the channel from its own members, so presence is whole again within one heartbeat.
 */
import { HeraldError } from '../errors.js';
import { keyInSlotOf } from '../broker/redis-slot.js';
import type { Logger } from '../util/log.js';
import { memberJson, parseStoredMember, type PresenceMember } from './member.js';
import type { PresenceStore, RemotePresence, StoreContext } from './store.js';

/** The part of RedisBroker this store uses (its bounded command seam). */
export interface RedisCommands {
  command(key: string | undefined, args: readonly string[], write?: boolean): Promise<unknown>;
}

const NODE_ID = /^[0-9a-z]{1,32}$/;
/** Members written per script call when a channel is rewritten. */
const REWRITE_CHUNK = 500;

// KEYS: index, members, users. ARGV: node, deadline, ttl, then (client, json, user) triples.
const ADD = `
for i = 4, #ARGV, 3 do
  if redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) == 1 and ARGV[i + 2] ~= '' then
    redis.call('HINCRBY', KEYS[3], ARGV[i + 2], 1)
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

// KEYS: members, users, index. ARGV: node, then (client, user) pairs. When this node's last member of the channel
// leaves, its hashes are gone (Redis drops empty hashes) and it leaves the index too: a vacated channel keeps no key.
const REMOVE = `
for i = 2, #ARGV, 2 do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 and ARGV[i + 1] ~= '' then
    if redis.call('HINCRBY', KEYS[2], ARGV[i + 1], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[i + 1]) end
  end
end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('ZREM', KEYS[3], ARGV[1]) end
return 1`;

// KEYS: index, members, users. ARGV: node, deadline, ttl, now. Answers 0 when this node's hash is gone (rewrite it).
const REFRESH = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[4])
if redis.call('PEXPIRE', KEYS[2], ARGV[3]) == 0 then return 0 end
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

/**
 * Presence commands in flight at once on this node; more wait their turn. Presence shares the broker's connections,
 * and a burst (a reconnect storm's joins, a heartbeat over many channels) must not queue ahead of publishes,
 * subscriptions and history reads long enough to time them out.
 */
const MAX_IN_FLIGHT = 16;

export class RedisPresenceStore implements PresenceStore {
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];
  /** Channels whose Redis entries must be rewritten from the local members (a write failed). */
  private readonly dirty = new Set<string>();
  private lastBeat = 0;
  private beating = false;
  private closed = false;

  constructor(
    private readonly redis: RedisCommands,
    private readonly ctx: StoreContext,
    private readonly log: Logger,
  ) {}

  /** One Redis command, within MAX_IN_FLIGHT. */
  private async run(key: string | undefined, args: readonly string[], write = false): Promise<unknown> {
    if (this.inFlight >= MAX_IN_FLIGHT) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.inFlight++;
    try {
      return await this.redis.command(key, args, write);
    } finally {
      this.inFlight--;
      this.waiting.shift()?.();
    }
  }

  private indexKey(channel: string): string {
    return keyInSlotOf(channel, 'herald:pi:');
  }
  private membersKey(channel: string, node = this.ctx.nodeId): string {
    return keyInSlotOf(channel, `herald:pm:${node}:`);
  }
  private usersKey(channel: string, node = this.ctx.nodeId): string {
    return keyInSlotOf(channel, `herald:pu:${node}:`);
  }

  /**
   * Joins and leaves of one event-loop turn are written together, one script call per channel and kind (a reconnect
   * storm of N clients on a channel costs a few calls, not N). Order holds: each channel's calls are sent in the
   * order of its changes, on one connection.
   */
  private queued = new Map<string, { kind: 'add' | 'remove'; members: PresenceMember[] }[]>();
  private flushScheduled = false;

  added(channel: string, member: PresenceMember): void {
    this.enqueue(channel, 'add', member);
  }

  removed(channel: string, member: PresenceMember): void {
    this.enqueue(channel, 'remove', member);
  }

  private enqueue(channel: string, kind: 'add' | 'remove', member: PresenceMember): void {
    if (this.closed || this.dirty.has(channel)) return;
    let runs = this.queued.get(channel);
    if (!runs) this.queued.set(channel, (runs = []));
    const last = runs[runs.length - 1];
    if (last?.kind === kind && last.members.length < REWRITE_CHUNK) last.members.push(member);
    else runs.push({ kind, members: [member] });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const queued = this.queued;
    this.queued = new Map();
    for (const [channel, runs] of queued) {
      if (this.dirty.has(channel)) continue;
      for (const run of runs) {
        const done = run.kind === 'add' ? this.write(channel, run.members) : this.remove(channel, run.members);
        done.catch((err: unknown) => this.failed(channel, err));
      }
    }
  }

  private remove(channel: string, members: readonly PresenceMember[]): Promise<unknown> {
    const keys = [this.membersKey(channel), this.usersKey(channel), this.indexKey(channel)];
    const args = ['EVAL', REMOVE, '3', ...keys, this.ctx.nodeId];
    for (const m of members) args.push(m.client, m.user);
    return this.run(keys[0], args, true);
  }

  private write(channel: string, members: readonly PresenceMember[]): Promise<unknown> {
    const now = Date.now();
    const keys = [this.indexKey(channel), this.membersKey(channel), this.usersKey(channel)];
    const args = ['EVAL', ADD, '3', ...keys, this.ctx.nodeId, String(now + this.ctx.ttlMs), String(this.ctx.ttlMs)];
    for (const m of members) args.push(m.client, memberJson(m), m.user);
    return this.run(keys[0], args, true);
  }

  private failed(channel: string, err: unknown): void {
    if (this.closed) return;
    if (!this.dirty.has(channel)) this.log.debug('presence write failed: the channel is rewritten at the next heartbeat', { channel, err: String(err) });
    this.dirty.add(channel);
  }

  /** Rewrite a channel's entries of this node from its local members (after a failed write, or a Redis restart). */
  private async rewrite(channel: string): Promise<void> {
    const members = this.ctx.local.members(channel);
    const keys = [this.membersKey(channel), this.usersKey(channel)];
    await this.run(keys[0], ['DEL', ...keys], true);
    for (let i = 0; i < members.length; i += REWRITE_CHUNK) await this.write(channel, members.slice(i, i + REWRITE_CHUNK));
    if (members.length === 0) {
      await this.run(this.indexKey(channel), ['ZREM', this.indexKey(channel), this.ctx.nodeId], true);
    }
  }

  tick(now: number): void {
    if (this.closed || this.beating || now - this.lastBeat < this.ctx.heartbeatMs) return;
    this.lastBeat = now;
    this.beating = true;
    this.heartbeat(now)
      .catch((err: unknown) => this.log.debug('presence heartbeat failed', { err: String(err) }))
      .finally(() => {
        this.beating = false;
      });
  }

  /** Refresh every channel with members here (their TTL and this node's deadline); rewrite what is gone or dirty. */
  private async heartbeat(now: number): Promise<void> {
    const dirty = [...this.dirty];
    this.dirty.clear();
    const redo = new Set<string>(dirty);
    const deadline = String(now + this.ctx.ttlMs);
    const ttl = String(this.ctx.ttlMs);
    const refreshes: Promise<void>[] = [];
    for (const channel of this.ctx.local.channelNames()) {
      if (redo.has(channel)) continue;
      const keys = [this.indexKey(channel), this.membersKey(channel), this.usersKey(channel)];
      refreshes.push(
        this.run(keys[0], ['EVAL', REFRESH, '3', ...keys, this.ctx.nodeId, deadline, ttl, String(now)], true).then(
          (answer) => {
            if (answer === 0) redo.add(channel);
          },
          () => {
            redo.add(channel);
          },
        ),
      );
    }
    await Promise.all(refreshes);
    for (const channel of redo) {
      if (this.closed) return;
      try {
        await this.rewrite(channel);
      } catch (err) {
        this.dirty.add(channel);
        throw err;
      }
    }
  }

  async remote(channel: string, withMembers: boolean, limit: number): Promise<RemotePresence> {
    const index = this.indexKey(channel);
    let nodes: string[];
    try {
      const raw = await this.run(index, ['ZRANGE', index, String(Date.now()), '+inf', 'BYSCORE']);
      nodes = (Array.isArray(raw) ? raw : []).map(String).filter((n) => NODE_ID.test(n) && n !== this.ctx.nodeId);
    } catch (err) {
      throw new HeraldError('unavailable', 'presence cannot be read now', { cause: err });
    }
    const members: PresenceMember[] = [];
    const users = new Set<string>();
    let clients = 0;
    let anonymous = 0;
    try {
      await Promise.all(
        nodes.map(async (node) => {
          const mk = this.membersKey(channel, node);
          if (withMembers) {
            const raw = await this.run(mk, ['HVALS', mk]);
            for (const v of Array.isArray(raw) ? raw : []) {
              const m = parseStoredMember(String(v), this.ctx.maxInfoBytes);
              if (!m) continue;
              clients++;
              if (m.user === '') anonymous++;
              else users.add(m.user);
              if (members.length < limit) members.push(m);
            }
            return;
          }
          const uk = this.usersKey(channel, node);
          const [n, named] = await Promise.all([this.run(mk, ['HLEN', mk]), this.run(uk, ['HGETALL', uk])]);
          clients += Number(n) || 0;
          // HGETALL answers a flat list in RESP2 and an object in RESP3: accept both.
          const pairs = Array.isArray(named) ? named.map(String) : Object.entries((named ?? {}) as Record<string, unknown>).flat().map(String);
          let namedClients = 0;
          for (let i = 0; i + 1 < pairs.length; i += 2) {
            users.add(pairs[i]!);
            namedClients += Number(pairs[i + 1]) || 0;
          }
          anonymous += Math.max(0, (Number(n) || 0) - namedClients);
        }),
      );
    } catch (err) {
      throw new HeraldError('unavailable', 'presence cannot be read now', { cause: err });
    }
    return { members, clients, users, anonymous };
  }

  /** Stop heartbeats; this node's entries are removed (a drained node leaves no ghosts for the TTL). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const work: Promise<unknown>[] = [];
    for (const channel of this.ctx.local.channelNames()) {
      const keys = [this.membersKey(channel), this.usersKey(channel)];
      work.push(this.run(keys[0], ['DEL', ...keys], true).catch(() => undefined));
      work.push(this.run(this.indexKey(channel), ['ZREM', this.indexKey(channel), this.ctx.nodeId], true).catch(() => undefined));
    }
    await Promise.all(work);
  }
}
