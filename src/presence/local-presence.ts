/**
 * This node's members, per channel: who is subscribed here. The source of truth for the node's own part of presence
 * (the Redis store mirrors it; a resync rewrites Redis from it).
 *
 * Cost: one Map entry per (client, channel) with presence on, and one per (user, channel) for the distinct-user count,
 * so a channel's client count and user count are O(1) (`Map.size`). Nothing is done per message. Memory is bounded by
 * the node's sessions × `maxChannelsPerConnection` (docs/presence.md gives a measured figure per member).
 */
import type { PresenceMember, PresenceStats } from './member.js';

interface Entry {
  readonly member: PresenceMember;
  /** Labels the client holds the channel under (a sealed key and the name count once). */
  refs: number;
}

interface ChannelMembers {
  readonly clients: Map<string, Entry>;
  /** user → clients of that user here; anonymous clients are not in it (each is its own user). */
  readonly users: Map<string, number>;
  anonymous: number;
}

export class LocalPresence {
  private readonly channels = new Map<string, ChannelMembers>();
  private total = 0;

  /**
   * Add a member. Returns `undefined` when the client was there already (another label), else whether its user had
   * no other client here (`userEdge`).
   */
  add(channel: string, member: PresenceMember): { userEdge: boolean } | undefined {
    let c = this.channels.get(channel);
    if (!c) this.channels.set(channel, (c = { clients: new Map(), users: new Map(), anonymous: 0 }));
    const existing = c.clients.get(member.client);
    if (existing) {
      existing.refs++;
      return undefined;
    }
    c.clients.set(member.client, { member, refs: 1 });
    this.total++;
    if (member.user === '') {
      c.anonymous++;
      return { userEdge: true };
    }
    const n = c.users.get(member.user) ?? 0;
    c.users.set(member.user, n + 1);
    return { userEdge: n === 0 };
  }

  /** Remove one label's hold; returns the member when it was the last (the client left the channel). */
  remove(channel: string, client: string): { member: PresenceMember; userEdge: boolean } | undefined {
    const c = this.channels.get(channel);
    const entry = c?.clients.get(client);
    if (!c || !entry) return undefined;
    if (--entry.refs > 0) return undefined;
    c.clients.delete(client);
    this.total--;
    let userEdge = true;
    if (entry.member.user === '') c.anonymous--;
    else {
      const n = (c.users.get(entry.member.user) ?? 1) - 1;
      if (n <= 0) c.users.delete(entry.member.user);
      else {
        c.users.set(entry.member.user, n);
        userEdge = false;
      }
    }
    if (c.clients.size === 0) this.channels.delete(channel);
    return { member: entry.member, userEdge };
  }

  has(channel: string, client: string): boolean {
    return this.channels.get(channel)?.clients.has(client) ?? false;
  }

  /** The channel's members here, at most `limit`. */
  members(channel: string, limit = Infinity): PresenceMember[] {
    const out: PresenceMember[] = [];
    const c = this.channels.get(channel);
    if (!c) return out;
    for (const e of c.clients.values()) {
      if (out.length >= limit) break;
      out.push(e.member);
    }
    return out;
  }

  /** O(1). */
  stats(channel: string): PresenceStats {
    const c = this.channels.get(channel);
    return c ? { clients: c.clients.size, users: c.users.size + c.anonymous } : { clients: 0, users: 0 };
  }

  /** Named users here (anonymous members left out), for a cluster-wide union. */
  users(channel: string): IterableIterator<string> {
    return (this.channels.get(channel)?.users ?? new Map<string, number>()).keys();
  }

  anonymousCount(channel: string): number {
    return this.channels.get(channel)?.anonymous ?? 0;
  }

  /** Channels with at least one member here. */
  channelNames(): IterableIterator<string> {
    return this.channels.keys();
  }

  channelCount(): number {
    return this.channels.size;
  }

  /** (client, channel) members on this node. */
  memberCount(): number {
    return this.total;
  }
}
