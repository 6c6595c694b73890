/**
 * Wire formats of the streaming transports. Pure functions: a publication in, bytes out. The Hub calls an encoder
 * once per message and per (format, channel label), and writes the same Buffer to every subscriber of that group.
 *
 * Two layers: a `FrameEncoder` says what a Session tells its client (messages, reloads, positions), and is all the
 * core sees of a wire format; a `StreamCodec` adds what only the HTTP streams (`/sub`, `/sse`) need around it (the
 * content type, the preamble, the heartbeat and the last frame), used by their sink (transport/stream.ts). `/ws`,
 * `/poll` and Pusher are encoders only: their liveness and last words are WebSocket pings and close frames, or the
 * poll's answer, said by their sinks.
 */
import { DISCONNECT_TABLE, type DisconnectReason } from '../errors.js';
import type { Publication } from './publication.js';

/** What a session tells its client, as the bytes of one wire format: messages, reloads and positions. */
export interface FrameEncoder {
  /** Unique per wire format and framing, used to group subscribers that receive identical bytes. */
  readonly name: string;
  /** One message frame: the Hub encodes it once per (format, label) and writes it to every member. */
  encode(publication: Publication, label: string): Buffer;
  /** The server took `label` off this stream (docs/api.md `unsubscribe`). Absent where a transport has no such frame. */
  readonly encodeUnsubscribed?: (label: string) => Buffer;
  /**
   * The client must reload `label`'s state: messages were missed and cannot be replayed. `id` is the channel's
   * position from now on (empty when unknown); `cursor` is the connection's whole cursor (SSE puts it in `id:`).
   */
  encodeReload(label: string, reason: ReloadReason, id: string, cursor: string): Buffer;
  /** The channel's position changed without a message (resume mode): NDJSON says so in a line, SSE moves its id. */
  encodePosition(label: string, id: string, cursor: string): Buffer;
  /**
   * Set when every message event must carry the connection's cursor (SSE with several channels): `encode` then gives
   * an unframed event body that this wraps, per connection, with the cursor as the event's id.
   */
  readonly withCursor?: (body: Buffer, cursor: string) => Buffer;
  /**
   * A presence event on `label` (docs/presence.md): `member` is the member's JSON object text. Absent where a
   * transport has no such frame.
   */
  readonly encodePresence?: (kind: 'join' | 'leave', label: string, member: string) => Buffer;
}

/** An HTTP stream's wire format (`/sub`, `/sse`): the encoder, and what its sink writes around the frames. */
export interface StreamCodec extends FrameEncoder {
  readonly contentType: string;
  /** Chunked transfer framing (HTTP/1.1) is in every frame. */
  readonly chunked: boolean;
  /** Extra frames sent right after the headers (SSE's `retry:`). */
  readonly preamble: Buffer;
  /** Written once per heartbeat interval: keeps proxies from closing an idle stream. */
  readonly heartbeat: Buffer;
  /** The last frame: why the stream ended. */
  encodeDisconnect(reason: DisconnectReason, custom?: CustomDisconnect): Buffer;
}

/** `["join","<label>",{member}]` / `["leave",...]`: the /sub line, the SSE event's data, the poll element. */
export function presenceLine(kind: 'join' | 'leave', label: string, member: string): string {
  return `[${JSON.stringify(kind)},${JSON.stringify(label)},${member}]`;
}

/**
 * Why a client must reload a channel (docs/protocol.md): `expired` the messages after its position are no longer
 * kept; `epoch` the channel's history generation changed (or its position is unknown to this history); `no_history`
 * the channel keeps no history; `broker_lost` the node lost its broker and cannot tell what the client missed;
 * `oversized` the missed messages are more than the connection's outgoing queue (`maxQueueBytes`) may hold.
 */
export type ReloadReason = 'expired' | 'epoch' | 'no_history' | 'broker_lost' | 'oversized';

export function reloadLine(label: string, reason: ReloadReason, id: string): string {
  return JSON.stringify(['reload', label, reason, id]);
}

