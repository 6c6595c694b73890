/**
 * History on Redis: one Redis Function library (`herald`) that appends, trims, expires and publishes in one atomic
 * step, and reads a channel's position and the messages after a position. Backends without Herald's library call
 * the same function (docs/protocol.md "Publishing with history from any Redis client"):
 *
 *   FCALL herald_publish 2 <stream key> <meta key> <channel> <data> <size> <ttl ms> <meta ttl ms> PUBLISH|SPUBLISH
 *
 * Keys (`historyKeys`): `herald:h:<channel>` (a stream of `<offset>-0` → data) and `herald:m:<channel>` (a hash:
 * `e` epoch, `o` last offset). On Redis Cluster a hash tag follows the prefix, `herald:h:{tag}<channel>`, chosen so
 * the keys live on the channel's slot and the function's SPUBLISH stays on one shard (redis-slot.ts keyInSlotOf).
 *
 * On the wire, a message published by the function carries its id in a small envelope,
 * `"\0herald\0" + id + "\0" + data`, which the broker unwraps; a plain `PUBLISH ch data` (no envelope) is delivered
 * verbatim, without id: live only. No text payload starts with a NUL byte, so the two never mix.
 */
import { HeraldError } from '../errors.js';
import { formatMessageId, parseMessageId, type StreamPosition } from '../protocol/message-id.js';
import type { HistoryPolicy, HistoryQuery, HistoryResult, Idempotency, Publication } from './broker.js';
import { keyInSlotOf } from './redis-slot.js';

export const ENVELOPE_PREFIX = '\u0000herald\u0000';

/** The Redis Function library. Loaded by every Herald node when it connects, and again whenever Redis lost it. */
export const HISTORY_LIBRARY = `#!lua name=herald
-- Herald's history: see docs/protocol.md. KEYS[1] = stream key, KEYS[2] = meta key (both on the channel's slot).

-- A new history generation: the server time in microseconds, base 36. Offsets restart at 1 in it.
local function new_epoch()
  local t = redis.call('TIME')
  local n = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local digits = '0123456789abcdefghijklmnopqrstuvwxyz'
  local s = ''
  repeat
    local r = n % 36
    s = string.sub(digits, r + 1, r + 1) .. s
    n = math.floor(n / 36)
  until n == 0
  return s
end

-- The channel's epoch, created (with an empty stream) when absent; the position lives meta_ttl ms more.
local function current_epoch(keys, meta_ttl)
  local epoch = redis.call('HGET', keys[2], 'e')
  if not epoch then
    epoch = new_epoch()
    redis.call('DEL', keys[1])
    redis.call('HSET', keys[2], 'e', epoch, 'o', 0)
  end
  redis.call('PEXPIRE', keys[2], meta_ttl)
  return epoch
end

-- Idempotency (optional): KEYS[3] = herald:i:<channel>:<key> on the channel's slot, ARGV[7] = window ms. A key
-- already there holds the id of the message published under it: nothing is published again.
local function published_before(keys)
  if not keys[3] then return nil end
  local seen = redis.call('GET', keys[3])
  if seen then return { seen, 1 } end
  return nil
end

-- Remember the id under the idempotency key, if any. With a key the reply is { id, 0 }; without, the id alone.
local function remember(keys, args, id)
  if not keys[3] then return id end
  redis.call('SET', keys[3], id, 'PX', tonumber(args[7]))
  return { id, 0 }
end

-- Size 0: no history. The data is published verbatim, without an id ('').
local function publish_plain(args)
  if args[6] == 'PUBLISH' or args[6] == 'SPUBLISH' then
    redis.call(args[6], args[1], args[2])
  end
  return ''
end

-- ARGV: channel, data, size, ttl_ms, meta_ttl_ms, publish command (PUBLISH, SPUBLISH, or NONE)[, idempotency window
-- ms]. Returns the id (with an idempotency key: { id, 1 if published before else 0 }).
local function herald_publish(keys, args)
  local before = published_before(keys)
  if before then return before end
  if tonumber(args[3]) == 0 then return remember(keys, args, publish_plain(args)) end
  local epoch = current_epoch(keys, tonumber(args[5]))
  local offset = redis.call('HINCRBY', keys[2], 'o', 1)
  redis.call('XADD', keys[1], 'MAXLEN', tonumber(args[3]), offset .. '-0', 'd', args[2])
  redis.call('PEXPIRE', keys[1], tonumber(args[4]))
  local id = offset .. '-' .. epoch
  if args[6] == 'PUBLISH' or args[6] == 'SPUBLISH' then
    redis.call(args[6], args[1], '\\0herald\\0' .. id .. '\\0' .. args[2])
  end
  return remember(keys, args, id)
end

-- ARGV: since offset ('' for none), since epoch, limit, meta_ttl_ms.
-- Returns { epoch, last offset, offset1, data1, offset2, data2, ... } (messages only when since is in this epoch).
local function herald_history(keys, args)
  local epoch = current_epoch(keys, tonumber(args[4]))
  local top = tonumber(redis.call('HGET', keys[2], 'o'))
  local out = { epoch, top }
  if args[1] ~= '' and args[2] == epoch and tonumber(args[1]) < top then
    local from = (tonumber(args[1]) + 1) .. '-0'
    local entries = redis.call('XRANGE', keys[1], from, '+', 'COUNT', tonumber(args[3]))
    for _, e in ipairs(entries) do
      out[#out + 1] = e[1]
      out[#out + 1] = e[2][2]
    end
  end
  return out
end

redis.register_function('herald_publish', herald_publish)
redis.register_function('herald_history', herald_history)
`;

