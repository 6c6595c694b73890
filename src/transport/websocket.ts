/**
 * `GET /ws`: WebSocket with the JSON protocol of docs/protocol.md.
 *
 * The upgrade is checked (path, origin, limits, URL credentials) and its URL channels are subscribed before `ws`
 * completes the handshake, so a refused client gets an HTTP status and an accepted one is live on open. After that a
 * connection is a Session whose sink writes pre-framed WebSocket frames (encoded once per message by the Hub) straight
 * to the TCP socket; `ws` parses what the client sends and runs the close handshake and pings.
 *
 * No timer per connection: the node's ticker calls `heartbeat()`, which pings and frees a peer that did not answer the
 * previous ping.
 *
 * What each client request does is decided in transport/commands.ts (no WebSocket there); this file parses frames,
 * runs requests in order, and frames the replies.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { RawData, WebSocket } from 'ws';
import type { Session, SessionSink } from '../core/session.js';
import { HeraldError, toHeraldError, type DisconnectReason } from '../errors.js';
import type { ClientAddress } from '../http/client-address.js';
import { checkDevHost, crossSiteProblem } from '../http/dev-guard.js';
import type { CustomDisconnect } from '../protocol/frames.js';
import { parseCursor } from '../protocol/message-id.js';
import {
  BadFrame,
  closeFor,
  errorFrame,
  parseRequest,
  replyFrame,
  unsubscribedFrame,
  wsCodec,
  wsDeflateCodec,
  PAYLOAD,
  PREFRAMED,
  type ClientRequest,
  type Framing,
} from '../protocol/ws-frames.js';
import { reportFault } from '../util/faults.js';
import { originAllowed } from '../auth/origin.js';
import { completeUpgrade, ignoreError, refuseUpgrade, upgradeRequest } from './upgrade.js';
import { wantsJoinLeave } from './stream.js';
import { authorizeUrl, ClientCommands, type CommandContext, type OpenedUrl } from './commands.js';
import { attachSink, openSubscription } from './subscription.js';
import { WsWrites } from './write-batch.js';
import { LazyWebSocketServer } from './ws-server.js';

export interface WebSocketContext extends CommandContext {
  /** The client behind trusted proxies (http/client-address.ts). */
  readonly clientAddress?: ClientAddress;
  /** Called with the error code of every refused upgrade (metrics). */
  onRefused(code: string): void;
}

/** Requests a connection may have waiting for an answer; more get `too_many_requests`. */
const MAX_PENDING_REQUESTS = 64;

export class WebSocketTransport {
  private readonly wss: LazyWebSocketServer;

  constructor(private readonly ctx: WebSocketContext) {
    this.wss = new LazyWebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: ctx.config.wsMaxFrameBytes,
      // Off by default: compressed frames differ per socket, which defeats encoding each message once.
      perMessageDeflate: ctx.config.wsCompression ? { threshold: 256 } : false,
    });
  }

  /** The HTTP server's 'upgrade' listener. */
  readonly handleUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    socket.on('error', ignoreError);
    this.upgrade(req, socket, head).catch((err: unknown) => {
      try {
        const e = refuseUpgrade(socket, err);
        this.ctx.onRefused(e.code);
      } catch (refuseErr) {
        // Answering the refusal failed: this socket alone goes, and the fault is counted.
        reportFault('internal', 'ws_upgrade', refuseErr);
        socket.destroy();
      }
    });
  };

  private async upgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const { node, config, authorizer } = this.ctx;
    // ws loads (the first time) while the request is checked and authorized.
    const loading = this.wss.get();
    loading.catch(() => undefined);
    const sreq = upgradeRequest(req, config.maxUrlBytes, config.maxHeaderBytes, this.ctx.clientAddress);
    checkDevHost(config, sreq.header('host'));
    const origin = sreq.header('origin');
    if (!originAllowed(origin, config.allowedOrigins, config.dev)) {
      throw new HeraldError('origin_not_allowed', 'origin not allowed');
    }
    // A client that offers permessage-deflate where it is on gets payloads that ws compresses (and frames) for it.
    const deflate = config.wsCompression && /permessage-deflate/i.test(sreq.header('sec-websocket-extensions') ?? '');
    let wss: Awaited<typeof loading> | undefined;
    let session: Session;
    let opened: OpenedUrl;
    try {
      ({ session, auth: opened } = await openSubscription(node, {
        transport: 'ws',
        remoteAddress: sreq.remoteAddress,
        maxQueueBytes: config.maxQueueBytes,
        authorize: async () => {
          const creds = authorizer.credentialsOf(sreq, 'ws', config.tokenCookie);
          const url = await authorizeUrl(authorizer, creds, config.maxChannelsPerConnection);
          url.otherSite = crossSiteProblem(sreq.header, config.allowedOrigins);
          // ws loaded meanwhile (the first time), before anything is subscribed.
          wss = await loading;
          return url;
        },
        open: (url) => {
          const cursor = sreq.query.get('since');
          return {
            codec: deflate ? wsDeflateCodec : wsCodec,
            resume: cursor === null ? undefined : { since: parseCursor(cursor, url.targets.length) },
            options: wantsJoinLeave(sreq.query) ? { joinLeave: true } : {},
          };
        },
      }));
    } catch (err) {
      if (!wss || !(err instanceof HeraldError) || err.code !== 'broker_unavailable' || socket.destroyed) throw err;
      // A refused handshake reads as a network error (1006) to a browser's WebSocket: open, then close with a code
      // of the reconnect range, which says why and that trying again helps.
      wss.handleUpgrade(req, socket, head, (ws) => {
        socket.off('error', ignoreError);
        ws.on('error', ignoreError);
        const c = closeFor('broker_unavailable');
        ws.close(c.code, c.reason);
      });
      return;
    }
    // Set: authorizing (which awaited it) came first.
    completeUpgrade(wss!, req, socket, head, session, (ws) => {
      attachSink(session, false, () => new WsConnection(this.ctx, ws, socket, session, opened));
    });
  }
}

