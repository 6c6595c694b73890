/**
 * The front reader: the first bytes of every new connection pass through here.
 *
 * A request for a stream route (`GET /sub`, `GET /sse`) is read by this small, strict reader and served straight on
 * the raw socket; anything else is handed, with the bytes read so far, to node:http. Why: a held stream should cost
 * as little memory as a bare socket, while node:http keeps a parser, an IncomingMessage and a ServerResponse alive
 * for the whole life of a connection. Everything that is not a fresh stream request (publish API, health, metrics,
 * WebSocket upgrades, streams on kept-alive connections) keeps node:http's full HTTP/1.1 handling.
 *
 * The head is read by `parseHead` (http/wire.ts), the rules the publish fast path shares: what llhttp refuses is
 * refused here with the same status; what is not the plain case (absolute or asterisk form, `Transfer-Encoding`, a
 * body, an upgrade, HTTP/0.9 or 2.0 ...) is handed to node:http, so that it answers as it would have anyway.
 *
 * The header clock (`headersTimeoutMs`) runs from the connection's accept, whoever ends up reading the request: a
 * connection handed to node:http, or to the publish fast path, keeps its accept time (node:http's own clock would
 * start over at the hand-off, so a client could stretch its head over twice the timeout).
 */
import type { Socket } from 'node:net';
import { HeraldError, toHeraldError } from '../errors.js';
import type { ClientAddress } from './client-address.js';
import type { FastPublisher } from './fast-publish.js';
import { queryParams, type StreamRequest } from './request.js';
import { ByteQueue } from './byte-queue.js';
import { pathOf, readerFor } from './routes.js';
import { releaseSocket, setOwner, type SocketOwner } from './socket-owner.js';
import { headWorthParsing, parseHead, parseRequestLine, refuseAndClose, type RequestHead } from './wire.js';

export interface FrontOptions {
  /** Serve a parsed stream request; rejects with a HeraldError answered before the stream starts. */
  readonly serve: (req: StreamRequest, takeOver: () => void) => Promise<void>;
  /** Serves connections that start with `POST /api/publish` (src/http/fast-publish.ts). */
  readonly fastPublish?: FastPublisher;
  /** Give a connection to node:http (its bytes read so far were pushed back onto the socket). */
  readonly handOff: (socket: Socket) => void;
  readonly maxUrlBytes: number;
  readonly maxHeaderBytes: number;
  readonly headersTimeoutMs: number;
  /** Called for every request refused here, with its error code (for metrics) and its path when it was read. */
  readonly onRefused: (code: string, path?: string, remoteAddress?: string) => void;
  /** The client behind trusted proxies (http/client-address.ts); without it the peer is the client. */
  readonly clientAddress?: ClientAddress;
}

