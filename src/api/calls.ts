/**
 * The server API's calls (docs/api.md): each one takes its checked JSON arguments and the caller's key scope, and
 * answers a JSON object. The HTTP side (routes.ts) reads the request and writes the answer; calls that concern
 * connections on every node (channels, disconnect, unsubscribe) run here and on the others (cluster-call.ts).
 */
import { scopeAllows, type ApiKeyScope } from '../auth/api-key.js';
import { hasHistory } from '../broker/broker.js';
import type { ClusterStats } from '../core/node-stats.js';
import type { HeraldNode } from '../core/node.js';
import type { Session } from '../core/session.js';
import { HeraldError } from '../errors.js';
import { formatMessageId, parseMessageId, type StreamPosition } from '../protocol/message-id.js';
import { memberObject } from '../presence/member.js';
import type { Presence } from '../presence/presence.js';
import { VERSION } from '../version.js';
import { argsOf, channelArg, intArg, optionalBool, optionalString, whoArg, type Args } from './args.js';
import { ClusterCalls } from './cluster-call.js';

/** Members one `presence` answer lists at most. */
export const MAX_PRESENCE_LIMIT = 10_000;
/** Channels per `channels` page at most (an answer from each node must fit one control message). */
export const MAX_CHANNELS_LIMIT = 200;
/** Messages one `history` answer holds at most. */
export const MAX_HISTORY_LIMIT = 1000;
/** Operator codes a `disconnect` may give (WebSocket's private range). */
export const DISCONNECT_CODES = { min: 4000, max: 4999 } as const;
/** The codes of a `disconnect` without one: the `disconnected` reason's, or its reconnect twin. */
export const DEFAULT_DISCONNECT_CODE = 3530;
export const DEFAULT_RECONNECT_CODE = 3030;

export type CallName = 'presence' | 'presence_stats' | 'channels' | 'info' | 'history' | 'remove_history' | 'disconnect' | 'unsubscribe';
export type Call = (args: Args, scope: ApiKeyScope) => Promise<Record<string, unknown>>;

export class ServerApiCalls {
  private readonly cluster: ClusterCalls;
  private readonly startedAt = Date.now();
  /** One entry per call: the route table is built from it (routes.ts). */
  readonly table: Readonly<Record<CallName, Call>>;

  constructor(
    private readonly node: HeraldNode,
    private readonly presence: Presence,
    private readonly stats: ClusterStats,
    clusterWaitMs = 1000,
  ) {
    this.cluster = new ClusterCalls(node, stats, clusterWaitMs);
    this.cluster.register('channels', (a) => this.localChannels(a));
    this.cluster.register('disconnect', (a) => this.localDisconnect(a));
    this.cluster.register('unsubscribe', (a) => this.localUnsubscribe(a));
    this.table = {
      presence: (a, s) => this.presenceCall(a, s),
      presence_stats: (a, s) => this.presenceStats(a, s),
      channels: (a, s) => this.channels(a, s),
      info: () => Promise.resolve(this.info()),
      history: (a, s) => this.history(a, s),
      remove_history: (a, s) => this.removeHistory(a, s),
      disconnect: (a) => this.disconnect(a),
      unsubscribe: (a, s) => this.unsubscribe(a, s),
    };
  }

  /** Run one call for a key of `scope`: 403 unless the key may make it. */
  run(name: CallName, args: Args, scope: ApiKeyScope): Promise<Record<string, unknown>> {
    if (!scopeAllows(scope, name)) throw new HeraldError('forbidden', `this API key may not call ${name}`);
    return this.table[name](args, scope);
  }

  /** The call's channel, valid by the subscription rules and within the key's namespaces (403). */
  private channelFor(args: Args, scope: ApiKeyScope): string {
    const channel = channelArg(args);
    const ns = this.node.policy.namespaceOf(channel);
    if (scope.namespaces && !scope.namespaces.includes(ns)) {
      throw new HeraldError('forbidden', `this API key may not use ${ns === '' ? 'the default namespace' : `namespace ${ns}`}`);
    }
    return channel;
  }

  // --- presence ----------------------------------------------------------------------------------------------------

  private presenceChannel(args: Args, scope: ApiKeyScope): string {
    const channel = this.channelFor(args, scope);
    if (!this.presence.enabled(channel)) throw new HeraldError('bad_request', `presence is not on for ${channel} (namespace rule presence)`);
    return channel;
  }

  private async presenceCall(args: Args, scope: ApiKeyScope): Promise<Record<string, unknown>> {
    const channel = this.presenceChannel(args, scope);
    const limit = intArg(args, 'limit', 1, MAX_PRESENCE_LIMIT, MAX_PRESENCE_LIMIT);
    const answer = await this.presence.members(channel, limit);
    return { channel, members: answer.members.map(memberObject), truncated: answer.truncated };
  }

