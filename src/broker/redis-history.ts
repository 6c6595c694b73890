/**
 * History on Redis: one Redis Function library (`herald`) that appends, trims, expires and publishes in one atomic
 * step, and reads a channel's position and the messages after a position. Backends without Herald's library call
 * the same function (docs/protocol.md "Publishing with history from any Redis client"):
 *
 *   FCALL herald_publish 2 <stream key> <meta key> <channel> <data> <size> <ttl ms> <meta ttl ms> PUBLISH|SPUBLISH
 *         [<idempotency window ms> [json]]
 *
 * Keys (`historyKeys`): `herald:h:<channel>` (a stream of `<offset>-0` → data) and `herald:m:<channel>` (a hash:
 * `e` epoch, `o` last offset, `r` the replication id the epoch was created under: an epoch of another id is not
 * trusted, since the data may have been rolled back). Reading a channel without them writes nothing (a read stamp).
 * On Redis Cluster a hash tag follows the prefix, `herald:h:{tag}<channel>`, chosen so the keys live on the channel's
 * slot and the function's SPUBLISH stays on one shard (redis-slot.ts keyInSlotOf).
 *
 * On the wire, a message published by the function carries its id in a small envelope,
 * `"\0herald\0" + id + flags + "\0" + data`, which the broker unwraps (flags: `;j` when the data is JSON text,
 * Publication.json); a plain `PUBLISH ch data` (no envelope) is delivered verbatim, as text, without id: live only.
 * A message without history goes out verbatim too, unless it is JSON or its data itself starts with the envelope's
 * marker: then it is enveloped with an empty id, so nobody's data is ever taken for an envelope it is not.
 * In the stream, a JSON message's entry has the field `j` beside `d`.
 */
import { HeraldError } from '../errors.js';
import { formatMessageId, parseMessageId, type StreamPosition } from '../protocol/message-id.js';
import type { HistoryPolicy, HistoryQuery, HistoryResult, Idempotency, Publication } from './broker.js';
import { jsonDataText } from '../protocol/json-data.js';
import { keyInSlotOf } from './redis-slot.js';

export const ENVELOPE_PREFIX = '\u0000herald\u0000';

