/**
 * Herald's frames, as JSON arrays (besides these: `["join"|"leave", channel, member]` and `["unsubscribed", channel]`) (docs/protocol.md): the same array is an NDJSON line of `/sub`, the data of an SSE
 * event, and an item of a long-poll batch.
 *   ["message", channel, data, id?]         data: a string, or a JSON value (the SDK asks with jsonData=1)
 *   ["reload", channel, why, id]              messages of the channel were lost: the application must reload;
 *                                             `id` (may be empty) is the channel's position from now on
 *   ["position", channel, id]                 the channel's position moved without a message
 *   ["disconnect", reason, code, reconnect]   the last frame of a stream
 */
import type { ServerDisconnect, TransportHandlers } from './transports/transport.js';
import type { PresenceMember } from './types.js';

export type Frame =
  | { readonly kind: 'message'; readonly channel: string; readonly data: unknown; readonly id: string | undefined }
  | { readonly kind: 'reload'; readonly channel: string; readonly why: string; readonly id: string | undefined }
  | { readonly kind: 'position'; readonly channel: string; readonly id: string }
  | { readonly kind: 'disconnect'; readonly info: ServerDisconnect }
  | { readonly kind: 'join' | 'leave'; readonly channel: string; readonly member: PresenceMember }
  | { readonly kind: 'unsubscribed'; readonly channel: string };

/** Parse one frame; undefined when it is not one the SDK understands (newer servers may add kinds). */
export function parseFrame(text: string): Frame | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  return frameOf(v);
}

export function frameOf(v: unknown): Frame | undefined {
  if (!Array.isArray(v)) return undefined;
  const [kind, a, b, c] = v as unknown[];
  if (kind === 'message' && typeof a === 'string' && b !== undefined) {
    return { kind, channel: a, data: b, id: typeof c === 'string' ? c : undefined };
  }
  if (kind === 'reload' && typeof a === 'string') {
    return { kind, channel: a, why: typeof b === 'string' ? b : 'missed', id: typeof c === 'string' && c !== '' ? c : undefined };
  }
  if (kind === 'position' && typeof a === 'string' && typeof b === 'string' && b !== '') return { kind, channel: a, id: b };
  if ((kind === 'join' || kind === 'leave') && typeof a === 'string') {
    const member = memberOf(b);
    return member ? { kind, channel: a, member } : undefined;
  }
  if (kind === 'unsubscribed' && typeof a === 'string') return { kind, channel: a };
  if (kind === 'disconnect' && typeof a === 'string') {
    return {
      kind,
      info: { reason: a, code: typeof b === 'number' ? b : 0, reconnect: typeof c === 'boolean' ? c : true },
    };
  }
  return undefined;
}

/** A presence member as the server sends it; undefined when it lacks the fields every member has. */
export function memberOf(v: unknown): PresenceMember | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const { client, user, connectedAt, info } = v as Record<string, unknown>;
  if (typeof client !== 'string' || typeof user !== 'string' || typeof connectedAt !== 'number') return undefined;
  return info === undefined ? { client, user, connectedAt } : { client, user, connectedAt, info };
}

/** A query string from repeated parameters, skipping undefined values. */
export function query(params: readonly (readonly [string, string | undefined])[]): string {
  const parts: string[] = [];
  for (const [k, v] of params) if (v !== undefined) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}

/** Asks /sse and /poll for JSON data as values, as /ws always gives it (docs/protocol.md "JSON data"). */
export const JSON_DATA_PARAM: [string, string] = ['jsonData', '1'];

/** The credentials every subscribe endpoint takes (INTERFACE.md "Subscribing"). */
export function credentialParams(req: {
  channels: readonly string[];
  keys: readonly string[];
  token: string | undefined;
  joinLeave?: boolean;
}): [string, string | undefined][] {
  return [
    ...req.channels.map((c): [string, string] => ['channel', c]),
    ...req.keys.map((k): [string, string] => ['key', k]),
    ['token', req.token],
    ['joinLeave', req.joinLeave ? '1' : undefined],
  ];
}

/**
 * The labels of a connection in the order its cursor lists them: `key=` parameters first, then `channel=`
 * (docs/protocol.md, "Message ids and resume").
 */
export function cursorLabels(req: { keys: readonly string[]; channels: readonly string[] }): string[] {
  return [...req.keys, ...req.channels];
}

/** A connection's cursor: each label's last id, comma-separated, empty where none is known; undefined if none is. */
export function cursorOf(labels: readonly string[], since: ReadonlyMap<string, string>): string | undefined {
  if (!labels.some((l) => since.has(l))) return undefined;
  return labels.map((l) => since.get(l) ?? '').join(',');
}

/** A cursor split back into label → id, for the labels it names; undefined when it does not fit them. */
export function positionsOf(labels: readonly string[], cursor: string): [string, string][] | undefined {
  const parts = cursor.split(',');
  if (parts.length !== labels.length) return undefined;
  const out: [string, string][] = [];
  parts.forEach((id, i) => {
    const label = labels[i];
    if (label !== undefined && id !== '') out.push([label, id]);
  });
  return out;
}

/** Deliver one array frame to a transport's handlers; true when it was the last (a disconnect). */
export function dispatchFrame(frame: Frame, h: TransportHandlers): boolean {
  switch (frame.kind) {
    case 'message':
      h.message(frame.channel, frame.data, frame.id);
      return false;
    case 'reload':
      h.missed([frame.channel], frame.why, frame.id);
      return false;
    case 'position':
      h.position(frame.channel, frame.id);
      return false;
    case 'join':
    case 'leave':
      h.presence(frame.kind, frame.channel, frame.member);
      return false;
    case 'unsubscribed':
      h.unsubscribed(frame.channel);
      return false;
    case 'disconnect':
      if (frame.info.reason === MISSED_REASON) h.missed([], frame.info.reason, undefined);
      h.disconnect(frame.info);
      return true;
  }
}

/** Disconnect reasons whose name says "your history position is gone". */
export const MISSED_REASON = 'insufficient_state';