export class FrontReader {
  private readonly pending = new Set<PendingConnection>();
  /**
   * Connections handed to node:http before their first request head was complete: their accept time, and the bytes
   * written on them by then (once node:http writes an answer, it had a head, whatever event it emitted for it).
   */
  private readonly handedOff = new Map<Socket, { since: number; written: number }>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly options: FrontOptions) {}

  /** A new connection: read its first request line to see whose it is. */
  accept(socket: Socket): void {
    const conn = new PendingConnection(this, socket);
    this.pending.add(conn);
    setOwner(socket, conn);
  }

  /** Sweep connections that have not finished their request head in time: one timer for all of them. */
  start(): void {
    const every = Math.max(100, Math.min(1000, Math.floor(this.options.headersTimeoutMs / 4)));
    this.sweeper = setInterval(() => this.sweep(Date.now()), every);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    for (const conn of this.pending) conn.socket.destroy();
    this.pending.clear();
    this.handedOff.clear();
  }

  /** node:http has a complete request head on `socket` (its 'request' or 'upgrade' event): its clock is node's now. */
  headComplete(socket: Socket): void {
    if (this.handedOff.size > 0) this.handedOff.delete(socket);
  }

  /** Give `socket` to node:http; its header clock keeps running from `since` until node:http has a head. */
  handToNode(socket: Socket, since: number): void {
    this.handedOff.set(socket, { since, written: socket.bytesWritten });
    this.options.handOff(socket);
  }

  private sweep(now: number): void {
    const timeout = this.options.headersTimeoutMs;
    for (const conn of this.pending) {
      if (now - conn.since >= timeout) this.refuse(conn, new HeraldError('request_timeout', 'request headers not received in time'));
    }
    for (const [socket, { since, written }] of this.handedOff) {
      if (socket.destroyed || !socket.writable || socket.bytesWritten > written) this.handedOff.delete(socket);
      else if (now - since >= timeout) {
        this.handedOff.delete(socket);
        this.options.onRefused('request_timeout');
        refuseAndClose(socket, new HeraldError('request_timeout', 'request headers not received in time'));
      }
    }
    this.options.fastPublish?.sweep(now);
  }

  /** @internal Called by a pending connection once its fate is known. */
  forget(conn: PendingConnection): void {
    this.pending.delete(conn);
  }

  /** @internal */
  received(conn: PendingConnection): void {
    const o = this.options;
    const buf = conn.view();
    if (!headWorthParsing(buf, conn.scanned, o)) return;
    conn.scanned = buf.length;
    if (!conn.isStream) {
      const line = parseRequestLine(buf, o);
      if (line.kind === 'partial') return;
      if (line.kind === 'refuse') return this.refuse(conn, line.error);
      if (line.kind === 'defer') return this.giveToNode(conn);
      // The route table (http/routes.ts) says which reader serves the request line.
      const reader = readerFor(line.method, pathOf(line.target));
      if (reader === 'fast-publish' && o.fastPublish && line.version === '1.1') {
        this.forget(conn);
        conn.done = true;
        return o.fastPublish.adopt(conn.socket, conn.takeAll(), conn.since);
      }
      if (reader !== 'front') return this.giveToNode(conn);
      conn.isStream = true;
    }
    const verdict = parseHead(buf, o);
    if (verdict.kind === 'partial') return;
    if (verdict.kind === 'refuse') return this.refuse(conn, verdict.error);
    // Not the plain case: node:http's route answers it as it would anyway.
    if (verdict.kind === 'defer') return this.giveToNode(conn);
    this.forget(conn);
    conn.done = true;
    const req = streamRequest(conn.socket, verdict.head, o);
    conn.socket.pause();
    let takenOver = false;
    o.serve(req, () => {
      takenOver = true;
    }).catch((err: unknown) => {
      if (!takenOver) this.refuse(conn, err, req.path);
      else conn.socket.destroy();
    });
  }

  private giveToNode(conn: PendingConnection): void {
    this.forget(conn);
    const socket = conn.socket;
    releaseSocket(socket);
    socket.pause();
    socket.unshift(conn.takeAll());
    this.handToNode(socket, conn.since);
    socket.resume();
  }

  private refuse(conn: PendingConnection, err: unknown, path?: string): void {
    this.forget(conn);
    const e = toHeraldError(err);
    this.options.onRefused(e.code, path, conn.socket.remoteAddress);
    refuseAndClose(conn.socket, e);
  }
}

/** A connection whose first request is still being read. */
class PendingConnection implements SocketOwner {
  readonly since = Date.now();
  isStream = false;
  /** The head was read: what follows is not the front reader's to parse. */
  done = false;
  /** Bytes already looked at by the parser (see headWorthParsing: a dribbled head is not parsed per byte). */
  scanned = 0;
  private readonly input = new ByteQueue();

  constructor(private readonly front: FrontReader, readonly socket: Socket) {}

  onData(chunk: Buffer): void {
    // Bytes after the head of a stream request (the stream is starting): the session's owner takes over soon.
    if (this.done) return;
    this.input.push(chunk);
    this.front.received(this);
  }
  onEnd(): void {
    this.front.forget(this);
    this.socket.destroy();
  }
  onError(): void {
    this.front.forget(this);
    this.socket.destroy();
  }
  onClose(): void {
    this.front.forget(this);
  }

  /** Everything read so far, without copying (valid until the next read). */
  view(): Buffer {
    return this.input.view();
  }

  /** Everything read so far, as a Buffer of its own (the connection changes hands). */
  takeAll(): Buffer {
    return this.input.takeAll();
  }
}

function streamRequest(socket: Socket, head: RequestHead, o: FrontOptions): StreamRequest {
  const header = (name: string): string | undefined => head.headers.get(name);
  return {
    method: head.method,
    path: head.path,
    query: queryParams(head.rawQuery),
    header,
    remoteAddress: o.clientAddress ? o.clientAddress.of(socket.remoteAddress, header) : (socket.remoteAddress ?? 'unknown'),
    httpVersion: head.version,
    socket,
  };
}
