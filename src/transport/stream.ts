/**
 * The streaming transports (`GET /sub` NDJSON and `GET /sse` Server-Sent Events) share one path:
 * authorize → join every channel (the subscription is live) → write the response headers → stream.
 *
 * Once the headers are out, Herald takes the socket over from node:http and writes pre-encoded frames (already
 * chunk-framed) straight to it. That keeps a held connection lean (no ServerResponse per client) and lets the Hub
 * write one shared Buffer to every subscriber.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { SubscribeAuthorizer } from '../auth/grant.js';
import type { HeraldConfig } from '../config.js';
import type { HeraldNode } from '../core/node.js';
import type { Session, SessionSink } from '../core/session.js';
import { HeraldError } from '../errors.js';
import { LAST_CHUNK, type StreamCodec } from '../protocol/frames.js';
import { corsHeaders, subscribeCredentials } from './request.js';

export interface StreamContext {
  readonly node: HeraldNode;
  readonly authorizer: SubscribeAuthorizer;
  readonly config: HeraldConfig;
}

/** Bytes a client may send on a held stream (it should send none) before it is cut off. */
const MAX_INBOUND_AFTER_HEADERS = 4096;

export async function serveStream(
  ctx: StreamContext,
  req: IncomingMessage,
  res: ServerResponse,
  query: URLSearchParams,
  transport: string,
  pickCodec: (chunked: boolean) => StreamCodec,
): Promise<void> {
  if (req.method !== 'GET') throw new HeraldError('method_not_allowed', 'use GET');
  const remoteAddress = req.socket.remoteAddress ?? 'unknown';
  ctx.node.admit(remoteAddress);
  const auth = await ctx.authorizer.authorize(subscribeCredentials(req, query));
  const chunked = req.httpVersion !== '1.0';
  const codec = pickCodec(chunked);
  const session = await ctx.node.openSession(codec, auth.targets, {
    transport,
    remoteAddress,
    maxQueueBytes: ctx.config.maxQueueBytes,
    expiresAt: auth.expiresAt,
  });
  const socket = req.socket;
  if (socket.destroyed || !socket.writable) {
    session.clientGone();
    return;
  }
  const head = responseHead(codec, chunked, corsHeaders(req.headers.origin, ctx.config.allowedOrigins));
  res.detachSocket(socket);
  adoptSocket(socket, session);
  socket.write(head);
  if (codec.preamble.length > 0) socket.write(codec.preamble);
  session.attach(socketSink(socket, chunked));
}

function responseHead(codec: StreamCodec, chunked: boolean, extra: Record<string, string>): string {
  let head =
    'HTTP/1.1 200 OK\r\n' +
    `Content-Type: ${codec.contentType}\r\n` +
    'Cache-Control: no-cache, no-store\r\n' +
    // Tells nginx not to buffer the stream.
    'X-Accel-Buffering: no\r\n' +
    'X-Content-Type-Options: nosniff\r\n' +
    `Date: ${new Date().toUTCString()}\r\n`;
  head += chunked ? 'Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n' : 'Connection: close\r\n';
  for (const [k, v] of Object.entries(extra)) head += `${k}: ${v}\r\n`;
  return head + '\r\n';
}

/**
 * From here on the socket is the session's. node:http's reader is removed (a held stream takes no further
 * requests), whatever the client still sends is discarded up to a small bound, and a close releases the session.
 */
function adoptSocket(socket: Socket, session: Session): void {
  socket.removeAllListeners('data');
  socket.removeAllListeners('timeout');
  socket.setTimeout(0);
  socket.setNoDelay(true);
  socket.setKeepAlive(true, 30_000);
  let inbound = 0;
  socket.on('data', (d: Buffer) => {
    inbound += d.length;
    if (inbound > MAX_INBOUND_AFTER_HEADERS) socket.destroy();
  });
  socket.once('close', () => session.clientGone());
  socket.on('error', () => socket.destroy());
  socket.resume();
}

function socketSink(socket: Socket, chunked: boolean): SessionSink {
  return {
    write: (bytes) => {
      socket.write(bytes);
    },
    bufferedBytes: () => socket.writableLength,
    end: (last) => {
      if (last && last.length > 0) socket.write(last);
      if (chunked) socket.write(LAST_CHUNK);
      socket.end();
      // A client that never reads cannot keep the socket open past a graceful end.
      socket.setTimeout(5000, () => socket.destroy());
    },
    destroy: () => socket.destroy(),
  };
}
