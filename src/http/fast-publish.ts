/**
 * The publish fast path: a connection whose request is `POST /api/publish HTTP/1.1` is served here, request after
 * request, instead of by node:http.
 *
 * Why: a backend publishing at a high rate pipelines its requests on a few keep-alive connections. node:http answers
 * them one at a time, each with its own write, and each write on loopback costs more than the publish itself. Here
 * every request already read is started at once (publishes reach the broker in the order they arrived), and the
 * answers go out in order, in one write per batch.
 *
 * Only the plain case is handled: HTTP/1.1, `Content-Length` bodies, no `Transfer-Encoding`, no `Expect`. The head
 * is read by `parseHead` (http/wire.ts), the rules the front reader shares: what llhttp refuses is refused with the
 * same status, and anything that is not the plain case (or any other request on the same connection) is handed to
 * node:http with the bytes not yet consumed, at a request boundary, so node:http's full HTTP/1.1 handling answers
 * it. A head not here within `headersTimeoutMs` of the connection's accept (or of the request's first byte, after
 * the first) is 408.
 *
 * Bounds: at most MAX_IN_FLIGHT answers owed per connection, and reading stops while more than MAX_UNSENT_BYTES of
 * answers wait unsent (a client that pipelines and never reads is held by TCP flow control, not by server memory).
 */
import type { Socket } from 'node:net';
import type { ApiKeyScope } from '../auth/api-key.js';
import { HeraldError, RETRY_AFTER_SECONDS } from '../errors.js';
import type { PublishAnswer, PublishBody, PublishHead } from './publish.js';
import { queryParams } from './request.js';
import type { SocketOwner } from './socket-owner.js';
import { releaseSocket, setOwner } from './socket-owner.js';
import { ByteQueue } from './byte-queue.js';
import { pathOf, readerFor } from './routes.js';
import { headWorthParsing, parseHead, writeResponse } from './wire.js';

/** `Retry-After` (seconds) on a publish refused because the node drains: the balancer has another node by then. */
export const DRAIN_RETRY_AFTER_SECONDS = 1;

export interface FastPublishOptions {
  /** The request head's credentials (PublishApi.authenticate): a scope, or the refusal sent before the body is read. */
  readonly authenticate: (head: PublishHead) => { scope: ApiKeyScope } | { refused: PublishAnswer };
  /** Publish a request whose head was authenticated (PublishApi.publish); never rejects. */
  readonly publish: (scope: ApiKeyScope, body: PublishBody) => Promise<PublishAnswer>;
  /**
   * Give the connection to node:http (the bytes not yet consumed were pushed back onto the socket). `since` is when
   * the request it is in the middle of began, so that node:http's header clock does not start over.
   */
  readonly handOff: (socket: Socket, since: number) => void;
  readonly maxUrlBytes: number;
  readonly maxHeaderBytes: number;
  readonly maxBodyBytes: number;
  readonly headersTimeoutMs: number;
  /** A whole request (head and body) must arrive within this, as node:http's `requestTimeout`. */
  readonly requestTimeoutMs: number;
  readonly onRefused: (code: string) => void;
  /** Told of every answer written (the access log): its status, bytes and milliseconds since it was queued. */
  readonly onAnswered?: (status: number, bytes: number, ms: number, remoteAddress: string | undefined) => void;
}

/** Answers owed at once on one connection before it stops reading (a bound on work queued per publisher). */
const MAX_IN_FLIGHT = 256;
/** Bytes of answers written but not yet taken by the kernel, beyond which the connection stops reading. */
const MAX_UNSENT_BYTES = 64 * 1024;
/** A publisher connection idle this long is closed, as node:http's keep-alive timeout would. */
const IDLE_TIMEOUT_MS = 5000;

export class FastPublisher {
  private readonly connections = new Set<PublishConnection>();
  private draining = false;

  constructor(readonly options: FastPublishOptions) {}

  /** Whether a request is the fast path's: its route's reader (http/routes.ts), in HTTP/1.1. */
  takes(method: string, target: string, version: string): boolean {
    return version === '1.1' && readerFor(method, pathOf(target)) === 'fast-publish';
  }

  /**
   * Take a connection whose first request line is a publish (`takes`); `bytes` is everything read so far and
   * `since` the connection's accept time (the first request's header clock runs from there).
   */
  adopt(socket: Socket, bytes: Buffer, since: number): void {
    const conn = new PublishConnection(this, socket, bytes, since);
    this.connections.add(conn);
    setOwner(socket, conn);
    // Publishers are few (backends), so a per-connection idle timer is affordable here, unlike on held streams.
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
    conn.process();
  }

