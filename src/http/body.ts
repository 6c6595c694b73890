/** Reading a request body with a hard size bound. */
import type { IncomingMessage } from 'node:http';
import { HeraldError } from '../errors.js';
import { JsonRefused, parseClientJson } from '../protocol/json-bounds.js';

/**
 * Read a body of at most `maxBytes` (413 when larger). The publish API decides what it is (http/publish.ts): the
 * Content-Type is not insisted on, so `curl -d '{...}'` works as it does with the anchors' publish APIs.
 * Plain 'data'/'end' events rather than async iteration: this is the publish hot path.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
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
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
    });
  });
}

/** A publish body's JSON, bounded in depth: 400 `bad_request` naming the problem (the node:http and fast paths). */
export function parseJsonBody(bytes: Buffer, maxDepth: number): unknown {
  try {
    return parseClientJson(bytes, maxDepth);
  } catch (err) {
    const why = err instanceof JsonRefused && err.message !== 'not JSON' ? err.message : 'not valid JSON';
    throw new HeraldError('bad_request', `body is ${why}`);
  }
}

/** Read and parse a JSON body of at most `maxBytes` (413), nested at most `maxDepth` deep (400). */
export async function readJsonBody(req: IncomingMessage, maxBytes: number, maxDepth: number): Promise<unknown> {
  return parseJsonBody(await readBody(req, maxBytes), maxDepth);
}
