/**
 * `GET /sse`: Server-Sent Events. Each message is one event whose `data:` is the same JSON array as a `/sub` line and
 * whose `id:` is the message id. A `retry:` line sets the client's reconnect delay; heartbeats are comment lines.
 */
import { sseCodec } from '../protocol/frames.js';
import type { StreamTransport } from './stream.js';

/** Reconnect delay suggested to EventSource clients. */
const RETRY_MS = 2000;
const CHUNKED = sseCodec(true, RETRY_MS);
const PLAIN = sseCodec(false, RETRY_MS);

export const sseTransport: StreamTransport = {
  name: 'sse',
  codec: (chunked) => (chunked ? CHUNKED : PLAIN),
};
