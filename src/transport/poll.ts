/**
 * `GET /poll`: long-polling for clients behind proxies that break streaming (docs/protocol.md, "GET /poll").
 *
 * A poll is a short-lived Session: it joins its channels (live), and is answered with a JSON batch as soon as it holds
 * something, or empty when `pollTimeoutSeconds` pass. Waiting polls have no timer each: they sit in one
 * insertion-ordered set (every poll waits equally long, so it is also deadline-ordered) that the node's ticker sweeps.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SubscribeAuthorizer } from '../auth/grant.js';
import type { HeraldConfig } from '../config.js';
import type { HeraldNode } from '../core/node.js';
import type { ClientAddress } from '../http/client-address.js';
import type { Session, SessionSink } from '../core/session.js';
import { HeraldError, type DisconnectReason } from '../errors.js';
import { disconnectLine, messageLine, presenceLine, reloadLine, unsubscribedLine, type CustomDisconnect, type FrameEncoder } from '../protocol/frames.js';
import { parseCursor } from '../protocol/message-id.js';
import { corsHeaders, corsOrigins } from '../auth/origin.js';
import { streamRequestFromNode } from '../http/request.js';
import { wantsJoinLeave, wantsJsonData } from './stream.js';
import { attachSink, openSubscription } from './subscription.js';

export interface PollContext {
  readonly node: HeraldNode;
  readonly authorizer: SubscribeAuthorizer;
  readonly config: HeraldConfig;
  /** The client behind trusted proxies (http/client-address.ts). */
  readonly clientAddress?: ClientAddress;
}

const EMPTY = Buffer.alloc(0);

/**
 * A batch element is exactly a /sub line without its newline; the batch joins them into a JSON array. The poll's
 * last words are its answer (PollSink.close), and the answer at the poll timeout is its heartbeat.
 */
function makePollCodec(jsonData: boolean): FrameEncoder {
  return {
    name: jsonData ? 'poll+json' : 'poll',
    encode: (p, label) => Buffer.from(messageLine(label, p.data, p.id, jsonData && p.json === true), 'utf8'),
    encodeUnsubscribed: (label) => Buffer.from(unsubscribedLine(label), 'utf8'),
    encodeReload: (label, reason, id) => Buffer.from(reloadLine(label, reason, id), 'utf8'),
    // The answer's cursor carries every position; a position element alone must not end the wait.
    encodePosition: () => EMPTY,
    encodePresence: (kind, label, member) => Buffer.from(presenceLine(kind, label, member), 'utf8'),
  };
}
export const pollCodec = makePollCodec(false);
/** `jsonData=1`: JSON data as values in the batch's arrays (docs/protocol.md "JSON data"). */
export const pollJsonCodec = makePollCodec(true);

export class PollTransport {
  private readonly parked = new Set<PollSink>();

  constructor(private readonly ctx: PollContext) {
    ctx.node.onTick((now) => this.sweep(now));
  }

  /** Waiting polls (for tests and metrics). */
  waiting(): number {
    return this.parked.size;
  }

  readonly handle = async (req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> => {
    if (req.method !== 'GET') throw new HeraldError('method_not_allowed', 'use GET');
    const { node, authorizer, config } = this.ctx;
    const sreq = streamRequestFromNode(req, query, this.ctx.clientAddress);
    const { session } = await openSubscription(node, {
      transport: 'poll',
      remoteAddress: sreq.remoteAddress,
      maxQueueBytes: config.maxQueueBytes,
      authorize: () => authorizer.authorize(authorizer.credentialsOf(sreq, 'poll', config.tokenCookie)),
      open: (auth) => {
        const cursor = sreq.query.get('since');
        // Always in resume mode: even a first poll learns every channel's position, so its answer's cursor lets the
        // next poll pick up what is published in between.
        const since = cursor === null ? auth.targets.map(() => undefined) : parseCursor(cursor, auth.targets.length);
        return {
          codec: wantsJsonData(sreq.query) ? pollJsonCodec : pollCodec,
          resume: { since },
          // The answer ends the poll; the next one continues from its cursor.
          options: { replayInPieces: true, ...(wantsJoinLeave(sreq.query) ? { joinLeave: true } : {}) },
        };
      },
    });
    attachSink(session, res.destroyed || req.socket.destroyed, () => {
      const sink = new PollSink(this, session, res, node.now() + config.pollTimeoutSeconds * 1000, {
        ...corsHeaders(sreq.header('origin'), corsOrigins(config)),
      });
      this.parked.add(sink);
      return sink;
    });
  };

  forget(sink: PollSink): void {
    this.parked.delete(sink);
  }

  private sweep(now: number): void {
    for (const sink of this.parked) {
      if (sink.deadline > now) break;
      sink.answer(undefined);
    }
  }
}

/** One waiting poll: collects its batch and answers once. */
class PollSink implements SessionSink {
  private readonly frames: Buffer[] = [];
  private bytes = 0;
  private scheduled = false;
  private done = false;

  constructor(
    private readonly transport: PollTransport,
    private readonly session: Session,
    private readonly res: ServerResponse,
    readonly deadline: number,
    private readonly headers: Record<string, string>,
  ) {
    res.once('close', this.onClose);
  }

  private readonly onClose = (): void => {
    if (this.done) return;
    this.done = true;
    this.transport.forget(this);
    this.session.clientGone();
  };

  write(bytes: Buffer): void {
    if (this.done || bytes.length === 0) return;
    this.frames.push(bytes);
    this.bytes += bytes.length;
    // Answer after the current burst: messages delivered in the same tick (one publish to several channels) share
    // one answer.
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.answer(undefined));
    }
  }

  bufferedBytes(): number {
    return this.bytes;
  }

  close(reason: DisconnectReason, custom?: CustomDisconnect): void {
    this.answer(reason, custom);
  }

  destroy(): void {
    if (!this.done) this.res.destroy();
    this.onClose();
  }

  /** Polls are answered by the sweep at their deadline; nothing to send in between. */
  heartbeat(): void {}

  answer(reason: DisconnectReason | undefined, custom?: CustomDisconnect): void {
    if (this.done) return;
    this.done = true;
    this.transport.forget(this);
    let body = '{"messages":[' + this.frames.map((f) => f.toString('utf8')).join(',');
    if (reason !== undefined) body += (this.frames.length > 0 ? ',' : '') + disconnectLine(reason, custom);
    body += '],"cursor":' + JSON.stringify(this.session.cursor()) + '}';
    this.res.writeHead(200, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-cache, no-store',
      ...this.headers,
    });
    this.res.end(body);
    // The poll is over: leave the channels (a no-op when the session is what ended it).
    this.session.clientGone();
  }
}
