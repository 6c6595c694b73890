/**
 * The streaming transports (`GET /sub` NDJSON and `GET /sse` Server-Sent Events) share one path:
 * authorize → join every channel (the subscription is live) → write the response headers → stream.
 *
 * Once the headers are out, the socket is the session's: Herald writes pre-encoded frames (already chunk-framed)
 * straight to it. A held connection keeps no request or response object, and the Hub writes one shared Buffer to
 * every subscriber.
 */
import type { Socket } from 'node:net';
import type { SubscribeAuthorizer } from '../auth/grant.js';
import type { HeraldConfig } from '../config.js';
import type { HeraldNode, ResumeRequest } from '../core/node.js';
import type { ClientAddress } from '../http/client-address.js';
import { checkDevHost } from '../http/dev-guard.js';
import type { Session, SessionSink } from '../core/session.js';
import { HeraldError, type DisconnectReason } from '../errors.js';
import { chunk, LAST_CHUNK, type CustomDisconnect, type StreamCodec } from '../protocol/frames.js';
import { parseCursor } from '../protocol/message-id.js';
import { isOwned, setOwner, type SocketOwner } from '../http/socket-owner.js';
import { httpDate } from '../http/wire.js';
import { corsHeaders, corsOrigins } from '../auth/origin.js';
import type { StreamRequest } from '../http/request.js';
import { attachSink, openSubscription } from './subscription.js';
import { BatchedWriter } from './write-batch.js';

export interface StreamContext {
  readonly node: HeraldNode;
  readonly authorizer: SubscribeAuthorizer;
  readonly config: HeraldConfig;
  /** The client behind trusted proxies (http/client-address.ts). */
  readonly clientAddress?: ClientAddress;
}

/** A streaming transport: picks its codec (chunked or not) for a request. */
export interface StreamTransport {
  readonly name: string;
  /** The codec for a connection of `channels` channels. */
  codec(chunked: boolean, channels: number, req: StreamRequest): StreamCodec;
  /** The resume cursor the client sent (docs/protocol.md), or undefined. */
  cursorOf(req: StreamRequest): string | undefined;
  /** Resume mode even without a cursor (SSE: every event must carry a position to come back with). */
  readonly alwaysResume: boolean;
  /**
   * Set where a broker outage must not be answered with a status (SSE: a standard EventSource never retries after a
   * non-200): the stream is answered 200 with this `retry:` hint (ms) and a `broker_unavailable` disconnect event,
   * then closed, so the client comes back on its own. Unset: the outage is the 503 `broker_unavailable` answer.
   */
  readonly outageRetryMs?: () => number;
}

/** `joinLeave=1` (or `true`): the client asks for join and leave events on its presence channels (docs/presence.md). */
export function wantsJoinLeave(query: URLSearchParams): boolean {
  const v = query.get('joinLeave');
  return v === '1' || v === 'true';
}

/**
 * `jsonData=1` (or `true`): message data published as JSON comes as the value in the arrays, not as its text
 * (docs/protocol.md "JSON data"). Without it, /sub, /sse and /poll lines stay exactly as they were.
 */
export function wantsJsonData(query: URLSearchParams): boolean {
  const v = query.get('jsonData');
  return v === '1' || v === 'true';
}

/** Bytes a client may send on a held stream (it should send none) before it is cut off. */
const MAX_INBOUND_AFTER_HEADERS = 4096;

/**
 * Serve one stream request. Errors before the stream starts are thrown (the caller answers them);
 * `takeOver` is called once the socket becomes the session's, before anything is written to it.
 */
export async function serveStream(
  ctx: StreamContext,
  transport: StreamTransport,
  req: StreamRequest,
  takeOver: () => void,
): Promise<void> {
  if (req.method !== 'GET') throw new HeraldError('method_not_allowed', 'use GET');
  // Also here: streams read by the front reader never pass the router's check.
  checkDevHost(ctx.config, req.header('host'));
  // A body would sit unread in front of the stream: refused on both readers alike (the front reader passes it here).
  if (Number(req.header('content-length') ?? 0) !== 0 || req.header('transfer-encoding') !== undefined) {
    throw new HeraldError('bad_request', 'a stream request has no body');
  }
  const chunked = req.httpVersion !== '1.0';
  const { authorizer, config } = ctx;
  let codec: StreamCodec | undefined;
  let session: Session;
  try {
    ({ session } = await openSubscription(ctx.node, {
      transport: transport.name,
      remoteAddress: req.remoteAddress,
      maxQueueBytes: config.maxQueueBytes,
      authorize: () => authorizer.authorize(authorizer.credentialsOf(req, transport.name, config.tokenCookie)),
      open: (auth) => {
        codec = transport.codec(chunked, auth.targets.length, req);
        const cursor = transport.cursorOf(req);
        const since = cursor === undefined ? undefined : parseCursor(cursor, auth.targets.length);
        const resume: ResumeRequest | undefined =
          since || transport.alwaysResume ? { since: since ?? auth.targets.map(() => undefined) } : undefined;
        return { codec, resume, options: wantsJoinLeave(req.query) ? { joinLeave: true } : {} };
      },
    }));
  } catch (err) {
    const retryMs = transport.outageRetryMs?.();
    if (!codec || retryMs === undefined || !(err instanceof HeraldError) || err.code !== 'broker_unavailable') throw err;
    if (req.socket.destroyed || !req.socket.writable) return;
    takeOver();
    answerOutage(req.socket, codec, chunked, retryMs, corsHeaders(req.header('origin'), corsOrigins(config)));
    return;
  }
  const socket = req.socket;
  // Set: open() ran before the session could open.
  const opened = codec!;
  attachSink(session, socket.destroyed || !socket.writable, () => {
    // node:http will not hand over a socket that still owes an earlier answer (a request pipelined behind another
    // stream): takeOver throws, this stream cannot start, and its subscriptions must not outlive the request.
    takeOver();
    const sink = new SocketSink(socket, session, opened);
    socket.write(responseHead(opened, chunked, corsHeaders(req.header('origin'), corsOrigins(config))));
    if (opened.preamble.length > 0) socket.write(opened.preamble);
    return sink;
  });
}

