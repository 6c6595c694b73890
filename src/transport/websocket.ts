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
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { RawData, WebSocket } from 'ws';
import { grantAllows, type AuthorizedSubscription, type Grant, type SubscribeAuthorizer, type SubscribeCredentials } from '../auth/grant.js';
import type { HeraldConfig } from '../config.js';
import type { HookCredential, HookGrant } from '../auth/hook.js';
import type { HeraldNode, ResumeRequest } from '../core/node.js';
import type { Session, SessionSink, SessionTarget } from '../core/session.js';
import { HeraldError, toHeraldError, type DisconnectReason } from '../errors.js';
import type { ClientAddress } from '../http/client-address.js';
import { checkDevHost, crossSiteProblem } from '../http/dev-guard.js';
import { channelProblem } from '../protocol/channel.js';
import type { CustomDisconnect } from '../protocol/frames.js';
import { idempotencyKey } from '../protocol/idempotency.js';
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
import { credentialDigest } from '../util/lru.js';
import { originAllowed } from '../auth/origin.js';
import { completeUpgrade, ignoreError, refuseUpgrade, upgradeRequest } from './upgrade.js';
import { wantsJoinLeave } from './stream.js';
import { attachSink, openSubscription } from './subscription.js';
import { BatchedWriter } from './write-batch.js';
import { LazyWebSocketServer } from './ws-server.js';
import type { Presence } from '../presence/presence.js';
import { memberObject } from '../presence/member.js';

