/** Reading a request body with a hard size bound. */
import type { IncomingMessage } from 'node:http';
import { HeraldError } from '../errors.js';

/**
 * Read and parse a JSON body of at most `maxBytes`. Throws 413 when larger, 400 when not JSON. The Content-Type is
 * not insisted on, so `curl -d '{...}'` works as it does with the anchors' publish APIs.
 */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > maxBytes) throw new HeraldError('payload_too_large', `body over ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const piece of req) {
    const buf = piece as Buffer;
    size += buf.length;
    if (size > maxBytes) throw new HeraldError('payload_too_large', `body over ${maxBytes} bytes`);
    chunks.push(buf);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HeraldError('bad_request', 'body is not valid JSON');
  }
}
