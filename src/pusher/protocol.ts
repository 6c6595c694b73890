/**
 * The Pusher Channels protocol, version 7 (docs/pusher.md): frames, channel names, socket ids, signatures, and the
 * envelope a Pusher event travels in as a Herald publication. Pure functions, no I/O.
 *
 * One channel is one channel whatever the protocol, so a Pusher event is a plain Herald publication on the same
 * channel. Its data is the envelope `{"event":"<name>","data":<data>}` (plus `"socket_id"` when the sender is
 * excluded, `"user_id"` for a client event on a presence channel). Pusher clients get the envelope unpacked into a
 * Pusher frame; `/sub`, `/sse` and `/ws` subscribers get the envelope as the message's data. A Herald publish whose
 * data is not an envelope reaches Pusher clients as the event `message`, its data text in a JSON string as Pusher
 * sends a trigger's data: pusher-js parses it, so a JSON publish reaches a bind callback as the value published.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { FrameEncoder } from '../protocol/frames.js';
import type { Publication } from '../protocol/publication.js';
import { wsFrame, OPCODE_TEXT } from '../protocol/ws-frames.js';

export const PROTOCOL_VERSION = 7;
/** The event name a Herald publication that is not a Pusher envelope reaches Pusher clients under. */
export const HERALD_EVENT = 'message';

/** Pusher's channel-name alphabet (a Herald channel name may hold more; those are out of a Pusher client's reach). */
const CHANNEL_NAME = /^[A-Za-z0-9_\-=@,.;]{1,200}$/;
/** Event names: Pusher allows 200 characters; control characters are refused. */
const EVENT_NAME = /^[\x21-\x7e][\x20-\x7e]{0,199}$/;

export type ChannelKind = 'public' | 'private' | 'encrypted' | 'presence';

export function channelKind(name: string): ChannelKind {
  if (name.startsWith('private-encrypted-')) return 'encrypted';
  if (name.startsWith('private-')) return 'private';
  if (name.startsWith('presence-')) return 'presence';
  return 'public';
}

export function validChannelName(v: unknown): v is string {
  return typeof v === 'string' && CHANNEL_NAME.test(v) && !v.startsWith('#');
}

export function validEventName(v: unknown): v is string {
  return typeof v === 'string' && EVENT_NAME.test(v);
}

/** A path segment decoded; undefined for a malformed escape (`%zz`), which a caller answers as bad input. */
export function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

// --- close and error codes ---------------------------------------------------------------------------------------

/**
 * Pusher's codes (4000-4099: do not reconnect; 4100-4199: reconnect with backoff; 4200-4299: reconnect now), as the
 * pusher-js connection manager acts on them.
 */
export const PUSHER_CODES = {
  tls_only: 4000,
  unknown_app: 4001,
  app_disabled: 4003,
  app_over_quota: 4004,
  path_not_found: 4005,
  bad_version: 4006,
  unsupported_protocol: 4007,
  no_protocol: 4008,
  unauthorized: 4009,
  over_capacity: 4100,
  generic_reconnect: 4200,
  pong_not_received: 4201,
  closed_inactive: 4202,
  client_event_rate: 4301,
} as const;
export type PusherCodeName = keyof typeof PUSHER_CODES;

// --- socket ids ----------------------------------------------------------------------------------------------------

/**
 * A socket id is `<node>.<session seq>`, both in decimal (Pusher's `\d+\.\d+` shape): it names the Herald session
 * exactly (node id in base 36 → decimal), so no map from socket ids to sessions is kept.
 */
export function socketIdOf(nodeId: string, seq: number): string {
  return `${parseInt(nodeId, 36)}.${seq}`;
}

const SOCKET_ID = /^\d{1,16}\.\d{1,16}$/;

export function validSocketId(v: unknown): v is string {
  return typeof v === 'string' && SOCKET_ID.test(v);
}