/** The start of every connection's request chain (a settled promise can be shared). */
const SETTLED: Promise<void> = Promise.resolve();

/** One open WebSocket: the session's sink, and the handler of the client's requests. */
class WsConnection extends ClientCommands implements SessionSink {
  private alive = true;
  private pending = 0;
  /** Requests run one after another, so a client's unsubscribe never overtakes its subscribe. */
  private queue: Promise<void> = SETTLED;
  /** Pre-framed bytes to the socket, or payloads to ws.send (permessage-deflate). */
  private readonly framing: Framing;
  /** Pre-framed frames waiting for this turn's write. */
  private readonly writes: WsWrites;

  constructor(
    protected override readonly ctx: WebSocketContext,
    private readonly ws: WebSocket,
    private readonly socket: Socket,
    session: Session,
    opened: OpenedUrl,
  ) {
    super(ctx, session, opened);
    this.framing = session.codec === wsDeflateCodec ? PAYLOAD : PREFRAMED;
    this.writes = new WsWrites(socket, ws);
    ws.on('message', this.onMessage);
    ws.on('pong', this.onPong);
    ws.on('error', this.onError);
    ws.once('close', this.onClose);
  }

  protected unsubscribedFrame(label: string): Buffer {
    return unsubscribedFrame(label, 'forbidden', this.framing);
  }

  // --- SessionSink -------------------------------------------------------------------------------------------------

  write(bytes: Buffer): void {
    // Nothing may follow a close frame. Pre-framed bytes go straight to the socket.
    if (this.ws.readyState !== this.ws.OPEN) return;
    // Pre-framed bytes leave with the turn's batch (write-batch.ts), one system call per socket per turn.
    if (this.framing === PREFRAMED) this.writes.batch(bytes);
    else this.ws.send(bytes, { binary: false });
  }

  bufferedBytes(): number {
    // ws.bufferedAmount also counts messages waiting for compression.
    return this.framing === PREFRAMED ? this.socket.writableLength : this.ws.bufferedAmount;
  }

  sentBytes(): number {
    return this.socket.bytesWritten - this.socket.writableLength;
  }

  close(reason: DisconnectReason, custom?: CustomDisconnect): void {
    this.writes.flushBatch();
    const c = closeFor(reason, custom);
    this.ws.close(c.code, c.reason);
  }

  destroy(): void {
    this.writes.drop();
    this.ws.terminate();
  }

  heartbeat(): void {
    if (!this.alive) {
      this.session.disconnect('dead_peer');
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  // --- socket events -----------------------------------------------------------------------------------------------

  private readonly onPong = (): void => {
    this.alive = true;
  };

  private readonly onClose = (): void => this.session.clientGone();

  /** ws reports protocol violations here and closes with the RFC's code (1009 for an oversized message). */
  private readonly onError = (err: Error & { code?: string }): void => {
    this.session.disconnect(err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'too_large' : 'bad_frame');
  };

  /**
   * The connection's boundary: nothing a client sends may throw past it (an exception here would be uncaught and
   * end the process). A refused frame closes with its documented code; anything unexpected is counted as a fault,
   * logged, and closes this connection alone with `bad_frame`.
   */
  private readonly onMessage = (raw: RawData, isBinary: boolean): void => {
    try {
      this.receive(raw, isBinary);
    } catch (err) {
      if (err instanceof BadFrame) {
        this.session.disconnect(err.reason);
        return;
      }
      reportFault('internal', 'ws_message', err);
      this.session.disconnect('bad_frame');
    }
  };

  private receive(raw: RawData, isBinary: boolean): void {
    this.alive = true;
    if (this.session.isEnded) return;
    if (isBinary) throw new BadFrame('binary frames are not part of the protocol');
    const config = this.ctx.config;
    const bytes = Buffer.isBuffer(raw) ? raw : Buffer.concat(toBuffers(raw));
    const request: ClientRequest = parseRequest(bytes, { maxDepth: config.maxJsonDepth, maxDataChars: config.wsMaxFrameBytes });
    if (this.pending >= MAX_PENDING_REQUESTS) {
      this.session.write(errorFrame(request.id, 'too_many_requests', `at most ${MAX_PENDING_REQUESTS} requests in flight`, this.framing));
      return;
    }
    this.pending++;
    this.queue = this.queue.then(() => this.run(request));
  }

  // --- requests ----------------------------------------------------------------------------------------------------

  private async run(request: ClientRequest): Promise<void> {
    try {
      if (this.session.isEnded) return;
      const result = await this.handle(request);
      this.session.write(replyFrame(request.id, result, this.framing));
    } catch (err) {
      const e = toHeraldError(err);
      if (e.code === 'internal') reportFault('internal', `ws_${request.op}`, err);
      try {
        this.session.write(errorFrame(request.id, e.code, e.code === 'internal' ? 'internal error' : e.message, this.framing));
      } catch (writeErr) {
        reportFault('internal', 'ws_reply', writeErr);
        this.session.disconnect('bad_frame');
      }
    } finally {
      this.pending--;
    }
  }

}

function toBuffers(raw: RawData): Buffer[] {
  if (Array.isArray(raw)) return raw;
  return [Buffer.isBuffer(raw) ? raw : Buffer.from(raw)];
}
