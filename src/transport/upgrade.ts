/**
 * `GET /ws` before the handshake: every check that can refuse an upgrade answers with a plain HTTP status and the
 * documented JSON error body, so a refused client sees the same errors as on /sub. Only then does `ws` complete the
 * handshake (noServer mode: Herald owns its HTTP server).
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Session } from '../core/session.js';
import { HeraldError, toHeraldError } from '../errors.js';
import type { ClientAddress } from '../http/client-address.js';
import { queryParams, streamRequestFromNode, type StreamRequest } from '../http/request.js';
import { errorResponse, formatResponse, headerBytesOf, headLimitError } from '../http/wire.js';

/** The upgrade request as a StreamRequest, or a HeraldError for what is wrong with it before any auth. */
export function upgradeRequest(req: IncomingMessage, maxUrlBytes: number, maxHeaderBytes: number, clients?: ClientAddress): StreamRequest {
  const raw = req.url ?? '/';
  // As the router checks every other request (an upgrade never reaches it), in the same one place.
  const over = headLimitError(raw.length, headerBytesOf(req.rawHeaders), { maxUrlBytes, maxHeaderBytes });
  if (over) throw over;
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
  if (socket.writable) socket.end(formatResponse(errorResponse(e, true, e.code === 'method_not_allowed' ? { Allow: 'GET' } : {})));
  socket.destroySoon();
  return e;
}

/** The socket's error listener while an upgrade is pending (a reset socket must not throw); taken off once ws owns it. */
export function ignoreError(): void {}

/**
 * Finish an upgrade whose session is open: hand the socket to `ws`, and end the session if the client went away
 * meanwhile. ws refuses a bad handshake by destroying the socket without calling back, so 'close' stands for it.
 */
export function completeUpgrade(
  wss: WebSocketServer,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  session: Session,
  opened: (ws: WebSocket) => void,
): void {
  if (socket.destroyed || !socket.writable) {
    session.clientGone();
    return;
  }
  const early = (): void => session.clientGone();
  socket.once('close', early);
  wss.handleUpgrade(req, socket, head, (ws) => {
    socket.off('close', early);
    socket.off('error', ignoreError);
    opened(ws);
  });
}
