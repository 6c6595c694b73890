/**
 * `GET /sub`: HTTP streaming, one NDJSON line per message, in the seed's format `["message","<channel>","<data>"]`.
 * `since=<cursor>` resumes (docs/protocol.md "Message ids and resume"), and asks for the message id as a fourth
 * element of each line; `since=` with no position starts from now with ids. Without `since`, lines are exactly the
 * seed's, so clients written for it keep working.
 */
import { ndjsonCodec } from '../protocol/frames.js';
import { wantsJsonData, type StreamTransport } from './stream.js';

const SEED = { chunked: ndjsonCodec(true, false), plain: ndjsonCodec(false, false) };
const WITH_IDS = { chunked: ndjsonCodec(true, true), plain: ndjsonCodec(false, true) };
/** `jsonData=1`: JSON data as values (docs/protocol.md "JSON data"). */
const SEED_JSON = { chunked: ndjsonCodec(true, false, true), plain: ndjsonCodec(false, false, true) };
const WITH_IDS_JSON = { chunked: ndjsonCodec(true, true, true), plain: ndjsonCodec(false, true, true) };

export const httpStreamTransport: StreamTransport = {
  name: 'sub',
  codec: (chunked, _channels, req) => {
    const json = wantsJsonData(req.query);
    const codecs = req.query.has('since') ? (json ? WITH_IDS_JSON : WITH_IDS) : json ? SEED_JSON : SEED;
    return chunked ? codecs.chunked : codecs.plain;
  },
  cursorOf: (req) => req.query.get('since') ?? undefined,
  alwaysResume: false,
};
