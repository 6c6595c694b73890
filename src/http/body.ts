/** Reading a request body with a hard size bound. */
import type { IncomingMessage } from 'node:http';
import { HeraldError } from '../errors.js';

/**
 * Read and parse a JSON body of at most `maxBytes`. Throws 413 when larger, 400 when not JSON. The Content-Type is
 * not insisted on, so `curl -d '{...}'` works as it does with the anchors' publish APIs.
 * Plain 'data'/'end' events rather than async iteration: this is the publish hot path.
 */
export function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > maxBytes) return Promise.reject(new HeraldError('payload_too_large', `body over ${maxBytes} bytes`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (buf: Buffer) => {
      if (failed) return;
      size += buf.length;
      if (size > maxBytes) {
        failed = true;
        reject(new HeraldError('payload_too_large', `body over ${maxBytes} bytes`));
        return;
      }
      chunks.push(buf);
    });
    req.on('error', (err) => {
      if (!failed) reject(new HeraldError('bad_request', 'request body aborted', { cause: err }));
      failed = true;
    });
    req.on('end', () => {
      if (failed) return;
      const text = chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8');
      try {
        resolve(JSON.parse(text) as unknown);
      } catch {
        reject(new HeraldError('bad_request', 'body is not valid JSON'));
      }
    });
  });
}
