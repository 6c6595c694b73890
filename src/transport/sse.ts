/**
 * `GET /sse`: Server-Sent Events. Each message is one event whose `data:` is the same JSON array as a `/sub` line and
 * whose `id:` is the connection's cursor: the message id when the connection has one channel, every channel's
 * position when it has several (docs/protocol.md). EventSource sends it back as Last-Event-ID on reconnect, so a
 * plain EventSource resumes without loss. A `retry:` line sets the client's reconnect delay; heartbeats are comments.
 */
import { sseCodec, sseCursorCodec } from '../protocol/frames.js';
import { wantsJsonData, type StreamTransport } from './stream.js';

/** Reconnect delay suggested to EventSource clients. */
const RETRY_MS = 2000;
/** Reconnect delay after a broker outage answer: uniform in [500, 1500) ms (docs/protocol.md "When the broker is down"). */
const OUTAGE_RETRY_MIN_MS = 500;
const OUTAGE_RETRY_SPREAD_MS = 1000;
const CHUNKED = sseCodec(true, RETRY_MS);
const PLAIN = sseCodec(false, RETRY_MS);
const CURSOR_CHUNKED = sseCursorCodec(true, RETRY_MS);
const CURSOR_PLAIN = sseCursorCodec(false, RETRY_MS);
/** The same with JSON data as values (`jsonData=1`). */
const JSON_CHUNKED = sseCodec(true, RETRY_MS, true);
const JSON_PLAIN = sseCodec(false, RETRY_MS, true);
const JSON_CURSOR_CHUNKED = sseCursorCodec(true, RETRY_MS, true);
const JSON_CURSOR_PLAIN = sseCursorCodec(false, RETRY_MS, true);

export const sseTransport: StreamTransport = {
  name: 'sse',
  codec: (chunked, channels, req) => {
    if (wantsJsonData(req.query)) {
      return channels > 1 ? (chunked ? JSON_CURSOR_CHUNKED : JSON_CURSOR_PLAIN) : chunked ? JSON_CHUNKED : JSON_PLAIN;
    }
    return channels > 1 ? (chunked ? CURSOR_CHUNKED : CURSOR_PLAIN) : chunked ? CHUNKED : PLAIN;
  },
  // The header is what EventSource sends; the query parameter serves the first connection of a page that stored
  // its position, since EventSource cannot set headers.
  cursorOf: (req) => req.header('last-event-id') ?? req.query.get('lastEventId') ?? undefined,
  alwaysResume: true,
  // Spread over a second so the clients of one outage do not all come back in the same instant.
  outageRetryMs: () => OUTAGE_RETRY_MIN_MS + Math.floor(Math.random() * OUTAGE_RETRY_SPREAD_MS),
};