  private async presenceStats(args: Args, scope: ApiKeyScope): Promise<Record<string, unknown>> {
    const channel = this.presenceChannel(args, scope);
    return { channel, ...(await this.presence.stats(channel)) };
  }

  // --- channels ----------------------------------------------------------------------------------------------------

  private async channels(args: Args, scope: ApiKeyScope): Promise<Record<string, unknown>> {
    const prefix = optionalString(args, 'prefix', 255) ?? '';
    const cursor = optionalString(args, 'cursor', 255) ?? '';
    const limit = intArg(args, 'limit', 1, MAX_CHANNELS_LIMIT, 100);
    const { answers, unanswered } = await this.cluster.everywhere('channels', { prefix, after: cursor, limit });
    const counts = new Map<string, number>();
    let more = false;
    for (const { result } of answers) {
      const list = result['channels'];
      if (!Array.isArray(list)) continue;
      if (result['more'] === true) more = true;
      for (const entry of list.slice(0, limit) as unknown[]) {
        if (!Array.isArray(entry) || typeof entry[0] !== 'string' || typeof entry[1] !== 'number') continue;
        const [name, n] = entry as [string, number];
        if (!name.startsWith(prefix) || name <= cursor) continue;
        counts.set(name, (counts.get(name) ?? 0) + n);
      }
    }
    const names = [...counts.keys()].sort(byCodeUnit);
    if (names.length > limit) more = true;
    const page = names.slice(0, limit);
    const allowed = scope.namespaces;
    const channels = page
      .filter((c) => !allowed || allowed.includes(this.node.policy.namespaceOf(c)))
      .map((channel) => ({ channel, subscribers: counts.get(channel) ?? 0 }));
    const next = more && page.length > 0 ? page[page.length - 1] : undefined;
    return { channels, ...(next !== undefined ? { next_cursor: next } : {}), unanswered };
  }

  /** This node's channels after `after` with `prefix`, in code-unit order, at most `limit`, with local subscriber counts. */
  private localChannels(args: Args): Record<string, unknown> {
    const prefix = optionalString(args, 'prefix', 255) ?? '';
    const after = optionalString(args, 'after', 255) ?? '';
    const limit = intArg(args, 'limit', 1, MAX_CHANNELS_LIMIT, 100);
    const names: string[] = [];
    for (const name of this.node.hub.channelNames()) if (name.startsWith(prefix) && name > after) names.push(name);
    names.sort(byCodeUnit);
    const page = names.slice(0, limit);
    return { channels: page.map((c) => [c, this.node.hub.memberCount(c)]), more: names.length > limit };
  }

  // --- info --------------------------------------------------------------------------------------------------------

  private info(): Record<string, unknown> {
    const nodes = this.stats.current().map((s) => ({
      node: s.node,
      host: s.host,
      pid: s.pid,
      version: s.version ?? null,
      uptimeSeconds: Math.max(0, Math.round((Date.now() - s.startedAt) / 1000)),
      broker: s.broker,
      draining: s.draining,
      connections: s.connections,
      channels: s.channels,
      subscriptions: s.subscriptions,
    }));
    const connections: Record<string, number> = {};
    for (const n of nodes) for (const [t, c] of Object.entries(n.connections)) connections[t] = (connections[t] ?? 0) + c;
    return {
      node: this.node.nodeId,
      version: VERSION,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      nodes,
      totals: { nodes: nodes.length, connections },
    };
  }

  // --- history -----------------------------------------------------------------------------------------------------

  private historyChannel(args: Args, scope: ApiKeyScope) {
    const channel = this.channelFor(args, scope);
    const policy = this.node.policy.history(channel);
    const broker = this.node.broker;
    if (!policy || !hasHistory(broker)) throw new HeraldError('bad_request', `${channel} keeps no history (historySize / namespace rules)`);
    return { channel, policy, broker };
  }

