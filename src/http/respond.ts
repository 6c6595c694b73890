/** Plain HTTP answers: JSON bodies and the documented error shape `{"error":{"code","message"}}`. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HeraldError, toHeraldError } from '../errors.js';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(text);
}

export function sendText(res: ServerResponse, status: number, contentType: string, text: string): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

/**
 * Answer with an error. When the request body was not read to its end, the connection is closed after the answer
 * so the unread bytes cannot be taken for a next request.
 */
export function sendError(req: IncomingMessage, res: ServerResponse, err: unknown, headers: Record<string, string> = {}): HeraldError {
  const e = toHeraldError(err);
  if (res.headersSent) {
    res.destroy();
    return e;
  }
  const extra: Record<string, string> = {};
  if (!req.complete) extra['Connection'] = 'close';
  // Allow belongs on 405 answers only.
  for (const [k, v] of Object.entries(headers)) if (k !== 'Allow' || e.code === 'method_not_allowed') extra[k] = v;
  if (e.code === 'method_not_allowed' && !extra['Allow']) extra['Allow'] = 'GET';
  if (e.retryAfterSeconds !== undefined && !res.hasHeader('Retry-After')) extra['Retry-After'] = String(e.retryAfterSeconds);
  sendJson(res, e.status, e.toJSON(), extra);
  return e;
}
