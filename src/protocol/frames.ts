/**
 * Wire formats of the streaming transports. Pure functions: a publication in, bytes out. The Hub calls an encoder
 * once per message and per (format, channel label), and writes the same Buffer to every subscriber of that group.
 */
import { DISCONNECT_TABLE, type DisconnectReason } from '../errors.js';
import type { Publication } from '../broker/broker.js';

/** Turns a publication into the bytes of one frame of a wire format. */
export interface FrameEncoder {
  /** Unique per wire format and framing, used to group subscribers that receive identical bytes. */
  readonly name: string;
  encode(publication: Publication, label: string): Buffer;
}

/** A streaming wire format: message frames, a heartbeat, and the last frame that says why a stream ended. */
export interface StreamCodec extends FrameEncoder {
  readonly contentType: string;
  readonly heartbeat: Buffer;
  encodeDisconnect(reason: DisconnectReason): Buffer;
  /** Extra frames sent right after the headers (SSE's `retry:`). */
  readonly preamble: Buffer;
}

/** The seed's line: `["message","<channel>","<data>"]`, with the message id as a fourth element when it has one. */
export function messageLine(label: string, data: string, id: string | undefined): string {
  return JSON.stringify(id === undefined ? ['message', label, data] : ['message', label, data, id]);
}

export function disconnectLine(reason: DisconnectReason): string {
  const d = DISCONNECT_TABLE[reason];
  return JSON.stringify(['disconnect', reason, d.code, d.reconnect]);
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
    disconnect: (r: DisconnectReason) => string;
    preamble: string;
  },
): StreamCodec {
  const frame = chunked ? (s: string) => chunk(s) : (s: string) => Buffer.from(s, 'utf8');
  const disconnects = new Map<DisconnectReason, Buffer>();
  return {
    name: `${base}${chunked ? '+chunked' : ''}`,
    contentType,
    heartbeat: frame(parts.heartbeat),
    preamble: parts.preamble ? frame(parts.preamble) : Buffer.alloc(0),
    encode: (p, label) => frame(parts.message(p, label)),
    encodeDisconnect(reason) {
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
export function ndjsonCodec(chunked: boolean): StreamCodec {
  return makeCodec('ndjson', 'application/x-ndjson', chunked, {
    message: (p, label) => messageLine(label, p.data, p.id) + '\n',
    heartbeat: '\n',
    disconnect: (r) => disconnectLine(r) + '\n',
    preamble: '',
  });
}

/**
 * Server-Sent Events (`GET /sse`): the event's data is the same JSON array as the NDJSON line, so it says the
 * channel and can never break the event framing whatever the payload holds (newlines are JSON-escaped).
 * The message id goes in `id:` so EventSource resends it as Last-Event-ID.
 */
export function sseCodec(chunked: boolean, retryMs: number): StreamCodec {
  return makeCodec('sse', 'text/event-stream; charset=utf-8', chunked, {
    message: (p, label) => sseEvent(undefined, p.id, messageLine(label, p.data, p.id)),
    heartbeat: ':\n\n',
    disconnect: (r) => sseEvent('disconnect', undefined, disconnectLine(r)),
    preamble: `retry: ${retryMs}\n\n`,
  });
}
