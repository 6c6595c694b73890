/**
 * `GET /sub`: HTTP streaming, one NDJSON line per message, in the seed's format `["message","<channel>","<data>"]`
 * (a fourth element is the message id). `since=<cursor>` resumes (docs/protocol.md "Message ids and resume").
 */
import { ndjsonCodec } from '../protocol/frames.js';
import type { StreamTransport } from './stream.js';

const CHUNKED = ndjsonCodec(true);
const PLAIN = ndjsonCodec(false);

export const httpStreamTransport: StreamTransport = {
  name: 'sub',
  codec: (chunked) => (chunked ? CHUNKED : PLAIN),
  cursorOf: (req) => req.query.get('since') ?? undefined,
  alwaysResume: false,
};