  private async history(args: Args, scope: ApiKeyScope): Promise<Record<string, unknown>> {
    const { channel, policy, broker } = this.historyChannel(args, scope);
    const limit = intArg(args, 'limit', 1, MAX_HISTORY_LIMIT, Math.min(100, MAX_HISTORY_LIMIT));
    const sinceText = optionalString(args, 'since', 128);
    let since: StreamPosition | undefined;
    if (sinceText !== undefined && sinceText !== '') {
      since = parseMessageId(sinceText);
      if (!since) throw new HeraldError('bad_request', '"since" is not a message id (<offset>-<epoch>)');
    }
    try {
      const head = await broker.history(channel, { limit: 1, policy });
      const position = head.position;
      // Without `since`: the latest `limit` messages. With one of another epoch: the current epoch from its start.
      const from: StreamPosition = since && since.epoch === position.epoch ? since : { epoch: position.epoch, offset: since ? 0 : Math.max(0, position.offset - limit) };
      const read = position.offset === 0 ? head : await broker.history(channel, { since: from, limit, policy });
      // Data published as JSON is given back as that value (docs/api.md), as /ws delivers it.
      const publications = read.publications.map((p) => ({ id: p.id ?? null, data: p.json === true ? (JSON.parse(p.data) as unknown) : p.data, ts: p.ts }));
      // With `since`: did the answer start right after it? Else the messages between are gone (or of another epoch).
      const first = read.publications[0]?.position?.offset;
      const complete =
        !since || (since.epoch === position.epoch && (first === undefined ? since.offset >= position.offset : first === since.offset + 1));
      return {
        channel,
        position: formatMessageId(read.position),
        publications,
        ...(since && !complete ? { reload: since.epoch === position.epoch ? 'expired' : 'epoch' } : {}),
      };
    } catch (err) {
      if (err instanceof HeraldError && err.code !== 'internal') throw err;
      throw new HeraldError('unavailable', 'history cannot be read now', { cause: err });
    }
  }

  private async removeHistory(args: Args, scope: ApiKeyScope): Promise<Record<string, unknown>> {
    const { channel, broker } = this.historyChannel(args, scope);
    if (!broker.removeHistory) throw new HeraldError('bad_request', 'this broker cannot remove history');
    try {
      await broker.removeHistory(channel);
    } catch (err) {
      if (err instanceof HeraldError && err.code !== 'internal') throw err;
      throw new HeraldError('unavailable', 'history cannot be removed now', { cause: err });
    }
    return { channel };
  }

  // --- disconnect, unsubscribe -------------------------------------------------------------------------------------

  private async disconnect(raw: Args): Promise<Record<string, unknown>> {
    const args = checkDisconnect(raw);
    const { answers, unanswered } = await this.cluster.everywhere('disconnect', args);
    return { disconnected: sumOf(answers, 'disconnected'), unanswered };
  }

  private localDisconnect(raw: Args): Record<string, unknown> {
    const args = checkDisconnect(raw);
    const custom = { code: args.code, reconnect: args.reconnect };
    let n = 0;
    for (const session of this.sessionsOf(args)) {
      session.disconnect('disconnected', custom);
      n++;
    }
    return { disconnected: n };
  }

  private async unsubscribe(args: Args, scope: ApiKeyScope): Promise<Record<string, unknown>> {
    const channel = this.channelFor(args, scope);
    const who = whoArg(args);
    const { answers, unanswered } = await this.cluster.everywhere('unsubscribe', { channel, ...who });
    return { unsubscribed: sumOf(answers, 'unsubscribed'), unanswered };
  }

  private localUnsubscribe(args: Args): Record<string, unknown> {
    const channel = channelArg(args);
    const who = whoArg(args);
    let n = 0;
    for (const session of this.node.sessionsOn(channel)) {
      if ('client' in who ? session.id !== who.client : session.options.user !== who.user) continue;
      for (const target of session.targets.filter((t) => t.channel === channel)) {
        this.node.unsubscribe(session, target);
        const frame = session.codec.encodeUnsubscribed?.(target.label);
        if (frame) session.write(frame);
      }
      n++;
    }
    return { unsubscribed: n };
  }

  /** This node's open sessions of a user (a scan: no per-session index is kept for this rare call), or one client's. */
  private *sessionsOf(who: { user: string } | { client: string }): Iterable<Session> {
    if ('client' in who) {
      const s = this.node.findSession(who.client);
      if (s) yield s;
      return;
    }
    for (const s of [...this.node.openSessions()]) if (!s.isEnded && s.options.user === who.user) yield s;
  }
}

interface DisconnectArgs extends Record<string, unknown> {
  readonly code: number;
  readonly reconnect: boolean;
}

function checkDisconnect(raw: Args): DisconnectArgs & ({ user: string } | { client: string }) {
  const args = argsOf(raw);
  const who = whoArg(args);
  const reconnect = optionalBool(args, 'reconnect') ?? false;
  const fallback = reconnect ? DEFAULT_RECONNECT_CODE : DEFAULT_DISCONNECT_CODE;
  const given = args['code'];
  // The default codes come back when the other nodes re-check the arguments as sent to them.
  const code = given === undefined || given === null || given === fallback ? fallback : intArg(args, 'code', DISCONNECT_CODES.min, DISCONNECT_CODES.max, fallback);
  return { ...who, code, reconnect };
}

function sumOf(answers: readonly { result: Record<string, unknown> }[], field: string): number {
  let n = 0;
  for (const a of answers) {
    const v = a.result[field];
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) n += v;
  }
  return n;
}

/** Channel order: by UTF-16 code units, the same on every node (cursors compare with `>`). */
function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