/** The Herald session id (`<node>-<seq base 36>`) a socket id names, or undefined. */
export function sessionIdOfSocket(socketId: string): string | undefined {
  if (!SOCKET_ID.test(socketId)) return undefined;
  const [node = '', seq = ''] = socketId.split('.');
  const n = Number(node);
  const s = Number(seq);
  if (!Number.isSafeInteger(n) || !Number.isSafeInteger(s)) return undefined;
  return `${n.toString(36).padStart(7, '0')}-${s.toString(36)}`;
}

// --- signatures ----------------------------------------------------------------------------------------------------

export function hmacHex(secret: string, text: string): string {
  return createHmac('sha256', secret).update(text, 'utf8').digest('hex');
}

/** Compares two hex strings in constant time (for equal lengths). */
export function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * A subscription's `auth` is `<key>:<hex HMAC-SHA256(secret, "<socket_id>:<channel>[:<channel_data>]")>`.
 * Returns true when it is.
 */
export function channelAuthValid(key: string, secret: string, socketId: string, channel: string, auth: string, channelData?: string): boolean {
  const colon = auth.indexOf(':');
  if (colon < 0 || auth.slice(0, colon) !== key) return false;
  const text = channelData === undefined ? `${socketId}:${channel}` : `${socketId}:${channel}:${channelData}`;
  return sameHex(auth.slice(colon + 1), hmacHex(secret, text));
}

/** `pusher:signin`'s auth: HMAC over `<socket_id>::user::<user_data>`. */
export function userAuthValid(key: string, secret: string, socketId: string, userData: string, auth: string): boolean {
  const colon = auth.indexOf(':');
  if (colon < 0 || auth.slice(0, colon) !== key) return false;
  return sameHex(auth.slice(colon + 1), hmacHex(secret, `${socketId}::user::${userData}`));
}

export function md5Hex(body: Buffer | string): string {
  return createHash('md5').update(body).digest('hex');
}

/**
 * The HTTP API's string to sign: `METHOD\nPATH\nQUERY` where QUERY is every parameter but `auth_signature`, keys
 * lower-cased and sorted, `k=v` joined by `&`, values as they were sent (decoded).
 */
export function apiStringToSign(method: string, path: string, params: URLSearchParams): string {
  const pairs: [string, string][] = [];
  for (const [k, v] of params) if (k !== 'auth_signature') pairs.push([k.toLowerCase(), v]);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return `${method}\n${path}\n${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`;
}

// --- frames --------------------------------------------------------------------------------------------------------

/** One Pusher message as a WebSocket text frame: `{"event", "channel"?, "data"}`. `data` is JSON text already. */
export function pusherFrame(event: string, channel: string | undefined, dataJson: string, extra = ''): Buffer {
  const ch = channel === undefined ? '' : `,"channel":${JSON.stringify(channel)}`;
  return wsFrame(OPCODE_TEXT, Buffer.from(`{"event":${JSON.stringify(event)}${ch},"data":${dataJson}${extra}}`, 'utf8'));
}

/** Data given as a string is sent as a JSON string (Pusher's own events carry JSON text in a string). */
export function stringData(value: unknown): string {
  return JSON.stringify(typeof value === 'string' ? value : JSON.stringify(value));
}

export function connectionEstablished(socketId: string, activityTimeoutSeconds: number): Buffer {
  return pusherFrame('pusher:connection_established', undefined, stringData({ socket_id: socketId, activity_timeout: activityTimeoutSeconds }));
}

export function errorJson(code: number | null, message: string): string {
  return `{"event":"pusher:error","data":${JSON.stringify({ code, message })}}`;
}

export function errorFrame(code: number | null, message: string): Buffer {
  return wsFrame(OPCODE_TEXT, Buffer.from(errorJson(code, message), 'utf8'));
}

export function subscriptionSucceeded(channel: string, data: unknown = {}): Buffer {
  return pusherFrame('pusher_internal:subscription_succeeded', channel, stringData(data));
}

export function subscriptionError(channel: string, status: number, error: string): Buffer {
  return pusherFrame('pusher:subscription_error', channel, JSON.stringify({ type: 'AuthError', error, status }));
}

export const PONG = pusherFrame('pusher:pong', undefined, '{}');
export const PING = pusherFrame('pusher:ping', undefined, '{}');