/** The stream key and the meta key of a channel (on Cluster: on the channel's slot). */
export function historyKeys(channel: string, cluster: boolean): [string, string] {
  // Standalone keys stay plain so a backend in any language can name them without computing slots.
  if (!cluster) return [`herald:h:${channel}`, `herald:m:${channel}`];
  return [keyInSlotOf(channel, 'herald:h:'), keyInSlotOf(channel, 'herald:m:')];
}

/**
 * The key remembering an idempotency key: `herald:i:<channel>:<key>` (keys hold no `:`, so the pair is unambiguous);
 * on Cluster, `herald:i:{T}<channel>:<key>`, on the channel's slot like the history keys.
 */
export function idempotencyKeyName(channel: string, key: string, cluster: boolean): string {
  return (cluster ? keyInSlotOf(channel, 'herald:i:') : `herald:i:${channel}`) + ':' + key;
}

/** A Redis message → Publication: unwraps Herald's envelope (id + data); anything else is verbatim, without id. */
export function toPublication(channel: string, payload: string, ts: number): Publication {
  if (payload.startsWith(ENVELOPE_PREFIX)) {
    const end = payload.indexOf('\u0000', ENVELOPE_PREFIX.length);
    const id = end < 0 ? undefined : payload.slice(ENVELOPE_PREFIX.length, end);
    const position = id === undefined ? undefined : parseMessageId(id);
    if (position) return { channel, data: payload.slice(end + 1), id, position, ts };
  }
  return { channel, data: payload, ts };
}

/**
 * Runs one command on the shard that owns `key` (the broker's bounded `command` seam); `write` marks a command that
 * publishes (its failures are told apart: not sent, or sent without an answer).
 */
export type RedisCommand = (key: string | undefined, args: readonly string[], write?: boolean) => Promise<unknown>;

export class RedisHistory {
  constructor(
    private readonly run: RedisCommand,
    private readonly publishCommand: () => 'PUBLISH' | 'SPUBLISH',
  ) {}

  /** Load (or replace) the library on the shard of `key` (any shard when undefined). */
  async load(key?: string): Promise<void> {
    await this.run(key, ['FUNCTION', 'LOAD', 'REPLACE', HISTORY_LIBRARY]);
  }

  /**
   * Publish through the function: with history when `policy` is given, else verbatim (that path is taken only for an
   * idempotency key, which needs the function's atomic check). Resolves with the id ('' without history).
   */
  async publish(
    channel: string,
    data: string,
    policy: HistoryPolicy | undefined,
    idempotency?: Idempotency,
  ): Promise<{ id: string; replayed: boolean }> {
    const cluster = this.publishCommand() === 'SPUBLISH';
    const keys: string[] = historyKeys(channel, cluster);
    const args = [
      channel,
      data,
      String(policy?.size ?? 0),
      String(policy?.ttlMs ?? 0),
      String(policy?.metaTtlMs ?? 0),
      this.publishCommand(),
    ];
    if (idempotency) {
      keys.push(idempotencyKeyName(channel, idempotency.key, cluster));
      args.push(String(idempotency.windowMs));
    }
    const reply = await this.fcall(keys, 'herald_publish', args, true);
    const [id, replayed] = Array.isArray(reply) ? [reply[0], reply[1] === 1] : [reply, false];
    if (typeof id !== 'string' || (policy ? !parseMessageId(id) : id !== '' && !parseMessageId(id))) {
      throw new HeraldError('internal', 'unexpected herald_publish reply');
    }
    return { id, replayed };
  }

  async read(channel: string, query: HistoryQuery): Promise<HistoryResult> {
    const keys = historyKeys(channel, this.publishCommand() === 'SPUBLISH');
    const since = query.since;
    const reply = await this.fcall(keys, 'herald_history', [
      since ? String(since.offset) : '',
      since ? since.epoch : '',
      String(query.limit),
      String(query.policy.metaTtlMs),
    ]);
    if (!Array.isArray(reply) || reply.length < 2) throw new HeraldError('internal', 'unexpected herald_history reply');
    const epoch = String(reply[0]);
    const position: StreamPosition = { offset: Number(reply[1]), epoch };
    const publications: Publication[] = [];
    const ts = Date.now();
    for (let i = 2; i + 1 < reply.length; i += 2) {
      const offset = Number(String(reply[i]).split('-')[0]);
      const p: StreamPosition = { offset, epoch };
      publications.push({ channel, data: String(reply[i + 1]), id: formatMessageId(p), position: p, ts });
    }
    return { position, publications };
  }

  /**
   * FCALL, loading the library first where Redis lost it (a restart without persistence, a new shard). `write`: the
   * call publishes, so a timeout means "outcome unknown" rather than "not done" (RedisBroker.command).
   */
  private async fcall(keys: readonly string[], fn: string, args: string[], write = false): Promise<unknown> {
    const call = (): Promise<unknown> => this.run(keys[0], ['FCALL', fn, String(keys.length), ...keys, ...args], write);
    try {
      return await call();
    } catch (err) {
      if (!functionMissing(err)) throw err;
      await this.load(keys[0]);
      return call();
    }
  }
}

function functionMissing(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (/function not found/i.test(e.message)) return true;
  }
  return false;
}