/** The Redis Function library. Loaded by every Herald node when it connects, and again whenever Redis lost it. */
export const HISTORY_LIBRARY = `#!lua name=herald
-- Herald's history: see docs/protocol.md. KEYS[1] = stream key, KEYS[2] = meta key (both on the channel's slot).
-- The meta hash: e = epoch, o = last offset, r = the replication id of the server that created the epoch.

local digits = '0123456789abcdefghijklmnopqrstuvwxyz'
local function base36(n)
  local s = ''
  repeat
    local r = n % 36
    s = string.sub(digits, r + 1, r + 1) .. s
    n = math.floor(n / 36)
  until n == 0
  return s
end

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- This server's replication id (master_replid). It changes whenever the data may no longer be what this server
-- acknowledged: a restart (from an older snapshot, or empty), a promotion (a failover, perhaps to a replica that
-- lagged), a demotion (the data becomes another master's). The run_id would miss a master demoted and promoted
-- again without a restart, so it is read on every call (it can change while the library stays loaded; ~2 us).
local function replication_id()
  return string.match(redis.call('INFO', 'replication'), 'master_replid:(%x+)')
end

-- A new history generation: the server time in microseconds, base 36 (so an epoch tells when it began), under
-- this replication id. The old stream goes; offsets restart at 1.
local function new_epoch(keys, replid)
  local epoch = base36(now_us())
  redis.call('DEL', keys[1])
  redis.call('HSET', keys[2], 'e', epoch, 'o', 0, 'r', replid)
  return epoch
end

-- The channel's epoch for a publish. An epoch created under another replication id may have been rolled back (its
-- offsets handed out again): it is replaced, as an absent one is created. The position lives meta_ttl ms more.
local function current_epoch(keys, meta_ttl)
  local replid = replication_id()
  local meta = redis.call('HMGET', keys[2], 'e', 'r')
  local epoch = meta[1]
  if not epoch or meta[2] ~= replid then epoch = new_epoch(keys, replid) end
  redis.call('PEXPIRE', keys[2], meta_ttl)
  return epoch
end

-- A read stamp, the position of a channel without (trusted) history: 'S' .. time in us, base 36 .. the first
-- TAG hex digits of the replication id. Nothing is stored for it.
local TAG = 12
local function stamp(now, replid)
  return 'S' .. base36(now) .. string.sub(replid, 1, TAG)
end

-- Whether a client at 0-<s> missed nothing before the channel's current epoch (begun at 'created' us; nil when
-- there is none): s was issued under this replication id less than meta_ttl ms ago (an epoch created after it
-- cannot have expired since), the epoch began at or after it, and the server never evicted a key (an evicted
-- epoch could have come and gone).
local function stamp_holds(s, now, replid, meta_ttl, created)
  if string.len(s) <= 1 + TAG or string.sub(s, 1, 1) ~= 'S' then return false end
  if string.sub(s, -TAG) ~= string.sub(replid, 1, TAG) then return false end
  local issued = tonumber(string.sub(s, 2, -TAG - 1), 36)
  if not issued or issued > now or now - issued >= meta_ttl * 1000 then return false end
  if created and created < issued then return false end
  return string.match(redis.call('INFO', 'stats'), 'evicted_keys:(%d+)') == '0'
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

local MARKER = '\\0herald\\0'

-- The envelope around data: the marker, the id ('' for none), ';j' when the data is JSON text, NUL, the data.
local function envelope(id, json, data)
  return MARKER .. id .. (json and ';j' or '') .. '\\0' .. data
end

-- Size 0: no history, no id (''). The data is published verbatim, unless it is JSON or starts with the marker
-- itself (it would be taken for an envelope): then in an envelope with an empty id.
local function publish_plain(args, json)
  if args[6] == 'PUBLISH' or args[6] == 'SPUBLISH' then
    local data = args[2]
    if json or string.sub(data, 1, #MARKER) == MARKER then data = envelope('', json, data) end
    redis.call(args[6], args[1], data)
  end
  return ''
end

-- ARGV: channel, data, size, ttl_ms, meta_ttl_ms, publish command (PUBLISH, SPUBLISH, or NONE)[, idempotency window
-- ms (ignored without an idempotency key)[, 'json' when the data is JSON text]]. Returns the id (with an
-- idempotency key: { id, 1 if published before else 0 }).
local function herald_publish(keys, args)
  local before = published_before(keys)
  if before then return before end
  local json = args[8] == 'json'
  if tonumber(args[3]) == 0 then return remember(keys, args, publish_plain(args, json)) end
  local epoch = current_epoch(keys, tonumber(args[5]))
  local offset = redis.call('HINCRBY', keys[2], 'o', 1)
  if json then
    redis.call('XADD', keys[1], 'MAXLEN', tonumber(args[3]), offset .. '-0', 'd', args[2], 'j', '1')
  else
    redis.call('XADD', keys[1], 'MAXLEN', tonumber(args[3]), offset .. '-0', 'd', args[2])
  end
  redis.call('PEXPIRE', keys[1], tonumber(args[4]))
  local id = offset .. '-' .. epoch
  if args[6] == 'PUBLISH' or args[6] == 'SPUBLISH' then
    redis.call(args[6], args[1], envelope(id, json, args[2]))
  end
  return remember(keys, args, id)
end

-- ARGV: since offset ('' for none), since epoch, limit, meta_ttl_ms.
-- Returns { epoch, last offset, stamp holds (1 or 0), offset1, data1, json1, offset2, ... } (json: '1' for JSON
-- text, else ''): the messages after
-- since when it is in this epoch; when it is of another epoch (or a stamp), this epoch's from its start (the caller
-- tells the client to reload first, unless its stamp holds). A channel without trusted history answers a read
-- stamp as its epoch, and nothing is written for it.
local function herald_history(keys, args)
  local replid = replication_id()
  local meta_ttl = tonumber(args[4])
  local meta = redis.call('HMGET', keys[2], 'e', 'o', 'r')
  if not meta[1] or meta[3] ~= replid then
    local now = now_us()
    local holds = args[1] == '0' and stamp_holds(args[2], now, replid, meta_ttl, nil)
    return { stamp(now, replid), 0, holds and 1 or 0 }
  end
  local epoch, top = meta[1], tonumber(meta[2])
  redis.call('PEXPIRE', keys[2], meta_ttl)
  local out = { epoch, top, 0 }
  if args[1] == '' then return out end
  local after = 0
  if args[2] == epoch then
    after = tonumber(args[1])
  elseif args[1] == '0' and stamp_holds(args[2], now_us(), replid, meta_ttl, tonumber(epoch, 36)) then
    out[3] = 1
  end
  if after < top then
    local entries = redis.call('XRANGE', keys[1], (after + 1) .. '-0', '+', 'COUNT', tonumber(args[3]))
    for _, e in ipairs(entries) do
      out[#out + 1] = e[1]
      out[#out + 1] = e[2][2]
      out[#out + 1] = (e[2][3] == 'j') and '1' or ''
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

/** The envelope Herald publishes a message in (see the header); `id` '' for a message without history. */
export function envelope(id: string, json: boolean, data: string): string {
  return ENVELOPE_PREFIX + id + (json ? JSON_FLAG : '') + '\u0000' + data;
}
const JSON_FLAG = ';j';

/** A message without history goes out verbatim unless it must be enveloped: JSON, or data that looks like one. */
export function plainPayload(data: string, json: boolean): string {
  return json || data.startsWith(ENVELOPE_PREFIX) ? envelope('', json, data) : data;
}

/**
 * A Redis message → Publication: unwraps Herald's envelope (id, JSON flag, data); anything else is verbatim text,
 * without id. JSON data from Redis is checked (a backend may have called herald_publish with the flag): invalid
 * JSON is delivered as text.
 */
export function toPublication(channel: string, payload: string, ts: number): Publication {
  if (payload.startsWith(ENVELOPE_PREFIX)) {
    const end = payload.indexOf('\u0000', ENVELOPE_PREFIX.length);
    if (end >= 0) {
      let meta = payload.slice(ENVELOPE_PREFIX.length, end);
      const flagged = meta.endsWith(JSON_FLAG);
      if (flagged) meta = meta.slice(0, -JSON_FLAG.length);
      const position = meta === '' ? undefined : parseMessageId(meta);
      if (meta === '' || position) {
        const data = payload.slice(end + 1);
        const json = flagged ? jsonDataText(data) : undefined;
        const base = json !== undefined ? { channel, data: json, json: true, ts } : { channel, data, ts };
        return position ? { ...base, id: meta, position } : base;
      }
    }
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
    json = false,
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
    if (idempotency) keys.push(idempotencyKeyName(channel, idempotency.key, cluster));
    // The window only counts with a key (KEYS[3]); it holds the place of the json flag without one.
    if (idempotency || json) args.push(String(idempotency?.windowMs ?? 0));
    if (json) args.push('json');
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
    if (!Array.isArray(reply) || reply.length < 3) throw new HeraldError('internal', 'unexpected herald_history reply');
    const epoch = String(reply[0]);
    const position: StreamPosition = { offset: Number(reply[1]), epoch };
    const publications: Publication[] = [];
    const ts = Date.now();
    for (let i = 3; i + 2 < reply.length; i += 3) {
      const offset = Number(String(reply[i]).split('-')[0]);
      const p: StreamPosition = { offset, epoch };
      const text = String(reply[i + 1]);
      const json = String(reply[i + 2]) === '1' ? jsonDataText(text) : undefined;
      const id = formatMessageId(p);
      publications.push(json !== undefined ? { channel, data: json, json: true, id, position: p, ts } : { channel, data: text, id, position: p, ts });
    }
    return { position, publications, stampHolds: Number(reply[2]) === 1 };
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
