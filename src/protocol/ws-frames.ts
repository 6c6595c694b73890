/**
 * The WebSocket JSON protocol (docs/protocol.md, "GET /ws"): client requests parsed and validated, server frames
 * encoded. Pure functions, no I/O.
 *
 * Server frames are returned as complete RFC 6455 frames (header + payload), so the Hub encodes a message once per
 * channel label and the very same bytes go to every socket, written straight to the TCP socket. This is what ws's
 * `Sender.frame` does for an unmasked text frame; it is written out here because that function is untyped and because
 * per-message deflate (which would make frames differ per socket) is off.
 */
import type { Publication } from './publication.js';
import { DISCONNECT_TABLE, type DisconnectReason, type ErrorCode } from '../errors.js';
import type { CustomDisconnect, FrameEncoder } from './frames.js';
import { dataText, DEFAULT_MAX_JSON_DEPTH, JsonRefused, parseClientJson } from './json-bounds.js';
import { isJsonValue } from './json-data.js';

/** Longest request id a client may choose. */
export const MAX_REQUEST_ID_CHARS = 64;

export type RequestId = number | string;

export type ClientRequest =
  | { readonly op: 'connect' | 'refresh'; readonly id: RequestId; readonly token: string }
  | {
      readonly op: 'subscribe';
      readonly id: RequestId;
      readonly channel?: string;
      readonly key?: string;
      readonly since?: string;
      /** Ask for join and leave events on this connection's presence channels (docs/presence.md). */
      readonly joinLeave?: boolean;
    }
  | { readonly op: 'presence' | 'presence_stats'; readonly id: RequestId; readonly channel: string }
  | { readonly op: 'unsubscribe'; readonly id: RequestId; readonly channel?: string; readonly key?: string }
  | {
      readonly op: 'publish';
      readonly id: RequestId;
      readonly channel: string;
      readonly data: string;
      /** `data` is JSON text: the client sent a JSON value that is not a string. */
      readonly json: boolean;
      /** Checked by the publish handler (protocol/idempotency.ts), so a bad key answers an error, not a close. */
      readonly idempotencyKey?: string;
    }
  | { readonly op: 'ping'; readonly id: RequestId };

/**
 * Why a frame was refused: the connection is closed with `bad_frame` (3501), or `too_large` (1009) for a publish
 * whose `data`, as JSON text, is longer than a frame may be.
 */
export class BadFrame extends Error {
  constructor(message: string, readonly reason: 'bad_frame' | 'too_large' = 'bad_frame') {
    super(message);
  }
}

export interface FrameLimits {
  /** Deepest nesting of objects and arrays in a frame (`maxJsonDepth`). */
  readonly maxDepth: number;
  /** Longest JSON text a publish's non-string `data` may become (`wsMaxFrameBytes`). */
  readonly maxDataChars: number;
}

const DEFAULT_LIMITS: FrameLimits = { maxDepth: DEFAULT_MAX_JSON_DEPTH, maxDataChars: 64 * 1024 };

/** Parse one text frame (its UTF-8 bytes). Throws BadFrame (and nothing else) for anything the protocol does not allow. */
export function parseRequest(bytes: Buffer, limits: FrameLimits = DEFAULT_LIMITS): ClientRequest {
  let value: unknown;
  try {
    value = parseClientJson(bytes, limits.maxDepth);
  } catch (err) {
    throw new BadFrame(err instanceof JsonRefused ? err.message : 'not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BadFrame('not a JSON object');
  const frame = value as Record<string, unknown>;
  const id = frame['id'];
  const idOk =
    (typeof id === 'number' && Number.isFinite(id)) || (typeof id === 'string' && id.length <= MAX_REQUEST_ID_CHARS);
  if (!idOk) throw new BadFrame('id must be a number or a short string');
  const op = frame['op'];
  switch (op) {
    case 'connect':
    case 'refresh':
      return { op, id, token: str(frame, 'token', true) };
    case 'subscribe':
    case 'unsubscribe': {
      const channel = str(frame, 'channel', false);
      const key = str(frame, 'key', false);
      if ((channel === undefined) === (key === undefined)) throw new BadFrame(`${op} needs one of channel or key`);
      if (op === 'unsubscribe') return { op, id, channel, key };
      const joinLeave = frame['joinLeave'];
      if (joinLeave !== undefined && typeof joinLeave !== 'boolean') throw new BadFrame('joinLeave must be true or false');
      const since = str(frame, 'since', false);
      return joinLeave === undefined ? { op, id, channel, key, since } : { op, id, channel, key, since, joinLeave };
    }
    case 'presence':
    case 'presence_stats':
      return { op, id, channel: str(frame, 'channel', true) };
    case 'publish': {
      const data = frame['data'];
      if (data === undefined) throw new BadFrame('publish needs data');
      const channel = str(frame, 'channel', true);
      const idempotencyKey = str(frame, 'idempotency_key', false);
      let text: string;
      try {
        text = dataText(data, limits.maxDataChars);
      } catch (err) {
        if (err instanceof JsonRefused && err.tooLarge) throw new BadFrame(err.message, 'too_large');
        throw new BadFrame(err instanceof JsonRefused ? err.message : 'bad data');
      }
      const json = isJsonValue(data);
      return idempotencyKey === undefined ? { op, id, channel, data: text, json } : { op, id, channel, data: text, json, idempotencyKey };
    }
    case 'ping':
      return { op, id };
    default:
      throw new BadFrame(typeof op === 'string' ? `unknown op ${op.slice(0, 32)}` : 'op missing');
  }
}

function str(frame: Record<string, unknown>, field: string, required: true): string;
function str(frame: Record<string, unknown>, field: string, required: false): string | undefined;
function str(frame: Record<string, unknown>, field: string, required: boolean): string | undefined {
  const v = frame[field];
  if (v === undefined || v === null) {
    if (required) throw new BadFrame(`${field} missing`);
    return undefined;
  }
  if (typeof v !== 'string') throw new BadFrame(`${field} must be a string`);
  return v;
}

/** An unmasked, final RFC 6455 frame. */
export function wsFrame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + n);
  out[0] = 0x80 | opcode;
  if (n < 126) out[1] = n;
  else if (n < 65536) {
    out[1] = 126;
    out.writeUInt16BE(n, 2);
  } else {
    out[1] = 127;
    out.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
    out.writeUInt32BE(n >>> 0, 6);
  }
  payload.copy(out, head);
  return out;
}

