/**
 * Presence of a worker on the embedded broker (`herald serve --workers N`): the worker's members are mirrored to the
 * primary's index (machine-presence.ts) over the worker link, and reads ask the primary for the other workers'
 * members and the machine's counts. The worker's own LocalPresence stays the truth for its members.
 *
 * Order: a write is a push on the same link as the worker's later requests and publishes, so the primary has a
 * join before it answers any read or relays any control message the worker sent after it (a join/leave event
 * reaching another worker is always readable there).
 *
 * A worker that dies: its link closes, the primary drops its members at once (no heartbeat, no TTL: a SIGKILLed
 * worker's socket is closed by the kernel) and sends them to the other workers, which tell their subscribers of the
 * leaves. If the primary dies, the workers exit with it.
 */
import { HeraldError } from '../errors.js';
import { checkMember, memberObject, validChannel, type PresenceMember } from '../presence/member.js';
import type { PresenceStore, RemoteLeave, RemotePresence, StoreContext } from '../presence/store.js';
import { Op } from './frames.js';
import type { PrimaryLink } from './primary-link.js';

export class WorkerPresenceStore implements PresenceStore {
  constructor(
    private readonly link: PrimaryLink,
    private readonly ctx: Pick<StoreContext, 'maxInfoBytes'>,
  ) {}

  added(channel: string, member: PresenceMember): void {
    this.link.push(Op.PRESENCE_ADD, channel, memberObject(member));
  }

  removed(channel: string, member: PresenceMember): void {
    this.link.push(Op.PRESENCE_REMOVE, channel, member.client);
  }

  async remote(channel: string, withMembers: boolean, limit: number): Promise<RemotePresence> {
    let raw: unknown;
    try {
      raw = await this.link.request(Op.PRESENCE_READ, channel, withMembers, limit);
    } catch (err) {
      throw new HeraldError('unavailable', 'presence cannot be read now', { cause: err });
    }
    const answer = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    const members: PresenceMember[] = [];
    for (const m of Array.isArray(answer['members']) ? (answer['members'] as unknown[]) : []) {
      const member = checkMember(m, this.ctx.maxInfoBytes);
      if (member) members.push(member);
    }
    const total = (answer['total'] ?? {}) as Record<string, unknown>;
    return {
      members,
      clients: count(answer['clients']),
      users: new Set<string>(),
      anonymous: 0,
      total: { clients: count(total['clients']), users: count(total['users']) },
    };
  }

  onRemoteLeave(listener: RemoteLeave): void {
    this.link.onPresenceGone = (events, report) => {
      if (!Array.isArray(events)) return;
      for (const e of events as unknown[]) {
        if (!Array.isArray(e)) continue;
        const [channel, raw, userEdge] = e as unknown[];
        const member = checkMember(raw, this.ctx.maxInfoBytes);
        if (!validChannel(channel) || !member) continue;
        listener(member.client.slice(0, member.client.indexOf('-')), channel, member, userEdge === true, report);
      }
    };
  }

  tick(): void {}

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function count(v: unknown): number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0;
}
