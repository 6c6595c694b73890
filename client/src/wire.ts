/**
 * Herald's frames, as JSON arrays (docs/protocol.md): the same array is an NDJSON line of `/sub`, the data of an SSE
 * event, and an item of a long-poll batch.
 *   ["message", channel, data, id?]
 *   ["missed", channel]                       messages of the channel were lost: the application must reload
 *   ["disconnect", reason, code, reconnect]   the last frame of a stream
 */
import type { ServerDisconnect } from './transports/transport.js';

export type Frame =
  | { readonly kind: 'message'; readonly channel: string; readonly data: string; readonly id: string | undefined }
  | { readonly kind: 'missed'; readonly channel: string }
  | { readonly kind: 'disconnect'; readonly info: ServerDisconnect };

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
  if (kind === 'message' && typeof a === 'string' && typeof b === 'string') {
    return { kind, channel: a, data: b, id: typeof c === 'string' ? c : undefined };
  }
  if (kind === 'missed' && typeof a === 'string') return { kind, channel: a };
  if (kind === 'disconnect' && typeof a === 'string') {
    return {
      kind,
      info: { reason: a, code: typeof b === 'number' ? b : 0, reconnect: typeof c === 'boolean' ? c : true },
    };
  }
  return undefined;
}

/** A query string from repeated parameters, skipping undefined values. */
export function query(params: readonly (readonly [string, string | undefined])[]): string {
  const parts: string[] = [];
  for (const [k, v] of params) if (v !== undefined) parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}

/** The credentials every subscribe endpoint takes (INTERFACE.md "Subscribing"). */
export function credentialParams(req: {
  channels: readonly string[];
  keys: readonly string[];
  token: string | undefined;
}): [string, string | undefined][] {
  return [
    ...req.channels.map((c): [string, string] => ['channel', c]),
    ...req.keys.map((k): [string, string] => ['key', k]),
    ['token', req.token],
  ];
}

/**
 * A resume cursor for a connection listing `labels` in this order: each channel's last id, comma-separated, empty
 * where none is known (docs/protocol.md, "Resume rules"). Undefined when no position is known at all.
 */
export function cursorOf(labels: readonly string[], since: ReadonlyMap<string, string>): string | undefined {
  if (!labels.some((l) => since.has(l))) return undefined;
  return labels.map((l) => since.get(l) ?? '').join(',');
}

/** Disconnect reasons whose name says "your history position is gone". */
export const MISSED_REASON = 'insufficient_state';