/**
 * The broker stayed down through `brokerWaitMs`: a 200 stream that says so and ends at once, so the client retries
 * after `retryMs` (EventSource keeps its Last-Event-ID, so the retry resumes where it stood). Nothing is subscribed.
 */
function answerOutage(socket: Socket, codec: StreamCodec, chunked: boolean, retryMs: number, cors: Record<string, string>): void {
  const frame = (text: string): Buffer => (chunked ? chunk(text) : Buffer.from(text, 'utf8'));
  setOwner(socket, new ClosingSocket(socket));
  socket.resume();
  socket.write(responseHead(codec, chunked, cors));
  socket.write(frame(`retry: ${retryMs}\n\n`));
  socket.write(codec.encodeDisconnect('broker_unavailable'));
  if (chunked) socket.write(LAST_CHUNK);
  socket.end();
  // As after an error answer: a client that never closes its side is not waited for.
  socket.setTimeout(5000, () => socket.destroy());
}

/** A socket whose answer is written and ending: what the client still sends is dropped; its FIN closes it. */
class ClosingSocket implements SocketOwner {
  constructor(private readonly socket: Socket) {
    if (!isOwned(socket)) {
      socket.removeAllListeners('data');
      socket.removeAllListeners('timeout');
      socket.removeAllListeners('end');
    }
  }
  onData(): void {}
  onEnd(): void {
    this.socket.destroy();
  }
  onError(): void {
    this.socket.destroy();
  }
  onClose(): void {}
}

function responseHead(codec: StreamCodec, chunked: boolean, extra: Record<string, string>): string {
  let head =
    'HTTP/1.1 200 OK\r\n' +
    `Content-Type: ${codec.contentType}\r\n` +
    'Cache-Control: no-cache, no-store\r\n' +
    // Tells nginx not to buffer the stream.
    'X-Accel-Buffering: no\r\n' +
    'X-Content-Type-Options: nosniff\r\n' +
    `Date: ${httpDate()}\r\n`;
  // Connection: close even when chunked: a stream's socket is closed when it ends (after its last words), so a
  // client's connection pool must not take it back for another request (it would race the server's FIN).
  head += chunked ? 'Transfer-Encoding: chunked\r\nConnection: close\r\n' : 'Connection: close\r\n';
  for (const [k, v] of Object.entries(extra)) head += `${k}: ${v}\r\n`;
  return head + '\r\n';
}

/**
 * A held stream's socket. Whoever read the request has stopped reading; what the client still sends is discarded up
 * to a small bound, and a close releases the session. The socket's listeners are the shared ones of
 * socket-owner.ts: a held connection costs this one small object, not a set of closures.
 */
class SocketSink extends BatchedWriter implements SessionSink, SocketOwner {
  private inbound = 0;

  constructor(socket: Socket, private readonly session: Session, private readonly codec: StreamCodec) {
    super(socket);
    if (!isOwned(socket)) {
      // Taken over from node:http (a stream on a kept-alive connection): its reader and timers come off.
      socket.removeAllListeners('data');
      socket.removeAllListeners('timeout');
      socket.removeAllListeners('end');
      socket.setTimeout(0);
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    setOwner(socket, this);
    socket.resume();
  }

  onData(d: Buffer): void {
    this.inbound += d.length;
    if (this.inbound > MAX_INBOUND_AFTER_HEADERS) this.socket.destroy();
  }
  /** A client that half-closes its side has gone (node:http sockets allow half-open connections). */
  onEnd(): void {
    this.socket.destroy();
  }
  onError(): void {
    this.socket.destroy();
  }
  onClose(): void {
    this.session.clientGone();
  }

  /** Frames leave with the turn's batch (write-batch.ts): one system call for what is due to this socket. */
  write(bytes: Buffer): void {
    this.batch(bytes);
  }

  bufferedBytes(): number {
    // The turn's batch (at most BATCH_MAX_BYTES) is not counted: see write-batch.ts.
    return this.socket.writableLength;
  }

  /** `bytesWritten` counts queued bytes too; what left the queue is what the kernel took. */
  sentBytes(): number {
    return this.socket.bytesWritten - this.socket.writableLength;
  }

  /** The codec's heartbeat line, through the session so it counts against the queue bound like any frame. */
  heartbeat(): void {
    this.session.write(this.codec.heartbeat);
  }

  /**
   * The last words go after everything queued, even past `maxQueueBytes` (a slow client gets whole messages, then
   * its reason). A client that never reads them is cut by the node's ticker (`closeGraceMs`), not a timer here.
   */
  close(reason: DisconnectReason, custom?: CustomDisconnect): void {
    this.flushBatch();
    this.socket.write(this.codec.encodeDisconnect(reason, custom));
    if (this.codec.chunked) this.socket.write(LAST_CHUNK);
    this.socket.end();
  }

  destroy(): void {
    this.drop();
    this.socket.destroy();
  }
}
