/** The messages between a chaos run (fleets.ts) and its fleet processes (fleet.ts). */
import type { SparseHistogram } from '../bench/histogram.js';
import type { Kind } from './clients.js';

export type ToFleet =
  | {
      readonly type: 'start';
      /** Node URLs; with more than one, the fleet runs a balancer in front of them (balancer.ts). */
      readonly upstreams: readonly string[];
      readonly kinds: readonly Kind[];
      readonly channels: readonly string[];
      /** Client i of the run, from <= i < to, is kinds[i % kinds.length] on channels[i % channels.length]. */
      readonly from: number;
      readonly to: number;
      readonly localAddress?: string;
    }
  | { readonly type: 'status'; readonly want: Readonly<Record<string, number>> }
  | {
      readonly type: 'report';
      /** Per channel, the acknowledged seqs in publish order. */
      readonly acked: Readonly<Record<string, readonly number[]>>;
      /** Per channel, the first seq acknowledged after the fault ended. */
      readonly firstAfter: Readonly<Record<string, number>>;
      /** Date.now() when the fault ended (Redis back, the node restarted...); undefined: no fault. */
      readonly faultEnd?: number;
    }
  | { readonly type: 'close' };

export interface FleetStatus {
  readonly total: number;
  /** Clients whose stream is up now. */
  readonly live: number;
  /** Clients that delivered at least the seq asked for on their channel. */
  readonly reached: number;
  readonly gaveUp: number;
}

/** One transport's figures in one fleet (merged over fleets by fleets.ts). */
export interface KindReport {
  clients: number;
  delivered: number;
  /** Acknowledged messages neither delivered nor covered by a reload, and the clients that lost any. */
  lost: number;
  lostClients: number;
  /** Acknowledged messages after the last one delivered (the client is behind or stopped), and such clients. */
  behind: number;
  behindClients: number;
  covered: number;
  duplicates: number;
  /** Acknowledged messages delivered after a later acknowledged one. */
  outOfOrder: number;
  /** Unacknowledged publishes (failed at the publisher) delivered after a later message: no order is owed them. */
  unackedLate: number;
  reloads: number;
  gaveUp: number;
  fatal: number;
  /** Stream lost → live again, per loss. */
  resumeMs: number[];
  /**
   * Per client, the delay of the first message acknowledged after the fault's end: from the later of the fault's end
   * and its publication to its delivery; -1: never delivered.
   */
  catchUpMs: number[];
  latencyUs: SparseHistogram | undefined;
  signals: Record<string, number>;
}

export interface FleetReport {
  readonly kinds: Record<string, KindReport>;
}

export type FromFleet =
  | { readonly type: 'started' }
  | ({ readonly type: 'status' } & FleetStatus)
  | { readonly type: 'report'; readonly report: FleetReport };
