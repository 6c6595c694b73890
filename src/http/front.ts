/**
 * The front reader: the first bytes of every new connection pass through here.
 *
 * A request for a stream route (`GET /sub`, `GET /sse`) is read by this small, strict reader and served straight on
 * the raw socket; anything else is handed, with the bytes read so far, to node:http. Why: a held stream should cost
 * as little memory as a bare socket, while node:http keeps a parser, an IncomingMessage and a ServerResponse alive
 * for the whole life of a connection. Everything that is not a fresh stream request (publish API, health, metrics,
 * WebSocket upgrades, streams on kept-alive connections) keeps node:http's full HTTP/1.1 handling.
 *
 * The reader accepts only what it must: `GET <origin-form target> HTTP/1.0|1.1`, CRLF line ends, token header
 * names, no folded lines, no body. Anything else gets a 400 and the connection is closed. Its rules are llhttp's
 * (what node:http would answer), with one deliberate difference: raw UTF-8 in the target is taken (curl sends it).
 *
 * The header clock (`headersTimeoutMs`) runs from the connection's accept, whoever ends up reading the request: a
 * connection handed to node:http, or to the publish fast path, keeps its accept time (node:http's own clock would
 * start over at the hand-off, so a client could stretch its head over twice the timeout).
 */
import type { Socket } from 'node:net';
import { HeraldError, toHeraldError } from '../errors.js';
import type { ClientAddress } from './client-address.js';
import { isPublishRequestLine, type FastPublisher } from './fast-publish.js';
import { queryParams, type StreamRequest } from './request.js';
import { releaseSocket, setOwner, type SocketOwner } from './socket-owner.js';

export interface FrontOptions {
  /** Paths served by the front reader itself, e.g. `/sub`. */
  readonly streamPaths: ReadonlySet<string>;
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

const MAX_HEADER_LINES = 100;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
// The target: VCHAR and obs-text, as llhttp allows (no CTL, SP, DEL: a CR or TAB in it is a 400).
const REQUEST_LINE = /^GET (\/[!-~\u0080-\u00ff]*) HTTP\/1\.([01])$/;
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;
// eslint-disable-next-line no-control-regex
const BAD_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;

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
        writeError(socket, new HeraldError('request_timeout', 'request headers not received in time'));
        socket.destroySoon();
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
    if (!conn.isStream) {
      const line = conn.firstLine();
      if (line === undefined) {
        // No full request line yet: a stream request line can't be longer than the URL bound plus a little.
        if (conn.bytes > o.maxUrlBytes + 64) this.giveToNode(conn);
        return;
      }
      if (o.fastPublish && isPublishRequestLine(line)) {
        this.forget(conn);
        conn.done = true;
        return o.fastPublish.adopt(conn.socket, conn.take(), conn.since);
      }
      const path = REQUEST_LINE.exec(line)?.[1]?.split('?')[0];
      if (path === undefined || !o.streamPaths.has(path)) return this.giveToNode(conn);
      conn.isStream = true;
    }
    const end = conn.headEnd();
    if (end < 0) {
      if (conn.bytes > o.maxUrlBytes + o.maxHeaderBytes) this.refuse(conn, new HeraldError('header_too_large'));
      return;
    }
    this.forget(conn);
    conn.done = true;
    let req: StreamRequest;
    try {
      req = parseHead(conn.socket, conn.take().toString('latin1', 0, end), o);
    } catch (err) {
      return this.refuse(conn, err);
    }
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
    socket.unshift(conn.take());
    this.handToNode(socket, conn.since);
    socket.resume();
  }

  private refuse(conn: PendingConnection, err: unknown, path?: string): void {
    this.forget(conn);
    const e = toHeraldError(err);
    this.options.onRefused(e.code, path, conn.socket.remoteAddress);
    writeError(conn.socket, e);
  }
}

/** A connection whose first request is still being read. */
class PendingConnection implements SocketOwner {
  readonly since = Date.now();
  isStream = false;
  /** The head was read: what follows is not the front reader's to parse. */
  done = false;
  bytes = 0;
  private chunks: Buffer[] = [];
  /** Seen so far: a line feed (the request line is complete), the blank line ending the head. */
  private sawLineEnd = false;
  private sawHeadEnd = false;
  /** The last bytes read, to find a CRLFCRLF split across reads without joining everything on every read. */
  private tail: Buffer = Buffer.alloc(0);

