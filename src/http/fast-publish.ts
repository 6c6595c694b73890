/**
 * The publish fast path: a connection whose request is `POST /api/publish HTTP/1.1` is served here, request after
 * request, instead of by node:http.
 *
 * Why: a backend publishing at a high rate pipelines its requests on a few keep-alive connections. node:http answers
 * them one at a time, each with its own write, and each write on loopback costs more than the publish itself. Here
 * every request already read is started at once (publishes reach the broker in the order they arrived), and the
 * answers go out in order, in one write per batch.
 *
 * Only the plain case is handled: `Content-Length` bodies, no `Transfer-Encoding`, no `Expect`. Anything else, and
 * any other request on the same connection, is handed to node:http with the bytes not yet consumed, at a request
 * boundary, so node:http's full HTTP/1.1 handling answers it.
 */
import type { Socket } from 'node:net';
import type { SocketOwner } from '../transport/socket-owner.js';
import { releaseSocket, setOwner } from '../transport/socket-owner.js';

export const PUBLISH_REQUEST_LINE = 'POST /api/publish HTTP/1.1';

export interface FastPublishOptions {
  readonly handle: (
    authorization: string | undefined,
    remoteAddress: string | undefined,
    body: Buffer,
    header: (name: string) => string | undefined,
  ) => Promise<{ status: number; json: unknown; code?: string }>;
  /** The answer for a request refused on its headers alone (it is sent before the body is read), or undefined. */
  readonly refuseEarly: (
    authorization: string | undefined,
    remoteAddress: string | undefined,
    header: (name: string) => string | undefined,
  ) => { status: number; json: unknown; code: string } | undefined;
  /** Give the connection to node:http (the bytes not yet consumed were pushed back onto the socket). */
  readonly handOff: (socket: Socket) => void;
  readonly maxHeaderBytes: number;
  readonly maxBodyBytes: number;
  readonly headersTimeoutMs: number;
  readonly onRefused: (code: string) => void;
}

const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;
/** Answers owed at once on one connection before it stops reading (a bound on work queued per publisher). */
const MAX_IN_FLIGHT = 256;
/** A publisher connection idle this long is closed, as node:http's keep-alive timeout would. */
const IDLE_TIMEOUT_MS = 5000;

const REASONS: Record<number, string> = {
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  413: 'Payload Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export class FastPublisher {
  constructor(readonly options: FastPublishOptions) {}

  /** Take a connection whose first request line is PUBLISH_REQUEST_LINE; `bytes` is everything read so far. */
  adopt(socket: Socket, bytes: Buffer): void {
    const conn = new PublishConnection(this.options, socket, bytes);
    setOwner(socket, conn);
    // Publishers are few (backends), so a per-connection idle timer is affordable here, unlike on held streams.
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
    conn.process();
  }
}

class PublishConnection implements SocketOwner {
  private buffer: Buffer;
  /** The chain of answers in request order. */
  private tail: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private corked = false;
  private closing = false;
  private partialSince = 0;

  constructor(private readonly o: FastPublishOptions, private readonly socket: Socket, bytes: Buffer) {
    this.buffer = bytes;
  }

  onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    this.process();
  }
  onEnd(): void {
    // The client is done sending; answer what it asked, then close.
    this.closing = true;
    this.tail.then(() => this.socket.end(), () => this.socket.destroy());
  }
  onError(): void {
    this.socket.destroy();
  }
  onClose(): void {
    this.buffer = Buffer.alloc(0);
  }

  /** Start every complete request in the buffer; hand off or wait at the first that is not one. */
  process(): void {
    while (this.buffer.length > 0 && !this.closing) {
      if (this.inFlight >= MAX_IN_FLIGHT) {
        this.socket.pause();
        return;
      }
      const lineEnd = this.buffer.indexOf('\r\n');
      if (lineEnd < 0) {
        if (this.buffer.length > PUBLISH_REQUEST_LINE.length + 2) return this.handOff();
        return this.waitForMore();
      }
      if (this.buffer.toString('latin1', 0, lineEnd) !== PUBLISH_REQUEST_LINE) return this.handOff();
      const headEnd = this.buffer.indexOf(HEAD_END);
      if (headEnd < 0) {
        if (this.buffer.length > this.o.maxHeaderBytes) return this.handOff();
        return this.waitForMore();
      }
      const headers = parseHeaders(this.buffer.toString('latin1', lineEnd + 2, headEnd));
      const length = headers?.get('content-length');
      if (!headers || headers.has('transfer-encoding') || headers.has('expect') || length === undefined || !/^\d{1,10}$/.test(length)) {
        return this.handOff();
      }
      const bodyStart = headEnd + 4;
      const bodyLength = Number(length);
      const header = (name: string): string | undefined => headers.get(name);
      const refused = this.o.refuseEarly(headers.get('authorization'), this.socket.remoteAddress, header);
      if (refused) {
        // Refused before its body is read: answer and close, so the body can never be taken for a next request.
        this.closing = true;
        this.answer(Promise.resolve(refused), true);
        return;
      }
      if (bodyLength > this.o.maxBodyBytes) {
        // The body will not be read: answer and close, as node:http's publish route does.
        this.closing = true;
        this.answer(Promise.resolve({ status: 413, json: tooLarge(this.o.maxBodyBytes), code: 'payload_too_large' }), true);
        return;
      }
      if (this.buffer.length < bodyStart + bodyLength) return this.waitForMore();
      const body = this.buffer.subarray(bodyStart, bodyStart + bodyLength);
      this.buffer = this.buffer.subarray(bodyStart + bodyLength);
      this.partialSince = 0;
      const close = /\bclose\b/i.test(headers.get('connection') ?? '');
      if (close) this.closing = true;
      this.answer(this.o.handle(headers.get('authorization'), this.socket.remoteAddress, Buffer.from(body), header), close);
    }
  }

  /** Queue an answer behind the ones before it; the socket stays corked until the queue is empty. */
  private answer(result: Promise<{ status: number; json: unknown; code?: string }>, close: boolean): void {
    if (!this.corked) {
      this.socket.cork();
      this.corked = true;
    }
    this.inFlight++;
    this.tail = this.tail
      .then(() => result)
      .then((r) => {
        if (r.code) this.o.onRefused(r.code);
        const text = JSON.stringify(r.json);
        this.socket.write(
          `HTTP/1.1 ${r.status} ${REASONS[r.status] ?? 'Error'}\r\n` +
            'Content-Type: application/json; charset=utf-8\r\n' +
            `Content-Length: ${Buffer.byteLength(text)}\r\n` +
            `Cache-Control: no-store\r\n${close ? 'Connection: close\r\n' : ''}\r\n${text}`,
        );
        this.inFlight--;
        if (close) {
          this.uncork();
          this.socket.end();
        } else if (this.inFlight === 0) {
          this.uncork();
          if (this.socket.isPaused()) {
            this.socket.resume();
            this.process();
          }
        }
      })
      .catch(() => {
        this.socket.destroy();
      });
  }

  private uncork(): void {
    if (this.corked) {
      this.corked = false;
      this.socket.uncork();
    }
  }

  /** A request is only partly here. Its head must arrive within the header timeout, as on node:http. */
  private waitForMore(): void {
    const now = Date.now();
    if (this.partialSince === 0) this.partialSince = now;
    else if (now - this.partialSince > this.o.headersTimeoutMs) this.socket.destroy();
  }

  /** Give the rest of the connection to node:http once every answer owed is written. */
  private handOff(): void {
    this.closing = true;
    const socket = this.socket;
    socket.pause();
    this.tail.then(() => {
      this.uncork();
      if (socket.destroyed) return;
      releaseSocket(socket);
      socket.setTimeout(0);
      socket.unshift(this.buffer);
      this.buffer = Buffer.alloc(0);
      this.o.handOff(socket);
      socket.resume();
    }, () => socket.destroy());
  }
}

function parseHeaders(block: string): Map<string, string> | undefined {
  const headers = new Map<string, string>();
  for (const line of block.split('\r\n')) {
    const h = HEADER_LINE.exec(line);
    if (!h || h[1] === undefined || h[2] === undefined) return undefined;
    const name = h[1].toLowerCase();
    // A repeated Content-Length (or any repeated header) is left to node:http's stricter rules.
    if (headers.has(name)) return undefined;
    headers.set(name, h[2]);
  }
  return headers;
}

function tooLarge(max: number): unknown {
  return { error: { code: 'payload_too_large', message: `body over ${max} bytes` } };
}
