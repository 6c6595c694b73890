/**
 * The dashboard's channel view: who subscribes to a channel on every node, its latest history, its presence.
 * Subscribers on other nodes are asked for over the control path (`channel.query`, answered by `channel.reply`
 * to the asker); the answer waits for every node sharing stats, at most QUERY_WAIT_MS, and says which did not answer.
 */
import { randomBytes } from 'node:crypto';
import { hasHistory, type Publication } from '../../broker/broker.js';
import type { ControlMessage } from '../../core/control-path.js';
import type { ClusterStats } from '../../core/node-stats.js';
import type { HeraldNode } from '../../core/node.js';
import { HeraldError } from '../../errors.js';
import { formatMessageId } from '../../protocol/message-id.js';
import { memberObject } from '../../presence/member.js';
import type { Presence } from '../../presence/presence.js';

export const DISCONNECT_MESSAGE = 'disconnect';
const QUERY_MESSAGE = 'channel.query';
const REPLY_MESSAGE = 'channel.reply';
/** Subscribers listed per node; the total is always given. */
export const MAX_LISTED_SUBSCRIBERS = 100;
/** History messages shown, the latest. */
export const HISTORY_SHOWN = 20;
const QUERY_WAIT_MS = 500;
const MAX_QUERIES_IN_FLIGHT = 16;

export interface SubscriberInfo {
  readonly client: string;
  readonly node: string;
  readonly transport: string;
  readonly address: string;
  /** When the client connected, ms since the epoch. */
  readonly since: number;
}

export interface NodeSubscribers {
  readonly node: string;
  readonly total: number;
  readonly subscribers: readonly SubscriberInfo[];
}

export interface ChannelView {
  readonly channel: string;
  readonly nodes: readonly NodeSubscribers[];
  /** Nodes that share stats but did not answer in time. */
  readonly unanswered: readonly string[];
  readonly history:
    | { readonly enabled: false }
    | { readonly enabled: true; readonly position: string; readonly messages: readonly { id: string | null; data: string; ts: number }[] };
  /** The channel's presence where it keeps one (docs/presence.md): counts, and the first members. */
  readonly presence:
    | { readonly enabled: false }
    | {
        readonly enabled: true;
        readonly clients: number;
        readonly users: number;
        readonly members: readonly Record<string, unknown>[];
        readonly truncated: boolean;
      }
    | { readonly enabled: true; readonly error: string };
}

interface PendingQuery {
  readonly waitingFor: Set<string>;
  readonly replies: NodeSubscribers[];
  readonly done: () => void;
}

export class ChannelInspector {
  private readonly pending = new Map<string, PendingQuery>();

  constructor(
    private readonly node: HeraldNode,
    private readonly stats: ClusterStats,
    private readonly presenceOf?: Presence,
  ) {
    node.control.on(QUERY_MESSAGE, (m) => this.answer(m));
    node.control.on(REPLY_MESSAGE, (m) => this.reply(m));
  }

  async inspect(channel: string): Promise<ChannelView> {
    const [remote, history, presence] = await Promise.all([this.askPeers(channel), this.history(channel), this.presence(channel)]);
    return {
      channel,
      nodes: [this.local(channel), ...remote.replies],
      unanswered: remote.unanswered,
      history,
      presence,
    };
  }

  private async presence(channel: string): Promise<ChannelView['presence']> {
    const p = this.presenceOf;
    if (!p?.enabled(channel)) return { enabled: false };
    try {
      const [stats, listed] = await Promise.all([p.stats(channel), p.members(channel, MAX_LISTED_SUBSCRIBERS)]);
      return { enabled: true, ...stats, members: listed.members.map(memberObject), truncated: listed.truncated };
    } catch {
      return { enabled: true, error: 'presence cannot be read now (broker unreachable)' };
    }
  }

  /** This node's subscribers of `channel`. */
  local(channel: string): NodeSubscribers {
    const sessions = this.node.sessionsOn(channel);
    return {
      node: this.node.nodeId,
      total: sessions.length,
      subscribers: sessions.slice(0, MAX_LISTED_SUBSCRIBERS).map((s) => ({
        client: s.id,
        node: this.node.nodeId,
        transport: s.options.transport,
        address: s.options.remoteAddress,
        since: s.openedAt,
      })),
    };
  }

  private async askPeers(channel: string): Promise<{ replies: NodeSubscribers[]; unanswered: string[] }> {
    const peers = this.stats.nodes().map((s) => s.node).filter((id) => id !== this.node.nodeId);
    if (peers.length === 0) return { replies: [], unanswered: [] };
    if (this.pending.size >= MAX_QUERIES_IN_FLIGHT) throw new HeraldError('too_many_requests', 'too many channel views at once');
    const req = randomBytes(8).toString('hex');
    let timer: NodeJS.Timeout | undefined;
    const query: PendingQuery = { waitingFor: new Set(peers), replies: [], done: () => undefined };
    const finished = new Promise<void>((resolve) => {
      Object.assign(query, { done: resolve });
      timer = setTimeout(resolve, QUERY_WAIT_MS);
    });
    this.pending.set(req, query);
    try {
      await this.node.control.send(QUERY_MESSAGE, { req, channel });
      await finished;
    } catch {
      // The broker is down: only this node can be shown.
    } finally {
      clearTimeout(timer);
      this.pending.delete(req);
    }
    return { replies: query.replies, unanswered: [...query.waitingFor] };
  }

  private answer(m: ControlMessage): void {
    const { req, channel } = m.body;
    if (typeof req !== 'string' || req.length > 32 || typeof channel !== 'string' || channel.length > 1024) return;
    this.node.control.send(REPLY_MESSAGE, { req, ...this.local(channel) }, m.from).catch(() => undefined);
  }

  private reply(m: ControlMessage): void {
    const { req, node, total, subscribers } = m.body;
    const query = typeof req === 'string' ? this.pending.get(req) : undefined;
    if (!query || node !== m.from || !query.waitingFor.has(m.from) || typeof total !== 'number' || !Array.isArray(subscribers)) return;
    const listed: SubscriberInfo[] = [];
    for (const s of (subscribers as unknown[]).slice(0, MAX_LISTED_SUBSCRIBERS)) {
      if (typeof s !== 'object' || s === null) continue;
      const { client, transport, address, since } = s as Record<string, unknown>;
      if (typeof client !== 'string' || typeof transport !== 'string' || typeof address !== 'string' || typeof since !== 'number') continue;
      listed.push({ client: client.slice(0, 64), node: m.from, transport: transport.slice(0, 32), address: address.slice(0, 64), since });
    }
    query.waitingFor.delete(m.from);
    query.replies.push({ node: m.from, total, subscribers: listed });
    if (query.waitingFor.size === 0) query.done();
  }

  private async history(channel: string): Promise<ChannelView['history']> {
    const broker = this.node.broker;
    const policy = this.node.policy.history(channel);
    if (!policy || !hasHistory(broker)) return { enabled: false };
    let head;
    try {
      head = await broker.history(channel, { limit: 1, policy });
    } catch (err) {
      throw new HeraldError('unavailable', 'history cannot be read now', { cause: err });
    }
    const { position } = head;
    const from = Math.max(0, position.offset - HISTORY_SHOWN);
    const read = position.offset === 0 ? head : await broker.history(channel, { since: { epoch: position.epoch, offset: from }, limit: HISTORY_SHOWN, policy });
    return {
      enabled: true,
      position: formatMessageId(position),
      messages: read.publications.map((p: Publication) => ({ id: p.id ?? null, data: p.data, ts: p.ts })),
    };
  }
}