  constructor(private readonly front: FrontReader, readonly socket: Socket) {}

  onData(chunk: Buffer): void {
    // Bytes after the head of a stream request (the stream is starting): the session's owner takes over soon.
    if (this.done) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    if (!this.sawLineEnd && chunk.includes(10)) this.sawLineEnd = true;
    if (!this.sawHeadEnd) {
      const probe = this.tail.length > 0 ? Buffer.concat([this.tail, chunk]) : chunk;
      if (probe.includes(HEAD_END)) this.sawHeadEnd = true;
      this.tail = probe.subarray(Math.max(0, probe.length - 3));
    }
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

  /** The request line once a line end arrived (latin1), else undefined. */
  firstLine(): string | undefined {
    if (!this.sawLineEnd) return undefined;
    const all = this.joined();
    const nl = all.indexOf(10);
    if (nl < 0) return undefined;
    return all.toString('latin1', 0, nl > 0 && all[nl - 1] === 13 ? nl - 1 : nl);
  }

  /** Offset just past the blank line ending the head, or -1. */
  headEnd(): number {
    return this.sawHeadEnd ? this.joined().indexOf(HEAD_END) : -1;
  }

  /** Everything read so far, as one Buffer (joined once, kept joined). */
  take(): Buffer {
    return this.joined();
  }

  private joined(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }
}

function parseHead(socket: Socket, head: string, o: FrontOptions): StreamRequest {
  const lines = head.split('\r\n');
  const m = REQUEST_LINE.exec(lines[0] ?? '');
  if (!m || m[1] === undefined) throw new HeraldError('bad_request', 'malformed request line');
  const target = m[1];
  if (target.length > o.maxUrlBytes) throw new HeraldError('uri_too_long', `URL over ${o.maxUrlBytes} bytes`);
  // The header block has its own bound, however the bytes arrived (the request line is bounded by maxUrlBytes).
  if (head.length - (lines[0]?.length ?? 0) > o.maxHeaderBytes) {
    throw new HeraldError('header_too_large', `request headers over ${o.maxHeaderBytes} bytes`);
  }
  if (lines.length - 1 > MAX_HEADER_LINES) throw new HeraldError('bad_request', 'too many header lines');
  const headers = new Map<string, string>();
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const h = HEADER_LINE.exec(line);
    if (!h || h[1] === undefined || h[2] === undefined || line.includes('\n') || BAD_VALUE.test(h[2])) {
      throw new HeraldError('bad_request', 'malformed header line');
    }
    const name = h[1].toLowerCase();
    const prev = headers.get(name);
    headers.set(name, prev === undefined ? h[2] : `${prev}${name === 'cookie' ? '; ' : ', '}${h[2]}`);
  }
  const length = headers.get('content-length');
  if ((length !== undefined && length !== '0') || headers.has('transfer-encoding')) {
    throw new HeraldError('bad_request', 'a stream request has no body');
  }
  const q = target.indexOf('?');
  const header = (name: string): string | undefined => headers.get(name);
  return {
    method: 'GET',
    path: q < 0 ? target : target.slice(0, q),
    query: queryParams(q < 0 ? '' : target.slice(q + 1)),
    header,
    remoteAddress: o.clientAddress ? o.clientAddress.of(socket.remoteAddress, header) : (socket.remoteAddress ?? 'unknown'),
    httpVersion: m[2] === '0' ? '1.0' : '1.1',
    socket,
  };
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Payload Too Large',
  414: 'URI Too Long',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** Answer a refused request in the documented JSON shape and close the connection. */
function writeError(socket: Socket, e: HeraldError): void {
  if (socket.destroyed) return;
  const body = JSON.stringify(e.toJSON());
  const retry = e.retryAfterSeconds === undefined ? '' : `Retry-After: ${e.retryAfterSeconds}\r\n`;
  socket.end(
    `HTTP/1.1 ${e.status} ${REASONS[e.status] ?? 'Error'}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      retry +
      'Cache-Control: no-store\r\nConnection: close\r\n\r\n' +
      body,
  );
  socket.resume();
  // node:http sockets allow half-open connections: don't wait forever for a client that never closes its side.
  socket.setTimeout(5000, () => socket.destroy());
}
