/** `GET /sub`: HTTP streaming, one NDJSON line per message, in the seed's format `["message","<channel>","<data>"]`. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ndjsonCodec } from '../protocol/frames.js';
import { serveStream, type StreamContext } from './stream.js';

const CODECS = { chunked: ndjsonCodec(true), plain: ndjsonCodec(false) };

export function serveSub(ctx: StreamContext, req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
  return serveStream(ctx, req, res, query, 'sub', (chunked) => (chunked ? CODECS.chunked : CODECS.plain));
}
