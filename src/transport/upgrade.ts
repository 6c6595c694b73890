/**
 * `GET /ws` before the handshake: every check that can refuse an upgrade answers with a plain HTTP status and the
 * documented JSON error body, so a refused client sees the same errors as on /sub. Only then does `ws` complete the
 * handshake (noServer mode: Herald owns its HTTP server).
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { HeraldError, toHeraldError } from '../errors.js';
import type { ClientAddress } from '../http/client-address.js';
import { queryParams, streamRequestFromNode, type StreamRequest } from '../http/request.js';

/** The upgrade request as a StreamRequest, or a HeraldError for what is wrong with it before any auth. */
export function upgradeRequest(req: IncomingMessage, maxUrlBytes: number, maxHeaderBytes: number, clients?: ClientAddress): StreamRequest {
  const raw = req.url ?? '/';
  if (raw.length > maxUrlBytes) throw new HeraldError('uri_too_long', `URL over ${maxUrlBytes} bytes`);
  // node:http's own bound covers the URL and the headers together (server.ts): the header block alone is checked
  // here, as the router does for every other request (an upgrade never reaches the router).
  let headerBytes = 0;
  for (const h of req.rawHeaders) headerBytes += h.length + 2;
  if (headerBytes > maxHeaderBytes) throw new HeraldError('header_too_large', `request headers over ${maxHeaderBytes} bytes`);
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  if (path !== '/ws') throw new HeraldError('not_found', `no WebSocket route ${path.slice(0, 100)}`);
  if (req.method !== 'GET') throw new HeraldError('method_not_allowed', 'use GET');
  // ws would refuse these too, after Herald had subscribed: refuse them first, cheaply.
  if ((req.headers['upgrade'] ?? '').toLowerCase() !== 'websocket') throw new HeraldError('bad_request', 'not a WebSocket upgrade');
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !/^[+/0-9A-Za-z]{22}==$/.test(key)) throw new HeraldError('bad_request', 'bad Sec-WebSocket-Key');
  if (req.headers['sec-websocket-version'] !== '13') throw new HeraldError('bad_request', 'WebSocket version 13 required');
  return streamRequestFromNode(req, queryParams(q < 0 ? '' : raw.slice(q + 1)), clients);
}

/** Answer a refused upgrade on the raw socket and close it. */
export function refuseUpgrade(socket: Socket, err: unknown): HeraldError {
  const e = toHeraldError(err);
  if (socket.writable) {
    const body = JSON.stringify(e.toJSON());
    let extra = e.code === 'method_not_allowed' ? 'Allow: GET\r\n' : '';
    if (e.retryAfterSeconds !== undefined) extra += `Retry-After: ${e.retryAfterSeconds}\r\n`;
    socket.end(
      `HTTP/1.1 ${e.status} ${STATUS_TEXT[e.status] ?? 'Error'}\r\n` +
        `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Cache-Control: no-store\r\nConnection: close\r\n${extra}\r\n${body}`,
    );
  }
  socket.destroySoon();
  return e;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};
