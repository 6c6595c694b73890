/**
 * Pusher presence channels on Herald's presence module (src/presence/): a `presence-` subscription adds a member
 * (client = the session, user = channel_data's user_id, info = its user_info) that every node sees, and Pusher
 * clients of the channel on every node get `pusher_internal:member_added` / `member_removed` when a *user* appears
 * or goes (a user with two connections is one member, as on Pusher).
 *
 * Joins and leaves come from Presence.onEvent, on this node and from the others. Its `userEdge` says whether the
 * user had no other client on the node the event happened on; for a user with clients on several nodes the members
 * of the channel are read (the store) before member_added or member_removed is sent, so a user seen on another node
 * is not added twice nor removed while still there.
 */
import type { HeraldNode } from '../core/node.js';
import { Session } from '../core/session.js';
import type { PresenceEvent, PresenceMember } from '../presence/member.js';
import type { Presence } from '../presence/presence.js';
import type { Logger } from '../util/log.js';
import { channelKind, pusherCodec, pusherFrame, stringData } from './protocol.js';

/** What presence answers a Pusher subscription with: `{"ids", "hash", "count"}`. */
export interface PresenceSnapshot {
  readonly ids: string[];
  readonly hash: Record<string, unknown>;
  readonly count: number;
}

export interface PresenceHooks {
  memberAdded(channel: string, userId: string): void;
  memberRemoved(channel: string, userId: string): void;
}

export class PusherPresence {
  /** `<session id>\0<channel>` → the user that subscription joined as (client events on presence carry it). */
  private readonly users = new Map<string, string>();

  constructor(
    private readonly node: HeraldNode,
    private readonly presence: Presence,
    private readonly hooks: PresenceHooks,
    private readonly log: Logger,
  ) {
    node.observe({
      unsubscribed: (session, target) => {
        if (session.codec !== pusherCodec || channelKind(target.label) !== 'presence') return;
        if (this.users.delete(key(session, target.channel))) presence.remove(target.channel, session.id);
      },
    });
    presence.onEvent((event) => {
      this.onPresenceEvent(event).catch((err: unknown) => log.warn('pusher presence event failed', { err: String(err) }));
    });
  }

  /** A Pusher session joins a presence channel (its subscription is live). */
  join(session: Session, channel: string, userId: string, infoJson: string | undefined): void {
    this.users.set(key(session, channel), userId);
    const member: PresenceMember = { client: session.id, user: userId, connectedAt: session.openedAt, ...(infoJson !== undefined ? { info: infoJson } : {}) };
    this.presence.add(channel, member);
  }

  userOf(session: Session, channel: string): string | undefined {
    return this.users.get(key(session, channel));
  }

  /** Distinct users in the channel on every node. */
  async userCount(channel: string): Promise<number> {
    return (await this.presence.stats(channel)).users;
  }

  /** The members as pusher-js expects them in subscription_succeeded: distinct users with their info. */
  async snapshot(channel: string): Promise<PresenceSnapshot> {
    const { members } = await this.presence.members(channel);
    const hash: Record<string, unknown> = {};
    const ids: string[] = [];
    for (const m of members) {
      if (m.user === '' || Object.prototype.hasOwnProperty.call(hash, m.user)) continue;
      ids.push(m.user);
      hash[m.user] = m.info === undefined ? null : (JSON.parse(m.info) as unknown);
    }
    return { ids, hash, count: ids.length };
  }

  private async onPresenceEvent(event: PresenceEvent): Promise<void> {
    const { member, channel, kind } = event;
    if (member.user === '' || !event.userEdge) return;
    // The user's clients on every node now: a join is news when this is the only one, a leave when none is left.
    const { members, truncated } = await this.presence.members(channel);
    const clients = members.filter((m) => m.user === member.user).length;
    if (!truncated && (kind === 'join' ? clients > 1 : clients > 0)) return;
    // Webhooks once: from the node that holds the client, or for a dead worker's member the one told to report it.
    if (event.node === this.node.nodeId || event.reporter === this.node.nodeId) {
      if (kind === 'join') this.hooks.memberAdded(channel, member.user);
      else this.hooks.memberRemoved(channel, member.user);
    }
    const event_ = kind === 'join' ? 'pusher_internal:member_added' : 'pusher_internal:member_removed';
    const data =
      kind === 'join'
        ? stringData({ user_id: member.user, user_info: member.info === undefined ? null : (JSON.parse(member.info) as unknown) })
        : stringData({ user_id: member.user });
    this.node.hub.forEachGroup(channel, (label, group) => {
      let frame: Buffer | undefined;
      for (const m of group) {
        if (!(m instanceof Session) || m.codec !== pusherCodec || m.isEnded || m.id === member.client) continue;
        // The joining user's own other connections know it is there.
        if (this.users.get(key(m, channel)) === member.user) continue;
        frame ??= pusherFrame(event_, label, data);
        m.write(frame);
      }
    });
  }
}

function key(session: Session, channel: string): string {
  return `${session.id}\u0000${channel}`;
}
