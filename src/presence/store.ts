/**
 * Where a cluster's presence lives beyond this node. The node's own members are always in LocalPresence; a store
 * mirrors them where the other nodes can read them, and reads theirs.
 *
 * - LocalOnlyStore: one node (the embedded broker): nothing to mirror, nothing to read.
 * - RedisPresenceStore (./redis-store.ts): per-node entries on Redis with a heartbeat and a TTL.
 * - WorkerPresenceStore (src/cluster/worker-presence.ts): `--workers N` on the embedded broker; each worker is a
 *   node and mirrors its members to the primary over the worker link (with Redis, each worker uses the Redis store).
 *
 * Writes are fire and forget: a write that fails marks the channel for a full rewrite at the next heartbeat, from
 * the node's own members (the truth). Reads reject with a HeraldError (503) when the store cannot be read.
 */
import type { PresenceMember, PresenceStats } from './member.js';
import type { LocalPresence } from './local-presence.js';

/** Other nodes' part of a channel's presence. */
export interface RemotePresence {
  readonly members: PresenceMember[];
  readonly clients: number;
  /** Named users on other nodes (for the union with this node's); anonymous members counted apart. */
  readonly users: ReadonlySet<string>;
  readonly anonymous: number;
  /**
   * The whole cluster's counts, this node's members included, when the store keeps them itself (the primary's
   * index on `--workers`): then `users` and `anonymous` are left empty and counts cost O(1).
   */
  readonly total?: PresenceStats;
}

/**
 * Members of another node that left without telling (its process died), reported by the store. `report`: this node
 * is the one (of all that hear it) to send the leave's webhooks.
 */
export type RemoteLeave = (node: string, channel: string, member: PresenceMember, userEdge: boolean, report: boolean) => void;

export interface PresenceStore {
  /** This node's member joined (`local` already holds it). */
  added(channel: string, member: PresenceMember): void;
  /** This node's member left (`local` no longer holds it). */
  removed(channel: string, member: PresenceMember): void;
  /**
   * The other nodes' members of `channel` (`withMembers`: their list too, at most `limit`; else counts only, in
   * O(nodes) where the store allows it).
   */
  remote(channel: string, withMembers: boolean, limit: number): Promise<RemotePresence>;
  /**
   * Stores that learn of a dead node's members at once (the worker link) report them, so that subscribers are told
   * of their leaves. A store that only lets them expire (Redis) has no such events.
   */
  onRemoteLeave?(listener: RemoteLeave): void;
  /** Called once a second by the node's ticker (heartbeats, rewrites). */
  tick(now: number): void;
  close(): Promise<void>;
}

const NONE: RemotePresence = Object.freeze({ members: [], clients: 0, users: new Set<string>(), anonymous: 0 });

/** One node alone: the local members are all there is. */
export class LocalOnlyStore implements PresenceStore {
  added(): void {}
  removed(): void {}
  remote(): Promise<RemotePresence> {
    return Promise.resolve(NONE);
  }
  tick(): void {}
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** What a store is built with. */
export interface StoreContext {
  readonly nodeId: string;
  readonly local: LocalPresence;
  readonly heartbeatMs: number;
  readonly ttlMs: number;
  readonly maxInfoBytes: number;
}
