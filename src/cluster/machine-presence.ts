/**
 * The primary's presence index on the embedded broker (`herald serve --workers N`): every worker's members, kept per
 * worker (so a worker that dies takes exactly its own members with it) and summed per channel (so the machine's
 * client and user counts are O(1), as on one node). Workers mirror their members here over the link
 * (src/cluster/worker-presence.ts); the index never decides membership, it only holds what the workers say.
 *
 * Memory: one Map entry per (client, channel) with presence on across the machine, plus one counter per (user,
 * channel) per worker and per machine: the same order as the workers' own LocalPresence.
 */
import type { PresenceMember, PresenceStats } from '../presence/member.js';

interface Counts {
  clients: number;
  /** user → clients of the user (named users only). */
  readonly users: Map<string, number>;
  anonymous: number;
}

interface WorkerChannel extends Counts {
  readonly members: Map<string, PresenceMember>;
}

/** A member a worker held when it went away; `userEdge`: the last of its user's clients on that worker. */
export interface DroppedMember {
  readonly channel: string;
  readonly member: PresenceMember;
  readonly userEdge: boolean;
}

/** What a worker asked about: the other workers' members, and the whole machine's counts. */
export interface MachineAnswer {
  readonly members: PresenceMember[];
  /** Clients in the channel on the other workers. */
  readonly clients: number;
  readonly total: PresenceStats;
}

export class MachinePresence<Owner> {
  private readonly owners = new Map<Owner, Map<string, WorkerChannel>>();
  private readonly machine = new Map<string, Counts>();

  add(owner: Owner, channel: string, member: PresenceMember): void {
    let channels = this.owners.get(owner);
    if (!channels) this.owners.set(owner, (channels = new Map()));
    let own = channels.get(channel);
    if (!own) channels.set(channel, (own = { members: new Map(), users: new Map(), anonymous: 0, clients: 0 }));
    if (own.members.has(member.client)) return;
    own.members.set(member.client, member);
    let all = this.machine.get(channel);
    if (!all) this.machine.set(channel, (all = { users: new Map(), anonymous: 0, clients: 0 }));
    count(own, member.user, 1);
    count(all, member.user, 1);
  }

  /** Returns whether the member was the last of its user's clients on that worker. */
  remove(owner: Owner, channel: string, client: string): boolean {
    const channels = this.owners.get(owner);
    const own = channels?.get(channel);
    const member = own?.members.get(client);
    if (!channels || !own || !member) return false;
    own.members.delete(client);
    const edge = count(own, member.user, -1);
    if (own.members.size === 0) channels.delete(channel);
    const all = this.machine.get(channel);
    if (all) {
      count(all, member.user, -1);
      if (all.clients <= 0) this.machine.delete(channel);
    }
    return edge;
  }

  /** A worker is gone: its members leave every channel. Returns them, for the leave events. */
  drop(owner: Owner): DroppedMember[] {
    const channels = this.owners.get(owner);
    if (!channels) return [];
    const out: DroppedMember[] = [];
    for (const [channel, own] of [...channels]) {
      for (const client of [...own.members.keys()]) {
        const member = own.members.get(client) as PresenceMember;
        out.push({ channel, member, userEdge: this.remove(owner, channel, client) });
      }
    }
    this.owners.delete(owner);
    return out;
  }

  /** The channel's members on every worker but `asker` (at most `limit`), and the machine's counts. */
  read(asker: Owner, channel: string, withMembers: boolean, limit: number): MachineAnswer {
    const all = this.machine.get(channel);
    if (!all) return { members: [], clients: 0, total: { clients: 0, users: 0 } };
    const mine = this.owners.get(asker)?.get(channel)?.members.size ?? 0;
    const members: PresenceMember[] = [];
    if (withMembers) {
      for (const [owner, channels] of this.owners) {
        if (owner === asker) continue;
        for (const m of channels.get(channel)?.members.values() ?? []) {
          if (members.length >= limit) break;
          members.push(m);
        }
      }
    }
    return { members, clients: all.clients - mine, total: { clients: all.clients, users: all.users.size + all.anonymous } };
  }

  /** (client, channel) members held, machine-wide. */
  memberCount(): number {
    let n = 0;
    for (const c of this.machine.values()) n += c.clients;
    return n;
  }
}

/** Count a client of `user` in or out; returns true when it was its user's first (in) or last (out) client. */
function count(c: Counts, user: string, by: 1 | -1): boolean {
  c.clients += by;
  if (user === '') {
    c.anonymous += by;
    return true;
  }
  const n = (c.users.get(user) ?? 0) + by;
  if (n <= 0) c.users.delete(user);
  else c.users.set(user, n);
  return by === 1 ? n === 1 : n <= 0;
}
