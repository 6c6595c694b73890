/**
 * Presence's vocabulary: a member (one client in one channel), the counts of a channel, and the events of members
 * joining and leaving. Plain data: the Redis store, the control path and the server API all carry these.
 */
import { channelProblem } from '../protocol/channel.js';

/** One client in one channel. */
export interface PresenceMember {
  /** The client id: the session id (`<node>-<seq>`), unique across the cluster. */
  readonly client: string;
  /** The user: the token's `sub` (or the auth hook's user); "" for an anonymous client. */
  readonly user: string;
  /** When the client connected (ms since the epoch, to the second). */
  readonly connectedAt: number;
  /** The user's info as JSON text (the token's `info` claim, or the auth hook's), when there is one. */
  readonly info?: string;
}

/** A channel's presence in numbers. */
export interface PresenceStats {
  /** Clients (connections) in the channel. */
  readonly clients: number;
  /** Distinct users among them; anonymous clients count as one user each. */
  readonly users: number;
}

export type PresenceEventKind = 'join' | 'leave';

/** A member joined or left a channel, on some node. */
export interface PresenceEvent {
  readonly kind: PresenceEventKind;
  readonly channel: string;
  readonly member: PresenceMember;
  /** The node that holds the client. */
  readonly node: string;
  /**
   * On that node: the member's user had no other client in the channel (join) or has none left (leave). Per node,
   * not per cluster: a layer that shows users (Pusher's member_added/removed) checks the cluster with `members`.
   * Anonymous members are always their user's only client.
   */
  readonly userEdge: boolean;
  /**
   * A dead node's member (it left without telling): the one node that reports its leave and sends its webhooks
   * (Pusher's member_removed). Absent for a node's own events, which that node reports itself.
   */
  readonly reporter?: string;
}

/** The member as the wire shows it (frames, API answers): `info` parsed back into JSON. */
export function memberJson(m: PresenceMember): string {
  const head = `{"client":${JSON.stringify(m.client)},"user":${JSON.stringify(m.user)},"connectedAt":${m.connectedAt}`;
  return m.info === undefined ? head + '}' : `${head},"info":${m.info}}`;
}

/** The member as a plain object (API answers built with JSON.stringify). */
export function memberObject(m: PresenceMember): Record<string, unknown> {
  const out: Record<string, unknown> = { client: m.client, user: m.user, connectedAt: m.connectedAt };
  if (m.info !== undefined) out['info'] = JSON.parse(m.info) as unknown;
  return out;
}

/** Client ids: a node id, a dash, a base-36 sequence number (core/node.ts). */
const CLIENT_ID = /^[0-9a-z]{1,32}-[0-9a-z]{1,11}$/;
/** Users are at most this long (a token's `sub` can be anything; presence keeps only this much). */
export const MAX_USER_CHARS = 255;

/**
 * A member read from outside this process (Redis, another node's control message), checked field by field;
 * undefined when anything is off. `info` must be JSON text of at most `maxInfoBytes` bytes.
 */
export function checkMember(v: unknown, maxInfoBytes: number): PresenceMember | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const { client, user, connectedAt, info } = v as Record<string, unknown>;
  if (typeof client !== 'string' || !CLIENT_ID.test(client)) return undefined;
  if (typeof user !== 'string' || user.length > MAX_USER_CHARS) return undefined;
  if (typeof connectedAt !== 'number' || !Number.isSafeInteger(connectedAt) || connectedAt < 0) return undefined;
  if (info === undefined) return { client, user, connectedAt };
  const text = JSON.stringify(info);
  if (text === undefined || Buffer.byteLength(text) > maxInfoBytes) return undefined;
  return { client, user, connectedAt, info: text };
}

/** A member's stored form (Redis hash values, control messages): the wire JSON. */
export function parseStoredMember(text: string, maxInfoBytes: number): PresenceMember | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  return checkMember(v, maxInfoBytes);
}

/** A channel name from outside (a control message): valid by the subscription rules. */
export function validChannel(v: unknown): v is string {
  return typeof v === 'string' && channelProblem(v) === undefined;
}