export function positionLine(label: string, id: string): string {
  return JSON.stringify(['position', label, id]);
}

/**
 * The seed's line: `["message","<channel>","<data>"]`, with the message id as a fourth element when it has one.
 * `json`: `data` is JSON text (Publication.json) and goes in as the value, `["message","<channel>",{...}]`; only for
 * streams that asked for it (`jsonData=1`), so the seed's lines never change.
 */
export function messageLine(label: string, data: string, id: string | undefined, json = false): string {
  if (!json) return JSON.stringify(id === undefined ? ['message', label, data] : ['message', label, data, id]);
  return `["message",${JSON.stringify(label)},${data}${id === undefined ? '' : `,${JSON.stringify(id)}`}]`;
}

/** A stream's message line: JSON data as the value where the stream asked for it (`jsonData`), else as text. */
function lineOf(p: Publication, label: string, id: string | undefined, jsonData: boolean): string {
  return messageLine(label, p.data, id, jsonData && p.json === true);
}

/**
 * A disconnect with the code and reconnect flag an operator chose (the server API's `disconnect`), instead of the
 * reason's own (DISCONNECT_TABLE).
 */
export interface CustomDisconnect {
  readonly code: number;
  readonly reconnect: boolean;
}

export function disconnectLine(reason: DisconnectReason, custom?: CustomDisconnect): string {
  const d = custom ?? DISCONNECT_TABLE[reason];
  return JSON.stringify(['disconnect', reason, d.code, d.reconnect]);
}

/** The server took one channel off a live stream (the server API's `unsubscribe`): `["unsubscribed","<label>"]`. */
export function unsubscribedLine(label: string): string {
  return JSON.stringify(['unsubscribed', label]);
}

/** One SSE event. `data` must not contain CR or LF (JSON text never does). */
function sseEvent(event: string | undefined, id: string | undefined, data: string): string {
  let out = '';
  if (id !== undefined) out += `id: ${id}\n`;
  if (event !== undefined) out += `event: ${event}\n`;
  return out + `data: ${data}\n\n`;
}

/** HTTP/1.1 chunked transfer framing of one body piece. */
export function chunk(body: string | Buffer): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return Buffer.concat([Buffer.from(bytes.length.toString(16) + '\r\n', 'latin1'), bytes, CRLF]);
}
const CRLF = Buffer.from('\r\n', 'latin1');
/** The last chunk of a chunked body. */
export const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');

function makeCodec(
  base: string,
  contentType: string,
  chunked: boolean,
  parts: {
    message: (p: Publication, label: string) => string;
    heartbeat: string;
    disconnect: (r: DisconnectReason, custom?: CustomDisconnect) => string;
    unsubscribed: (label: string) => string;
    reload: (label: string, reason: ReloadReason, id: string, cursor: string) => string;
    position: (label: string, id: string, cursor: string) => string;
    presence: (kind: 'join' | 'leave', label: string, member: string) => string;
    preamble: string;
  },
): StreamCodec {
  const frame = chunked ? (s: string) => chunk(s) : (s: string) => Buffer.from(s, 'utf8');
  const disconnects = new Map<DisconnectReason, Buffer>();
  return {
    name: `${base}${chunked ? '+chunked' : ''}`,
    contentType,
    chunked,
    heartbeat: frame(parts.heartbeat),
    preamble: parts.preamble ? frame(parts.preamble) : Buffer.alloc(0),
    encode: (p, label) => frame(parts.message(p, label)),
    encodeReload: (label, reason, id, cursor) => frame(parts.reload(label, reason, id, cursor)),
    encodePosition: (label, id, cursor) => frame(parts.position(label, id, cursor)),
    encodePresence: (kind, label, member) => frame(parts.presence(kind, label, member)),
    encodeUnsubscribed: (label) => frame(parts.unsubscribed(label)),
    encodeDisconnect(reason, custom) {
      if (custom) return frame(parts.disconnect(reason, custom));
      let buf = disconnects.get(reason);
      if (!buf) disconnects.set(reason, (buf = frame(parts.disconnect(reason))));
      return buf;
    },
  };
}

