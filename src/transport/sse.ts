/**
 * `GET /sse`: Server-Sent Events. Each message is one event whose `data:` is the same JSON array as a `/sub` line and
 * whose `id:` is the message id. A `retry:` line sets the client's reconnect delay; heartbeats are comment lines.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sseCodec } from '../protocol/frames.js';
import { serveStream, type StreamContext } from './stream.js';

/** Reconnect delay suggested to EventSource clients. */
const RETRY_MS = 2000;
const CODECS = { chunked: sseCodec(true, RETRY_MS), plain: sseCodec(false, RETRY_MS) };

export function serveSse(ctx: StreamContext, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  return serveStream(ctx, req, res, query, 'sse', (chunked) => (chunked ? CODECS.chunked : CODECS.plain));
}