  get isDraining(): boolean {
    return this.draining;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Refuse requests not received in time (408). Called by the front reader's sweeper: no timer per connection. */
  sweep(now: number): void {
    for (const conn of this.connections) conn.sweep(now);
  }

  /**
   * The node drains: idle connections are closed now, busy ones after the last answer owed (which says
   * `Connection: close`), and every request not yet started is refused with 503 `unavailable` + `Retry-After`.
   */
  drain(): void {
    this.draining = true;
    for (const conn of [...this.connections]) conn.drain();
  }

  /** @internal */
  forget(conn: PublishConnection): void {
    this.connections.delete(conn);
  }
}

/** The request being read once its head is parsed (its body may still be on its way). */
interface PendingRequest {
  readonly scope: ApiKeyScope;
  readonly query: URLSearchParams;
  readonly header: (name: string) => string | undefined;
  readonly close: boolean;
  readonly bodyStart: number;
  readonly bodyLength: number;
}

class PublishConnection implements SocketOwner {
  private readonly input = new ByteQueue();
  /** The chain of answers in request order. */
  private tail: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private corked = false;
  /** No more requests are read here: the connection closes, or goes to node:http, once the answers owed are out. */
  private closing = false;
  private handingOff = false;
  /** Reading stopped: too many answers owed, or too many of their bytes unsent. */
  private paused = false;
  private waitingForDrain = false;
  /** When the request being read began (the accept time for the first); 0 when none is partly here. */
  private requestSince: number;
  private request: PendingRequest | undefined;
  /** Bytes of the queue already searched for the end of the head, so a dribbled head is searched once. */
  private scanned = 0;
  private readonly onDrain = (): void => {
    this.waitingForDrain = false;
    this.maybeResume();
  };

  constructor(private readonly publisher: FastPublisher, private readonly socket: Socket, bytes: Buffer, since: number) {
    this.input.push(bytes);
    this.requestSince = since;
  }

  onData(chunk: Buffer): void {
    // Bytes after a refusal are read and dropped: they must never be taken for a request, nor pile up. (A hand-off
    // pauses the socket, so its bytes stay queued for node:http.)
    if (this.closing && !this.handingOff) return;
    this.input.push(chunk);
    if (this.closing) return;
    // A body still on its way: nothing to parse until all of it is here.
    if (this.request && this.input.length < this.request.bodyStart + this.request.bodyLength) return;
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
    this.publisher.forget(this);
    this.input.clear();
  }

  /** Start every complete request queued; refuse, hand off or wait at the first that is not one. */
  process(): void {
    const o = this.publisher.options;
    while (!this.closing && this.input.length > 0) {
      if (this.inFlight >= MAX_IN_FLIGHT || this.socket.writableLength > MAX_UNSENT_BYTES) return this.pauseReading();
      if (this.requestSince === 0) this.requestSince = Date.now();
      const buf = this.input.view();
      let request = this.request;
      if (!request) {
        if (!headWorthParsing(buf, this.scanned, o)) return;
        this.scanned = buf.length;
        const verdict = parseHead(buf, o);
        if (verdict.kind === 'partial') return;
        if (verdict.kind === 'refuse') return this.refuse(verdict.error);
        if (verdict.kind === 'defer') return this.handOff();
        const head = verdict.head;
        if (!this.publisher.takes(head.method, head.target, head.version)) return this.handOff();
        if (this.publisher.isDraining) return this.refuseDraining();
        const header = (name: string): string | undefined => head.headers.get(name);
        // Two Authorization fields are refused there, after the --dev Host check, as on node:http's path.
        const authorizationFields = head.repeated.has('authorization') ? 2 : head.headers.has('authorization') ? 1 : 0;
        const admitted = o.authenticate({ authorization: header('authorization'), authorizationFields, remoteAddress: this.socket.remoteAddress, header });
        // Refused before its body is read: answer and close, so the body can never be taken for a next request.
        if ('refused' in admitted) return this.refuseWith(admitted.refused);
        if (head.contentLength > o.maxBodyBytes) {
          // The body will not be read: answer and close, as node:http's publish route does.
          return this.refuse(new HeraldError('payload_too_large', `body over ${o.maxBodyBytes} bytes`));
        }
        const query = queryParams(head.rawQuery);
        request = this.request = { scope: admitted.scope, query, header, close: !head.keepAlive, bodyStart: head.length, bodyLength: head.contentLength };
      }
      const end = request.bodyStart + request.bodyLength;
      if (buf.length < end) return;
      if (this.publisher.isDraining) return this.refuseDraining();
      const body = Buffer.from(buf.subarray(request.bodyStart, end));
      this.input.consume(end);
      this.request = undefined;
      this.scanned = 0;
      this.requestSince = 0;
      if (request.close) this.closing = true;
      const h = request.header;
      const published = o.publish(request.scope, { bytes: body, query: request.query, contentType: h('content-type'), idempotencyKey: h('idempotency-key') });
      this.answer(published, request.close);
    }
  }

