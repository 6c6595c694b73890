/**
 * Presence: who is in a channel (docs/presence.md). Built on the node, never inside its hot path: it observes
 * subscriptions going live and ending (NodeObserver), keeps this node's members (LocalPresence), mirrors them to a
 * store the other nodes read (PresenceStore), and tells subscribers of joins and leaves.
 *
 * Nothing here runs per message. Per join or leave: one Map update, one store write, and, where anybody listens,
 * one frame per (wire format, channel label) group on this node and one batched control message to the others.
 *
 * Other layers (the Pusher protocol) use the same module: `add`/`remove` for members that are not Herald sessions,
 * `members`/`stats` for answers, `onEvent` for joins and leaves on any node.
 */
import type { ChannelPolicy } from '../core/channel-policy.js';
import type { ControlMessage } from '../core/control-path.js';
import type { HeraldNode } from '../core/node.js';
import { Session, type SessionTarget } from '../core/session.js';
import type { Logger } from '../util/log.js';
import { LocalPresence } from './local-presence.js';
import {
  checkMember,
  memberJson,
  validChannel,
  type PresenceEvent,
  type PresenceEventKind,
  type PresenceMember,
  type PresenceStats,
} from './member.js';
import type { PresenceStore } from './store.js';

export const PRESENCE_MESSAGE = 'presence';
/** A batch of events to the other nodes is sent before it grows past this (the control path takes 64 KiB). */
const MAX_BATCH_BYTES = 48 * 1024;
/** Events per incoming control message read at most. */
const MAX_EVENTS_PER_MESSAGE = 2000;
/** Members listed by `members` when the caller sets no limit. */
export const DEFAULT_MEMBER_LIMIT = 10_000;

export type PresenceListener = (event: PresenceEvent) => void;

export interface PresenceOptions {
  readonly maxInfoBytes: number;
  readonly log: Logger;
}

export interface PresenceAnswer {
  readonly members: PresenceMember[];
  /** More members exist than `limit` let through. */
  readonly truncated: boolean;
}

export class Presence {
  readonly local = new LocalPresence();
  readonly store: PresenceStore;
  private readonly listeners = new Set<PresenceListener>();
  private batch: string[] = [];
  private batchBytes = 0;
  private flushScheduled = false;
  /** Join/leave frames written to local subscribers (for /metrics). */
  framesSent = 0;
  /**
   * Per channel, this node's subscriptions whose session asked for join and leave events: a channel where nobody
   * asked (and the namespace does not push them) costs no walk over its subscribers per join.
   */
  private readonly askers = new Map<string, Set<Session>>();

  constructor(
    private readonly node: HeraldNode,
    private readonly policy: ChannelPolicy,
    /** The store for this node's members (a workers layer can pass its own: each worker is then a node). */
    storeFor: (local: LocalPresence) => PresenceStore,
    private readonly options: PresenceOptions,
  ) {
    this.store = storeFor(this.local);
    const store = this.store;
    store.onRemoteLeave?.((from, channel, member, userEdge, report) => {
      if (!this.policy.presence(channel)) return;
      this.deliver({ kind: 'leave', channel, member, node: from, userEdge, ...(report ? { reporter: this.node.nodeId } : {}) });
    });
    node.observe({
      subscribed: (session, target) => this.sessionJoined(session, target),
      unsubscribed: (session, target) => this.sessionLeft(session, target),
    });
    node.control.on(PRESENCE_MESSAGE, (m) => this.remoteEvents(m));
    node.onTick((now) => store.tick(now));
    node.beforeStop(() => store.close());
    const registry = node.metrics.registry;
    registry.gauge('herald_presence_members', 'Presence members (client, channel) held on this node.', () => this.local.memberCount());
    registry.gauge('herald_presence_channels', 'Channels with presence members on this node.', () => this.local.channelCount());
    registry.gauge('herald_presence_frames_total', 'Join and leave frames written to subscribers on this node.', () => this.framesSent, 'counter');
  }

  /** Does `channel` keep presence? */
  enabled(channel: string): boolean {
    return this.policy.presence(channel);
  }

