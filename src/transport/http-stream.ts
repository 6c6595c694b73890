/**
 * `GET /sub`: HTTP streaming, one NDJSON line per message, in the seed's format `["message","<channel>","<data>"]`.
 * `since=<cursor>` resumes (docs/protocol.md "Message ids and resume"), and asks for the message id as a fourth
 * element of each line; `since=` with no position starts from now with ids. Without `since`, lines are exactly the
 * seed's, so clients written for it keep working.
 */
import { ndjsonCodec } from '../protocol/frames.js';
import type { StreamTransport } from './stream.js';

const SEED = { chunked: ndjsonCodec(true, false), plain: ndjsonCodec(false, false) };
const WITH_IDS = { chunked: ndjsonCodec(true, true), plain: ndjsonCodec(false, true) };

export const httpStreamTransport: StreamTransport = {
  name: 'sub',
  codec: (chunked, _channels, req) => {
    const codecs = req.query.has('since') ? WITH_IDS : SEED;
    return chunked ? codecs.chunked : codecs.plain;
  },
  cursorOf: (req) => req.query.get('since') ?? undefined,
  alwaysResume: false,
};