export const OPCODE_TEXT = 0x1;

/**
 * How server frames leave: as whole RFC 6455 frames written to the socket (the default), or, on a connection that
 * negotiated permessage-deflate (`wsCompression`), as payloads handed to `ws.send`, which compresses per socket.
 */
export type Framing = (json: string) => Buffer;
export const PREFRAMED: Framing = (json) => wsFrame(OPCODE_TEXT, Buffer.from(json, 'utf8'));
export const PAYLOAD: Framing = (json) => Buffer.from(json, 'utf8');

export function replyFrame(id: RequestId, result: Record<string, unknown>, f: Framing = PREFRAMED): Buffer {
  return f(JSON.stringify({ type: 'reply', id, result }));
}

export function errorFrame(id: RequestId, code: ErrorCode, message: string, f: Framing = PREFRAMED): Buffer {
  return f(JSON.stringify({ type: 'error', id, error: { code, message } }));
}

/** The client must reload `label`'s state (docs/protocol.md "Message ids and resume"). */
export function reloadFrame(label: string, reason: string, id: string, f: Framing = PREFRAMED): Buffer {
  return f(JSON.stringify({ type: 'reload', channel: label, reason, id }));
}

/** After a resume: the channel's position moved without a message (docs/protocol.md). */
export function positionFrame(label: string, id: string, f: Framing = PREFRAMED): Buffer {
  return f(JSON.stringify({ type: 'position', channel: label, id }));
}

export function unsubscribedFrame(label: string, reason: ErrorCode, f: Framing = PREFRAMED): Buffer {
  return f(JSON.stringify({ type: 'unsubscribed', channel: label, reason }));
}

/**
 * The message frame's JSON text, exactly as documented: `id` only where the message has one; `data` the published
 * JSON value where it was published as one (Publication.json), else the text as a string.
 */
export function messageJson(p: Publication, label: string): string {
  if (p.json === true) {
    const id = p.id === undefined ? '' : `,"id":${JSON.stringify(p.id)}`;
    return `{"type":"message","channel":${JSON.stringify(label)},"data":${p.data}${id}}`;
  }
  return p.id === undefined
    ? JSON.stringify({ type: 'message', channel: label, data: p.data })
    : JSON.stringify({ type: 'message', channel: label, data: p.data, id: p.id });
}

/**
 * The WebSocket encoder as the Hub and Session see it. Heartbeats and the last frame are the sink's (WebSocket ping
 * and close frames: transport/websocket.ts).
 */
function makeWsCodec(name: string, f: Framing): FrameEncoder {
  return {
    name,
    encode: (p, label) => f(messageJson(p, label)),
    encodeReload: (label, reason, id) => reloadFrame(label, reason, id, f),
    encodePosition: (label, id) => positionFrame(label, id, f),
    encodeUnsubscribed: (label) => unsubscribedFrame(label, 'forbidden', f),
    encodePresence: (kind, label, member) => f(`{"type":${JSON.stringify(kind)},"channel":${JSON.stringify(label)},"member":${member}}`),
  };
}

/** Pre-framed: one Buffer per message and label, written as is to every socket. */
export const wsCodec = makeWsCodec('ws', PREFRAMED);
/** Payloads for connections that negotiated permessage-deflate (`wsCompression`). */
export const wsDeflateCodec = makeWsCodec('ws-deflate', PAYLOAD);

/**
 * Close code and reason text for a disconnect reason. With an operator's code (server API `disconnect`), the reason
 * text says whether to reconnect: `disconnected` or `disconnected reconnect` (docs/api.md).
 */
export function closeFor(reason: DisconnectReason, custom?: CustomDisconnect): { code: number; reason: string } {
  if (custom) return { code: custom.code, reason: custom.reconnect ? `${reason} reconnect` : reason };
  return { code: DISCONNECT_TABLE[reason].code, reason };
}
