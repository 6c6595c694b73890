/** `GET /sub`: HTTP streaming, one NDJSON line per message, in the seed's format `["message","<channel>","<data>"]`. */
import { ndjsonCodec } from '../protocol/frames.js';
import type { StreamTransport } from './stream.js';

const CHUNKED = ndjsonCodec(true);
const PLAIN = ndjsonCodec(false);

export const httpStreamTransport: StreamTransport = {
  name: 'sub',
  codec: (chunked) => (chunked ? CHUNKED : PLAIN),
};