export interface WebSocketContext {
  readonly node: HeraldNode;
  readonly authorizer: SubscribeAuthorizer;
  readonly config: HeraldConfig;
  /**
   * May this client publish to `channel`? (the grant's publish right, namespace rules, --dev). `otherSite`: the
   * connection was opened by a web page of another site (http/dev-guard.ts), which --dev's keyless right excludes.
   */
  mayPublish(grant: Grant | undefined, channel: string, remoteAddress: string, otherSite: boolean): boolean;
  /** `json`: `data` is JSON text (the frame's `data` was a JSON value that is not a string). */
  publish(channel: string, data: string, json: boolean, idempotencyKey?: string): Promise<{ id?: string; replayed?: boolean }>;
  /** The client behind trusted proxies (http/client-address.ts). */
  readonly clientAddress?: ClientAddress;
  /** Presence (src/presence/): a client may ask who is in a channel it subscribes to, where presence is on. */
  readonly presence?: Presence;
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

interface OpenedUrl {
  targets: SessionTarget[];
  expiresAt?: number;
  /** Who the client is: the token's subject, else the auth hook's user. */
  subject?: string;
  info?: string;
  keysExpireAt?: number;
  token?: string;
  grant?: Grant;
  /** What the auth hook granted at the upgrade (later subscribes of channels it covers ask no more). */
  hookGrant?: HookGrant;
  hook?: HookCredential;
  /** Why --dev's keyless publishing is closed to this connection's page (http/dev-guard.ts), if it is. */
  otherSite?: string | undefined;
}

/** URL credentials, if any: keys and token are authorized apart so a later `refresh` knows which expiry is whose. */
async function authorizeUrl(authorizer: SubscribeAuthorizer, creds: SubscribeCredentials, max: number): Promise<OpenedUrl> {
  if (creds.channels.length + creds.keys.length > max) {
    throw new HeraldError('too_many_channels', `at most ${max} channels per connection`);
  }
  let keys: AuthorizedSubscription | undefined;
  let named: AuthorizedSubscription | undefined;
  if (creds.keys.length > 0) keys = await authorizer.authorize({ ...creds, channels: [], token: undefined });
  let hookGrant: HookGrant | undefined;
  if (creds.channels.length > 0 || creds.token !== undefined) {
    named = await authorizer.authorize({ ...creds, keys: [] });
    hookGrant = named.hookGrant;
  } else if (creds.keys.length === 0) {
    // A bare connection: the auth hook (if any) says whether it may stay, and who it is.
    hookGrant = await authorizer.connect(creds);
  }
  const who = named?.grant ?? hookGrant;
  return {
    targets: [...(keys?.targets ?? []), ...(named?.targets ?? [])],
    ...(who?.subject !== undefined ? { subject: who.subject } : {}),
    ...(who?.info !== undefined ? { info: who.info } : {}),
    expiresAt: earliest(earliest(keys?.expiresAt, named?.expiresAt), hookGrant?.expiresAt),
    keysExpireAt: keys?.expiresAt,
    token: creds.token,
    grant: named?.grant,
    ...(hookGrant ? { hookGrant } : {}),
    ...(creds.hook ? { hook: creds.hook } : {}),
  };
}

function earliest(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

/** Entries a connection's merged auth hook grant keeps at most (each answer holds up to 1,000). */
const MAX_HOOK_GRANT_ENTRIES = 2000;

/** A connection's hook grants, one after another: the channels of both, the first user, the earliest expiry. */
function mergeHookGrants(before: HookGrant | undefined, added: HookGrant): HookGrant {
  if (!before) return added;
  const channels = before.channels.length + added.channels.length <= MAX_HOOK_GRANT_ENTRIES ? [...before.channels, ...added.channels] : before.channels;
  const expiresAt = earliest(before.expiresAt, added.expiresAt);
  const subject = before.subject ?? added.subject;
  return { ...before, channels, ...(subject !== undefined ? { subject } : {}), ...(expiresAt !== undefined ? { expiresAt } : {}) };
}


/** Pre-framed frames batched per turn; nothing may follow the close frame, which `ws` writes itself. */
class WsWrites extends BatchedWriter {
  constructor(socket: Socket, private readonly ws: WebSocket) {
    super(socket);
  }
  protected override canWrite(): boolean {
    return this.ws.readyState === this.ws.OPEN && super.canWrite();
  }
}

/** The start of every connection's request chain (a settled promise can be shared). */
const SETTLED: Promise<void> = Promise.resolve();

/** One open WebSocket: the session's sink, and the handler of the client's requests. */
class WsConnection implements SessionSink {
  private token: string | undefined;
  private grant: Grant | undefined;
  /** Earliest expiry of the sealed keys ever subscribed (a key's expiry does not move). */
  private keysExpireAt: number | undefined;
  /** Channels subscribed by name under the token: a refreshed token must still grant them. Made when first needed. */
  private tokenChannels: Set<string> | undefined;
  private alive = true;
  private pending = 0;
  /** Requests run one after another, so a client's unsubscribe never overtakes its subscribe. */
  private queue: Promise<void> = SETTLED;
  /** Pre-framed bytes to the socket, or payloads to ws.send (permessage-deflate). */
  private readonly framing: Framing;
  private readonly otherSite: string | undefined;
  /** The auth hook's view of this client (taken at the upgrade) and what it granted so far. */
  private readonly hookCredential: HookCredential | undefined;
  private hookGrant: HookGrant | undefined;
  /** Scopes idempotency keys of a connection without a token subject (made when first needed). */
  private nonce: string | undefined;
  /** Pre-framed frames waiting for this turn's write. */
  private readonly writes: WsWrites;

  constructor(
    private readonly ctx: WebSocketContext,
    private readonly ws: WebSocket,
    private readonly socket: Socket,
    private readonly session: Session,
    opened: OpenedUrl,
  ) {
    this.framing = session.codec === wsDeflateCodec ? PAYLOAD : PREFRAMED;
    this.writes = new WsWrites(socket, ws);
    this.token = opened.token;
    this.grant = opened.grant;
    this.keysExpireAt = opened.keysExpireAt;
    this.otherSite = opened.otherSite;
    this.hookCredential = opened.hook;
    this.hookGrant = opened.hookGrant;
    if (opened.grant) for (const t of opened.targets) if (t.label === t.channel) this.grantedByToken(t.channel);
    ws.on('message', this.onMessage);
    ws.on('pong', this.onPong);
    ws.on('error', this.onError);
    ws.once('close', this.onClose);
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

  private async handle(request: ClientRequest): Promise<Record<string, unknown>> {
    switch (request.op) {
      case 'ping':
        return {};
      case 'connect':
        if (this.token !== undefined) throw new HeraldError('bad_request', 'already connected with a token: use refresh');
        return this.useToken(request.token);
      case 'refresh':
        if (this.token === undefined) throw new HeraldError('bad_request', 'no token to refresh: use connect');
        return this.useToken(request.token);
      case 'subscribe':
        if (request.joinLeave === true) this.session.joinLeave = true;
        return this.subscribe(request.channel, request.key, request.since);
      case 'presence':
      case 'presence_stats':
        return this.presence(request.op, request.channel);
      case 'unsubscribe':
        return this.unsubscribe(request.channel ?? request.key ?? '');
      case 'publish':
        return this.publish(request.channel, request.data, request.json, request.idempotencyKey);
    }
  }

  private async useToken(token: string): Promise<Record<string, unknown>> {
    const grant = await this.ctx.authorizer.verifyToken(token);
    // A refresh keeps the subject, and "no subject" is one too: a connection opened with a token without `sub`
    // must not become some user's by refreshing with theirs (nor drop its user by refreshing without one).
    if (this.token !== undefined && grant.subject !== this.grant?.subject) {
      throw new HeraldError('forbidden', 'a refreshed token must have the same subject (sub) as the one it replaces');
    }
    if (this.session.isEnded) return {};
    this.token = token;
    this.grant = grant;
    this.session.identify(grant.subject, grant.info);
    // Channels the new token no longer grants are dropped, and the client is told which.
    for (const channel of [...(this.tokenChannels ?? [])]) {
      if (grantAllows(grant, channel)) continue;
      this.tokenChannels?.delete(channel);
      this.ctx.node.unsubscribe(this.session, { channel, label: channel });
      this.session.write(unsubscribedFrame(channel, 'forbidden', this.framing));
    }
    this.session.expiresAt = earliest(grant.expiresAt, this.keysExpireAt);
    const result: Record<string, unknown> = { client: this.session.id, expiresAt: grant.expiresAt ?? null };
    if (grant.subject !== undefined) result['subject'] = grant.subject;
    return result;
  }

  private async subscribe(
    channel: string | undefined,
    key: string | undefined,
    since: string | undefined,
  ): Promise<Record<string, unknown>> {
    this.refuseIfExpired();
    const label = channel ?? key ?? '';
    // `since` is one channel's last id ("" for none yet): a one-channel cursor.
    const resume: ResumeRequest | undefined = since === undefined ? undefined : { since: parseCursor(since, 1) };
    if (this.session.targets.some((t) => t.label === label)) return { channel: label };
    const max = this.ctx.config.maxChannelsPerConnection;
    if (this.session.targets.length >= max) {
      throw new HeraldError('too_many_channels', `at most ${max} channels per connection`);
    }
    const auth = await this.ctx.authorizer.authorize({
      channels: channel === undefined ? [] : [channel],
      keys: key === undefined ? [] : [key],
      // A key is its own proof; with a token, a named channel must be granted by it.
      token: key === undefined ? this.token : undefined,
      remoteAddress: this.session.options.remoteAddress,
      transport: 'ws',
      event: 'subscribe',
      ...(this.hookCredential ? { hook: this.hookCredential } : {}),
      ...(this.hookGrant ? { hookGrant: this.hookGrant } : {}),
    });
    if (auth.hookGrant) this.hookGrant = mergeHookGrants(this.hookGrant, auth.hookGrant);
    if (this.session.isEnded) return { channel: label };
    await this.ctx.node.subscribe(this.session, auth.targets, resume);
    if (key !== undefined) {
      this.keysExpireAt = earliest(this.keysExpireAt, auth.expiresAt);
    } else if (this.token !== undefined && channel !== undefined) {
      this.grantedByToken(channel);
    }
    this.session.expiresAt = earliest(earliest(this.grant?.expiresAt, this.keysExpireAt), this.hookGrant?.expiresAt);
    return { channel: label };
  }

  private unsubscribe(label: string): Record<string, unknown> {
    const target = this.session.targets.find((t) => t.label === label);
    if (target) {
      this.ctx.node.unsubscribe(this.session, target);
      this.tokenChannels?.delete(target.channel);
    }
    return {};
  }

  /** Who is in a channel this connection subscribes to (by the name it knows it by), where presence is on. */
  private async presence(op: 'presence' | 'presence_stats', label: string): Promise<Record<string, unknown>> {
    const target = this.session.targets.find((t) => t.label === label);
    if (!target) throw new HeraldError('forbidden', 'presence is answered for channels this connection subscribes to');
    const presence = this.ctx.presence;
    if (!presence?.enabled(target.channel)) throw new HeraldError('forbidden', 'presence is not on for this channel');
    if (op === 'presence_stats') return { channel: label, ...(await presence.stats(target.channel)) };
    const answer = await presence.members(target.channel);
    return { channel: label, members: answer.members.map(memberObject), truncated: answer.truncated };
  }

  private grantedByToken(channel: string): void {
    (this.tokenChannels ??= new Set()).add(channel);
  }

  /**
   * The node's ticker closes an expired connection within a second (and token checks allow `jwtLeewaySeconds` of
   * skew): a publish or subscribe in that time is refused here, at the connection's own expiry.
   */
  private refuseIfExpired(): void {
    const expiresAt = this.session.expiresAt;
    if (expiresAt !== undefined && expiresAt <= Date.now()) {
      throw new HeraldError('token_expired', 'credentials expired: refresh before expiresAt');
    }
  }

  private async publish(channel: string, data: string, json: boolean, key: string | undefined): Promise<Record<string, unknown>> {
    this.refuseIfExpired();
    const problem = channelProblem(channel);
    if (problem) throw new HeraldError('invalid_channel', problem);
    const checkedKey = idempotencyKey(key, '"idempotency_key"');
    const grant = this.grant ?? this.hookGrant;
    if (!this.ctx.mayPublish(grant, channel, this.session.options.remoteAddress, this.otherSite !== undefined)) {
      if (this.otherSite !== undefined && this.ctx.mayPublish(grant, channel, this.session.options.remoteAddress, false)) {
        throw new HeraldError('origin_not_allowed', this.otherSite);
      }
      throw new HeraldError('forbidden', `publishing to ${channel} is not granted`);
    }
    const { id, replayed } = await this.ctx.publish(channel, data, json, checkedKey === undefined ? undefined : this.scopedKey(checkedKey));
    return { ...(id !== undefined ? { id } : {}), ...(replayed ? { replayed: true } : {}) };
  }

  /**
   * A client's idempotency key, scoped to its token's subject (or, without one, to this connection), so one client
   * cannot claim the keys another will use and have that client's messages dropped as retries.
   */
  private scopedKey(key: string): string {
    const subject = this.grant?.subject;
    const scope = subject !== undefined ? `s\u0000${subject}` : `c\u0000${(this.nonce ??= randomBytes(12).toString('base64url'))}`;
    return 'ws.' + credentialDigest(`${scope}\u0000${key}`);
  }
}

function toBuffers(raw: RawData): Buffer[] {
  if (Array.isArray(raw)) return raw;
  return [Buffer.isBuffer(raw) ? raw : Buffer.from(raw)];
}