  /** Be told of every join and leave, on this node and on the others. Returns the function that stops it. */
  onEvent(listener: PresenceListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Add a member held by this node (a Herald session does so itself; other layers call this). */
  add(channel: string, member: PresenceMember): void {
    const added = this.local.add(channel, member);
    if (!added) return;
    this.store.added(channel, member);
    this.announce({ kind: 'join', channel, member, node: this.node.nodeId, userEdge: added.userEdge });
  }

  /** Remove one hold of a member held by this node; the leave is announced when it was the last. */
  remove(channel: string, client: string): void {
    const removed = this.local.remove(channel, client);
    if (!removed) return;
    this.store.removed(channel, removed.member);
    this.announce({ kind: 'leave', channel, member: removed.member, node: this.node.nodeId, userEdge: removed.userEdge });
  }

  /** The channel's members on every node, this node's first, at most `limit`. Rejects 503 when the store cannot be read. */
  async members(channel: string, limit = DEFAULT_MEMBER_LIMIT): Promise<PresenceAnswer> {
    const own = this.local.members(channel, limit);
    const remote = await this.store.remote(channel, true, Math.max(0, limit - own.length));
    const total = this.local.stats(channel).clients + remote.clients;
    const members = own.concat(remote.members);
    return { members, truncated: total > members.length };
  }

  /** Clients and distinct users of the channel on every node: O(1) here, O(nodes) for the others (plus their users). */
  async stats(channel: string): Promise<PresenceStats> {
    const own = this.local.stats(channel);
    const remote = await this.store.remote(channel, false, 0);
    if (remote.total) return remote.total;
    if (remote.clients === 0) return own;
    const users = new Set(remote.users);
    for (const u of this.local.users(channel)) users.add(u);
    return { clients: own.clients + remote.clients, users: users.size + remote.anonymous + this.local.anonymousCount(channel) };
  }

  // --- sessions ----------------------------------------------------------------------------------------------------

  private sessionJoined(session: Session, target: SessionTarget): void {
    if (session.isEnded || !this.policy.presence(target.channel)) return;
    if (session.joinLeave) {
      let set = this.askers.get(target.channel);
      if (!set) this.askers.set(target.channel, (set = new Set()));
      set.add(session);
    }
    // A poll is one request long: its client would join and leave at every poll (docs/presence.md).
    if (session.options.transport === 'poll' || session.options.ownPresence) return;
    this.add(target.channel, this.memberOf(session));
  }

  private sessionLeft(session: Session, target: SessionTarget): void {
    const set = session.joinLeave ? this.askers.get(target.channel) : undefined;
    // (A session holding the channel under a second label still asks: it leaves the set with its last label.)
    if (set && (session.isEnded || !session.targets.some((t) => t !== target && t.channel === target.channel))) {
      set.delete(session);
      if (set.size === 0) this.askers.delete(target.channel);
    }
    if (session.options.transport === 'poll' || session.options.ownPresence) return;
    this.remove(target.channel, session.id);
  }

  private memberOf(session: Session): PresenceMember {
    const { user, info } = session.options;
    const member = { client: session.id, user: (user ?? '').slice(0, 255), connectedAt: session.openedAt };
    return info !== undefined && Buffer.byteLength(info) <= this.options.maxInfoBytes ? { ...member, info } : member;
  }

  // --- events ------------------------------------------------------------------------------------------------------

  private announce(event: PresenceEvent): void {
    this.deliver(event);
    this.queueForPeers(event);
  }

  /** Join/leave frames to this node's subscribers of the channel that want them (never to the member itself). */
  private deliver(event: PresenceEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        this.options.log.warn('presence listener failed', { err: String(err) });
      }
    }
    const { channel, member, kind } = event;
    const everyone = this.policy.joinLeave(channel);
    if (!everyone && !this.askers.has(channel)) return;
    if (this.node.hub.memberCount(channel) === 0) return;
    const json = memberJson(member);
    this.node.hub.forEachGroup(channel, (label, members) => {
      let frame: Buffer | undefined;
      for (const m of members) {
        if (!(m instanceof Session) || m.isEnded || !(everyone || m.joinLeave) || m.id === member.client) continue;
        const encode = m.codec.encodePresence;
        if (!encode) continue;
        frame ??= encode(kind, label, json);
        m.write(frame);
        this.framesSent++;
      }
    });
  }

  private queueForPeers(event: PresenceEvent): void {
    const text = JSON.stringify({ k: event.kind, ch: event.channel, e: event.userEdge, m: JSON.parse(memberJson(event.member)) as unknown });
    if (this.batchBytes + text.length > MAX_BATCH_BYTES) this.flush();
    this.batch.push(text);
    this.batchBytes += text.length + 1;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Events of this turn go to the other nodes in one control message (at most once: nothing is sent while the broker is down). */
  private flush(): void {
    this.flushScheduled = false;
    if (this.batch.length === 0) return;
    const events = this.batch.map((t) => JSON.parse(t) as unknown);
    this.batch = [];
    this.batchBytes = 0;
    this.node.control.send(PRESENCE_MESSAGE, { events }).catch(() => undefined);
  }

  private remoteEvents(message: ControlMessage): void {
    const events = message.body['events'];
    if (!Array.isArray(events)) return;
    for (const raw of events.slice(0, MAX_EVENTS_PER_MESSAGE) as unknown[]) {
      if (typeof raw !== 'object' || raw === null) continue;
      const { k, ch, e, m } = raw as Record<string, unknown>;
      if ((k !== 'join' && k !== 'leave') || !validChannel(ch) || !this.policy.presence(ch)) continue;
      const member = checkMember(m, this.options.maxInfoBytes);
      // A node speaks only for its own clients.
      if (!member || !member.client.startsWith(message.from + '-')) continue;
      this.deliver({ kind: k as PresenceEventKind, channel: ch, member, node: message.from, userEdge: e === true });
    }
  }
}