export function signinSuccess(userData: string): Buffer {
  return pusherFrame('pusher:signin_success', undefined, stringData({ user_data: userData }));
}

// --- the envelope ------------------------------------------------------------------------------------------------

/** A Pusher event as it travels in a Herald publication's data. */
export interface Envelope {
  readonly event: string;
  /** The event's data as JSON text: a JSON string for server events, any JSON for client events. */
  readonly dataJson: string;
  /** The sender to leave out (the HTTP API's `socket_id`, a client event's own socket). */
  readonly socketId?: string;
  /** A client event on a presence channel: its sender's user id. */
  readonly userId?: string;
  /** `socketId` as the Herald session it names (`<node>-<seq>`) and that session's seq: compared per member. */
  readonly excludeSession?: string;
  readonly excludeSeq?: number;
}

export function encodeEnvelope(e: Envelope): string {
  let out = `{"event":${JSON.stringify(e.event)},"data":${e.dataJson}`;
  if (e.socketId !== undefined) out += `,"socket_id":${JSON.stringify(e.socketId)}`;
  if (e.userId !== undefined) out += `,"user_id":${JSON.stringify(e.userId)}`;
  return out + '}';
}

/** Decoded envelopes, per publication object: the Hub hands one object to every group and member. */
const decoded = new WeakMap<Publication, Envelope | null>();

/** The last publication looked up: a fan-out asks for the same one once per member, and a WeakMap lookup each costs. */
let lastPublication: Publication | undefined;
let lastEnvelope: Envelope | null = null;

/** The publication's envelope, or null when its data is not one (a Herald publish). Parsed once per publication. */
export function envelopeOf(p: Publication): Envelope | null {
  if (p === lastPublication) return lastEnvelope;
  const e = decodeEnvelope(p);
  lastPublication = p;
  lastEnvelope = e;
  return e;
}

function decodeEnvelope(p: Publication): Envelope | null {
  const known = decoded.get(p);
  if (known !== undefined) return known;
  let e: Envelope | null = null;
  if (p.data.startsWith('{"event":')) {
    try {
      const v = JSON.parse(p.data) as Record<string, unknown>;
      const { event, data, socket_id: socketId, user_id: userId } = v;
      if (validEventName(event) && data !== undefined && (socketId === undefined || validSocketId(socketId))) {
        const excluded = socketId === undefined ? undefined : sessionIdOfSocket(socketId);
        e = {
          event,
          dataJson: serverEventData(event, data),
          ...(socketId !== undefined ? { socketId } : {}),
          ...(excluded !== undefined ? { excludeSession: excluded, excludeSeq: Number(socketId!.split('.')[1]) } : {}),
          ...(typeof userId === 'string' ? { userId } : {}),
        };
      }
    } catch {
      e = null;
    }
  }
  decoded.set(p, e);
  return e;
}

/**
 * An event's data as its frame carries it. Pusher sends a server event's data as a JSON string (the trigger's text;
 * pusher-js parses it, so a bind callback gets the object, and the mobile libraries read a string), so an envelope
 * published through Herald with JSON data that is not a string is sent as that JSON's text, as Pusher would.
 * A client event's data is relayed as the client sent it.
 */
function serverEventData(event: string, data: unknown): string {
  if (typeof data === 'string' || event.startsWith('client-')) return JSON.stringify(data);
  return JSON.stringify(JSON.stringify(data));
}

/**
 * The Pusher "codec" as the Hub and Session see it: one pre-framed WebSocket frame per publication and channel
 * label. Heartbeats and the last words are the sink's (pusher:ping, a close code).
 */
export const pusherCodec: FrameEncoder = {
  name: 'pusher',
  encode: (p, label) => {
    const e = envelopeOf(p);
    if (!e) return pusherFrame(HERALD_EVENT, label, JSON.stringify(p.data));
    return pusherFrame(e.event, label, e.dataJson, e.userId !== undefined ? `,"user_id":${JSON.stringify(e.userId)}` : '');
  },
  // Pusher has no resume: nothing is told about positions or reloads.
  encodeReload: () => Buffer.alloc(0),
  encodePosition: () => Buffer.alloc(0),
};