  /** @internal A request that has not arrived in time gets 408 and the connection closes. */
  sweep(now: number): void {
    // Bytes waiting because this side stopped reading are not the client's delay.
    if (this.closing || this.paused || this.requestSince === 0) return;
    const o = this.publisher.options;
    const limit = this.request ? o.requestTimeoutMs : o.headersTimeoutMs;
    if (now - this.requestSince >= limit) {
      this.refuse(new HeraldError('request_timeout', this.request ? 'request body not received in time' : 'request headers not received in time'));
    }
  }

  /** @internal See FastPublisher.drain. */
  drain(): void {
    if (this.closing || this.inFlight > 0) return; // a busy connection closes after its last answer (see answer)
    if (this.input.length === 0) {
      this.closing = true;
      this.socket.destroySoon();
      return;
    }
    // A request is partly or wholly here: once its head is, it gets its 503 (the header timeout bounds the wait).
    this.process();
  }

  private refuseDraining(): void {
    this.refuse(new HeraldError('unavailable', 'node is draining: retry on another node'), { 'Retry-After': DRAIN_RETRY_AFTER_SECONDS });
  }

  /** Answer `err` after the answers owed, then close: what follows this request is not read. */
  private refuse(err: HeraldError, extraHeaders: Readonly<Record<string, string | number>> = {}): void {
    this.refuseWith({ status: err.status, json: err.toJSON(), code: err.code }, extraHeaders);
  }

  private refuseWith(answer: PublishAnswer, extraHeaders: Readonly<Record<string, string | number>> = {}): void {
    this.closing = true;
    this.answer(Promise.resolve(answer), true, extraHeaders);
  }

  /** Queue an answer behind the ones before it; the socket stays corked until the queue is empty. */
  private answer(result: Promise<PublishAnswer>, close: boolean, extraHeaders: Readonly<Record<string, string | number>> = {}): void {
    if (!this.corked) {
      this.socket.cork();
      this.corked = true;
    }
    this.inFlight++;
    const queuedAt = this.publisher.options.onAnswered ? performance.now() : 0;
    this.tail = this.tail
      .then(() => result)
      .then((r) => {
        if (r.code) this.publisher.options.onRefused(r.code);
        this.inFlight--;
        // While the node drains, the last answer owed ends the connection.
        const last = close || (this.publisher.isDraining && this.inFlight === 0 && !this.handingOff);
        if (last) this.closing = true;
        if (this.socket.destroyed) return;
        const headers: Record<string, string | number> = { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' };
        // Every 503 (not published: broker down, draining) may be retried shortly; say when, as node:http's path does.
        if (r.status === 503) headers['Retry-After'] = RETRY_AFTER_SECONDS;
        const bytes = writeResponse(this.socket, { status: r.status, headers: { ...headers, ...extraHeaders }, body: JSON.stringify(r.json), close: last });
        this.publisher.options.onAnswered?.(r.status, bytes, Math.round(performance.now() - queuedAt), this.socket.remoteAddress);
        if (last) {
          this.uncork();
          // A half-close, as before a refusal: the client reads the answer while what it still sends is dropped.
          this.socket.end();
        } else if (this.inFlight === 0) {
          this.uncork();
          this.maybeResume();
        }
      })
      .catch(() => {
        this.socket.destroy();
      });
  }

  private pauseReading(): void {
    if (!this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    // The clock of a request not being read restarts when reading does.
    this.requestSince = 0;
    if (this.socket.writableLength > MAX_UNSENT_BYTES && !this.waitingForDrain) {
      this.waitingForDrain = true;
      this.socket.once('drain', this.onDrain);
    }
  }

  /** Read again once the answers owed are written out and the kernel has taken most of them. */
  private maybeResume(): void {
    if (!this.paused || this.closing || this.corked || this.socket.destroyed) return;
    if (this.inFlight >= MAX_IN_FLIGHT || this.socket.writableLength > MAX_UNSENT_BYTES) return this.pauseReading();
    this.paused = false;
    this.socket.resume();
    this.process();
  }

  private uncork(): void {
    if (this.corked) {
      this.corked = false;
      this.socket.uncork();
    }
  }

  /** Give the rest of the connection to node:http once every answer owed is written. */
  private handOff(): void {
    this.closing = true;
    this.handingOff = true;
    const socket = this.socket;
    const since = this.requestSince || Date.now();
    socket.pause();
    socket.off('drain', this.onDrain);
    this.tail.then(() => {
      this.uncork();
      this.publisher.forget(this);
      if (socket.destroyed) return;
      releaseSocket(socket);
      socket.setTimeout(0);
      socket.unshift(this.input.takeAll());
      this.publisher.options.handOff(socket, since);
      socket.resume();
    }, () => socket.destroy());
  }
}