/**
 * NDJSON (`GET /sub`): one JSON array per line. The heartbeat is an empty line, which line-oriented JSON readers
 * skip; it keeps proxies from closing an idle stream.
 */
export function ndjsonCodec(chunked: boolean, withIds = true, jsonData = false): StreamCodec {
  const name = (withIds ? 'ndjson+ids' : 'ndjson') + (jsonData ? '+json' : '');
  return makeCodec(name, 'application/x-ndjson', chunked, {
    message: (p, label) => lineOf(p, label, withIds ? p.id : undefined, jsonData) + '\n',
    heartbeat: '\n',
    disconnect: (r, custom) => disconnectLine(r, custom) + '\n',
    unsubscribed: (label) => unsubscribedLine(label) + '\n',
    reload: (label, reason, id) => reloadLine(label, reason, id) + '\n',
    position: (label, id) => positionLine(label, id) + '\n',
    presence: (kind, label, member) => presenceLine(kind, label, member) + '\n',
    preamble: '',
  });
}

/**
 * Server-Sent Events (`GET /sse`): the event's data is the same JSON array as the NDJSON line, so it says the
 * channel and can never break the event framing whatever the payload holds (newlines are JSON-escaped).
 * The message id goes in `id:` so EventSource resends it as Last-Event-ID.
 */
export function sseCodec(chunked: boolean, retryMs: number, jsonData = false): StreamCodec {
  return makeCodec(jsonData ? 'sse+json' : 'sse', 'text/event-stream; charset=utf-8', chunked, sseParts(retryMs, (p) => p.id, jsonData));
}

/**
 * SSE for a connection of several channels: Last-Event-ID is one string, so each event's `id:` is the connection's
 * cursor (every channel's position, docs/protocol.md), written per connection around the shared event body.
 */
export function sseCursorCodec(chunked: boolean, retryMs: number, jsonData = false): StreamCodec {
  const parts = sseParts(retryMs, () => undefined, jsonData);
  const base = makeCodec(jsonData ? 'sse-cursor+json' : 'sse-cursor', 'text/event-stream; charset=utf-8', chunked, parts);
  const frame = chunked ? (b: Buffer) => chunk(b) : (b: Buffer) => b;
  return {
    ...base,
    // The shared body stays unframed; the framing goes around id + body.
    encode: (p, label) => Buffer.from(parts.message(p, label), 'utf8'),
    withCursor: (body, cursor) => frame(Buffer.concat([Buffer.from(`id: ${cursor}\n`, 'latin1'), body])),
  };
}

function sseParts(retryMs: number, idOf: (p: Publication) => string | undefined, jsonData: boolean) {
  return {
    message: (p: Publication, label: string) => sseEvent(undefined, idOf(p), lineOf(p, label, p.id, jsonData)),
    heartbeat: ':\n\n',
    disconnect: (r: DisconnectReason, custom?: CustomDisconnect) => sseEvent('disconnect', undefined, disconnectLine(r, custom)),
    unsubscribed: (label: string) => sseEvent('unsubscribed', undefined, unsubscribedLine(label)),
    reload: (label: string, reason: ReloadReason, id: string, cursor: string) =>
      sseEvent('reload', cursor, reloadLine(label, reason, id)),
    // A named event, not an id-only one: some clients (the eventsource package) move lastEventId only for events
    // with data, and a page that does not listen for "position" never sees it.
    position: (label: string, id: string, cursor: string) => sseEvent('position', cursor, positionLine(label, id)),
    // No id: a presence event moves no position.
    presence: (kind: 'join' | 'leave', label: string, member: string) => sseEvent(kind, undefined, presenceLine(kind, label, member)),
    preamble: `retry: ${retryMs}\n\n`,
  };
}
