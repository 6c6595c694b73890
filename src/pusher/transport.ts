/**
 * `GET /app/{key}`: the Pusher Channels WebSocket, protocol 7 (docs/pusher.md), for pusher-js and Laravel Echo.
 *
 * A connection is a Herald Session with the Pusher codec: the Hub encodes each publication once per channel label
 * into a Pusher frame and writes the same bytes to every Pusher socket of the channel, beside the /sub, /sse and /ws
 * subscribers of the same channel. `ws` does the handshake and parses what the client sends.
 *
 * No timer per connection: the node's ticker calls `heartbeat()`, which pings a client quiet for `activity_timeout`
 * and closes one that stayed quiet 30 s after the ping (4201).
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { RawData, WebSocket } from 'ws';
import { originAllowed } from '../auth/origin.js';
import type { HeraldConfig } from '../config.js';
import type { HeraldNode } from '../core/node.js';
import type { Session, SessionSink, SessionTarget } from '../core/session.js';
import { HeraldError, toHeraldError, type DisconnectReason, type ErrorCode } from '../errors.js';
import type { ClientAddress } from '../http/client-address.js';
import { checkDevHost } from '../http/dev-guard.js';
import { queryParams, streamRequestFromNode } from '../http/request.js';
import { headerBytesOf, headLimitError } from '../http/wire.js';
import { parseClientJson } from '../protocol/json-bounds.js';
import type { Publication } from '../protocol/publication.js';
import { completeUpgrade, ignoreError, refuseUpgrade } from '../transport/upgrade.js';
import { LazyWebSocketServer } from '../transport/ws-server.js';
import { openSubscription } from '../transport/subscription.js';
import { WsWrites } from '../transport/write-batch.js';
import { reportFault } from '../util/faults.js';
import type { PusherApp, PusherApps } from './apps.js';
import { cachedFrom, cacheMissFrame, isCacheChannel } from './cache.js';
import {
  channelAuthValid,
  channelKind,
  connectionEstablished,
  decodeSegment,
  encodeEnvelope,
  envelopeOf,
  errorFrame,
  errorJson,
  PING,
  PONG,
  PROTOCOL_VERSION,
  PUSHER_CODES,
  pusherCodec,
  signinSuccess,
  socketIdOf,
  subscriptionError,
  subscriptionSucceeded,
  userAuthValid,
  validChannelName,
  validEventName,
  type ChannelKind,
} from './protocol.js';
import type { PusherPresence } from './presence.js';

/** What the transport reports to the rest of the Pusher layer (webhooks). */
export interface PusherEvents {
  clientEvent(app: PusherApp, channel: string, event: string, dataJson: string, socketId: string, userId: string | undefined): void;
  /** A subscriber of a cache channel found nothing cached (the `cache_miss` webhook). */
  cacheMiss(app: PusherApp, channel: string): void;
}

export interface PusherContext {
  readonly node: HeraldNode;
  readonly config: HeraldConfig;
  readonly apps: PusherApps;
  readonly presence: PusherPresence;
  readonly events: PusherEvents;
  readonly clientAddress?: ClientAddress;
  /** Every open Pusher connection of this node (terminate_connections, counts). */
  readonly connections: Set<PusherConnection>;
  onRefused(code: string): void;
}

/** Pusher-js waits this long for a pong: a server ping unanswered this long (or activity_timeout, if shorter) is a dead client. */
const PONG_TIMEOUT_MS = 30_000;
/** Requests a connection may have waiting; more get an error instead of a place in the queue. */
const MAX_PENDING = 64;
const SETTLED: Promise<void> = Promise.resolve();

/** Shared by every Pusher session: leaves out a publication whose envelope names this socket as its sender. */
function excludeSender(publication: Publication, session: Session): boolean {
  const e = envelopeOf(publication);
  return e?.excludeSeq === session.seq && e.excludeSession === session.id;
}


export class PusherTransport {
  private readonly wss: LazyWebSocketServer;

  constructor(private readonly ctx: PusherContext) {
    this.wss = new LazyWebSocketServer({
      noServer: true,
      clientTracking: false,
      // The largest client event (maxEventBytes) with its envelope; a bigger frame is closed by ws with 1009.
      maxPayload: Math.max(ctx.config.wsMaxFrameBytes, ...ctx.apps.all.map((a) => a.config.maxEventBytes + 1024)),
      perMessageDeflate: false,
    });
  }

  /** Is this upgrade request for the Pusher WebSocket? */
  static handles(url: string | undefined): boolean {
    return (url ?? '').startsWith('/app/');
  }

  readonly handleUpgrade = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    socket.on('error', ignoreError);
    this.upgrade(req, socket, head).catch((err: unknown) => {
      try {
        const e = refuseUpgrade(socket, err);
        this.ctx.onRefused(e.code);
      } catch (refuseErr) {
        reportFault('internal', 'pusher_upgrade', refuseErr);
        socket.destroy();
      }
    });
  };

  private async upgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const { node, config } = this.ctx;
    // ws loads the first time; every answer, a refusal too, goes through its handshake.
    const wss = await this.wss.get();
    const raw = req.url ?? '/';
    // The router's bounds, checked the one way every reader checks them (an upgrade never reaches the router).
    const over = headLimitError(raw.length, headerBytesOf(req.rawHeaders), config);
    if (over) throw over;
    if (req.method !== 'GET') throw new HeraldError('method_not_allowed', 'use GET');
    if ((req.headers['upgrade'] ?? '').toLowerCase() !== 'websocket') throw new HeraldError('bad_request', 'not a WebSocket upgrade');
    const q = raw.indexOf('?');
    const query = queryParams(q < 0 ? '' : raw.slice(q + 1));
    const sreq = streamRequestFromNode(req, query, this.ctx.clientAddress);
    checkDevHost(config, sreq.header('host'));
    const path = q < 0 ? raw : raw.slice(0, q);
    // Pusher refuses inside the protocol (pusher:error, then a close code pusher-js acts on), so the handshake
    // completes first: a browser would see a refused handshake as a network error and retry for ever.
    const refuse = (code: number, message: string): void => {
      this.ctx.onRefused(REFUSAL_CODES[code] ?? 'bad_request');
      wss.handleUpgrade(req, socket, head, (ws) => {
        socket.off('error', ignoreError);
        ws.on('error', ignoreError);
        ws.send(errorJson(code, message), { binary: false });
        ws.close(code, message.slice(0, 100));
      });
    };
    const key = decodeSegment(path.slice('/app/'.length)) ?? '';
    const app = this.ctx.apps.withKey(key);
    if (!app) return refuse(PUSHER_CODES.unknown_app, `App key ${key.slice(0, 64)} not in this cluster. Did you forget to specify the cluster?`);
    const protocol = query.get('protocol');
    if (protocol === null) return refuse(PUSHER_CODES.no_protocol, 'No protocol version supplied');
    if (!/^\d{1,2}$/.test(protocol) || Number(protocol) < 5 || Number(protocol) > PROTOCOL_VERSION) {
      return refuse(PUSHER_CODES.unsupported_protocol, `Unsupported protocol version ${protocol.slice(0, 10)}`);
    }
    const origin = sreq.header('origin');
    const origins = app.config.allowedOrigins.length > 0 ? app.config.allowedOrigins : config.allowedOrigins;
    if (!originAllowed(origin, origins, config.dev)) return refuse(PUSHER_CODES.unauthorized, 'Origin not allowed');
    if (app.config.maxConnections > 0 && app.connections >= app.config.maxConnections) {
      return refuse(PUSHER_CODES.app_over_quota, 'Application is over connection quota');
    }
    let session: Session;
    try {
      // Pusher authorizes per channel, in the protocol (pusher:subscribe): the connection opens on no channel.
      ({ session } = await openSubscription(node, {
        transport: 'pusher',
        remoteAddress: sreq.remoteAddress,
        maxQueueBytes: config.maxQueueBytes,
        authorize: () => Promise.resolve({ targets: [] }),
        open: () => ({ codec: pusherCodec, options: { exclude: excludeSender, ownPresence: true } }),
      }));
    } catch (err) {
      const e = toHeraldError(err);
      if (e.code === 'unavailable' || e.code === 'too_many_requests') return refuse(PUSHER_CODES.over_capacity, 'Over capacity');
      throw err;
    }
    completeUpgrade(wss, req, socket, head, session, (ws) => {
      new PusherConnection(this.ctx, app, ws, socket, session);
    });
  }
}

interface Subscribed {
  readonly kind: ChannelKind;
  readonly target: SessionTarget;
}

/** One open Pusher WebSocket: the session's sink and the handler of what the client sends. */
export class PusherConnection implements SessionSink {
  readonly socketId: string;
  /** Pusher channel name → what it is on this connection. */
  private readonly channels = new Map<string, Subscribed>();
  /** On the node's clock (util/clock.ts), like the ticker that calls `heartbeat`. */
  private lastActivity: number;
  private pingSentAt: number | undefined;
  /** The user `pusher:signin` authenticated, if any (terminate_connections finds the connection by it). */
  userId: string | undefined;
  private pending = 0;
  private queue: Promise<void> = SETTLED;
  /** Client events in the current second (maxClientEventsPerSecond). */
  private clientEventSecond = 0;
  private clientEventCount = 0;
  /** Frames waiting for this turn's write (transport/write-batch.ts): one system call per socket per turn, as /ws. */
  private readonly writes: WsWrites;

  constructor(
    private readonly ctx: PusherContext,
    readonly app: PusherApp,
    private readonly ws: WebSocket,
    private readonly socket: Socket,
    readonly session: Session,
  ) {
    this.socketId = socketIdOf(ctx.node.nodeId, session.seq);
    this.lastActivity = ctx.node.now();
    this.writes = new WsWrites(socket, ws);
    app.connections++;
    ctx.connections.add(this);
    ws.on('message', this.onMessage);
    ws.on('error', this.onError);
    ws.once('close', this.onClose);
    session.attach(this);
    session.write(connectionEstablished(this.socketId, ctx.config.pusherActivityTimeoutSeconds));
  }

  // --- SessionSink -------------------------------------------------------------------------------------------------

  write(bytes: Buffer): void {
    if (bytes.length === 0 || this.ws.readyState !== this.ws.OPEN) return;
    this.writes.batch(bytes);
  }

  bufferedBytes(): number {
    return this.socket.writableLength;
  }

  sentBytes(): number {
    return this.socket.bytesWritten - this.socket.writableLength;
  }

  close(reason: DisconnectReason): void {
    const code = CLOSE_CODES[reason] ?? PUSHER_CODES.generic_reconnect;
    // What waits in the turn's batch goes before the close frame.
    this.writes.flushBatch();
    this.ws.close(code, reason);
  }

  destroy(): void {
    this.writes.drop();
    this.ws.terminate();
  }

  heartbeat(): void {
    const now = this.ctx.node.now();
    if (this.pingSentAt !== undefined) {
      if (now - this.pingSentAt < Math.min(PONG_TIMEOUT_MS, this.ctx.config.pusherActivityTimeoutSeconds * 1000)) return;
      // Quiet since our ping: gone. The close code tells pusher-js to reconnect at once.
      this.writes.flushBatch();
      this.ws.close(PUSHER_CODES.pong_not_received, 'Pong reply not received');
      this.session.clientGone();
      return;
    }
    if (now - this.lastActivity >= this.ctx.config.pusherActivityTimeoutSeconds * 1000) {
      this.pingSentAt = now;
      this.session.write(PING);
    }
  }

  // --- socket events -----------------------------------------------------------------------------------------------

  private readonly onClose = (): void => {
    this.app.connections--;
    this.ctx.connections.delete(this);
    this.session.clientGone();
  };

  private readonly onError = (err: Error & { code?: string }): void => {
    this.session.disconnect(err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'too_large' : 'bad_frame');
  };

  /** The connection's boundary: nothing a client sends may throw past it. */
  private readonly onMessage = (raw: RawData, isBinary: boolean): void => {
    this.lastActivity = this.ctx.node.now();
    this.pingSentAt = undefined;
    if (this.session.isEnded) return;
    try {
      if (isBinary) return this.error(null, 'Binary frames are not part of the protocol');
      const bytes = Buffer.isBuffer(raw) ? raw : Buffer.concat(Array.isArray(raw) ? raw : [Buffer.from(raw)]);
      let value: unknown;
      try {
        value = parseClientJson(bytes, this.ctx.config.maxJsonDepth);
      } catch {
        return this.error(null, 'Message is not valid JSON');
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return this.error(null, 'Message must be a JSON object');
      const message = value as Record<string, unknown>;
      const event = message['event'];
      if (typeof event !== 'string') return this.error(null, 'Message has no event');
      if (this.pending >= MAX_PENDING) return this.error(PUSHER_CODES.client_event_rate, 'Too many messages waiting: slow down');
      this.pending++;
      this.queue = this.queue.then(() => this.run(event, message)).finally(() => this.pending--);
    } catch (err) {
      reportFault('internal', 'pusher_message', err);
      this.session.disconnect('bad_frame');
    }
  };

  private async run(event: string, message: Record<string, unknown>): Promise<void> {
    try {
      if (this.session.isEnded) return;
      const data = dataObject(message['data']);
      switch (event) {
        case 'pusher:ping':
          this.session.write(PONG);
          return;
        case 'pusher:pong':
          return;
        case 'pusher:subscribe':
          return await this.subscribe(data);
        case 'pusher:unsubscribe':
          return this.unsubscribe(data?.['channel']);
        case 'pusher:signin':
          return this.signin(data);
        default:
          if (event.startsWith('client-')) return await this.clientEvent(event, message);
          return this.error(null, `Unknown event ${event.slice(0, 64)}`);
      }
    } catch (err) {
      reportFault('internal', `pusher_${event.slice(0, 24)}`, err);
      this.error(null, 'Internal error');
    }
  }

  private error(code: number | null, message: string): void {
    this.session.write(errorFrame(code, message));
  }

  // --- subscriptions -----------------------------------------------------------------------------------------------

  private async subscribe(data: Record<string, unknown> | undefined): Promise<void> {
    const name = data?.['channel'];
    if (!validChannelName(name)) return this.error(null, 'Invalid channel name');
    if (this.channels.has(name)) {
      // pusher-js subscribes again after a reconnect of its own; here the subscription already holds.
      return;
    }
    const kind = channelKind(name);
    const fail = (status: number, why: string): void => this.session.write(subscriptionError(name, status, why));
    const max = this.ctx.config.maxChannelsPerConnection;
    if (this.channels.size >= max) return fail(429, `At most ${max} channels per connection`);
    let member: { userId: string; infoJson: string | undefined } | undefined;
    if (kind === 'public' && !this.ctx.node.policy.allowsAnonymous(this.app.heraldChannel(name))) {
      // A public Pusher channel is open to anyone with the app key: it may only be a Herald channel that Herald
      // itself lets anyone subscribe, or Pusher clients would read channels Herald keeps behind tokens and keys.
      return fail(403, 'Public channel not open: allow anonymous subscription in its Herald namespace (docs/pusher.md)');
    }
    if (kind !== 'public') {
      const auth = data?.['auth'];
      const channelData = data?.['channel_data'];
      if (typeof auth !== 'string' || (channelData !== undefined && typeof channelData !== 'string')) {
        return fail(401, 'Subscription to a private or presence channel needs auth');
      }
      const signed = kind === 'presence' ? (channelData as string | undefined) ?? '' : undefined;
      if (!channelAuthValid(this.app.key, this.app.secret, this.socketId, name, auth, signed)) {
        return fail(401, 'Invalid signature: the auth does not sign this socket id and channel');
      }
      if (kind === 'presence') {
        member = parseChannelData(channelData as string | undefined, this.ctx.config.presenceMaxInfoBytes);
        if (!member) return fail(400, 'channel_data must be JSON with a user_id');
      }
    }
    const target: SessionTarget = { channel: this.app.heraldChannel(name), label: name };
    if (member) {
      let users: number;
      try {
        users = await this.ctx.presence.userCount(target.channel);
      } catch (err) {
        return fail(503, `Presence cannot be read now: ${toHeraldError(err).message}`);
      }
      if (users >= this.app.config.maxPresenceMembers) {
        return fail(403, `Presence channel holds its limit of ${this.app.config.maxPresenceMembers} members`);
      }
    }
    let cacheMiss = false;
    try {
      // A cache channel is joined with resume from just before its last message: the node delivers that one first.
      const from = isCacheChannel(name) ? await cachedFrom(this.ctx.node, target.channel) : undefined;
      cacheMiss = isCacheChannel(name) && !from;
      await this.ctx.node.subscribe(this.session, [target], from ? { since: [from] } : undefined);
    } catch (err) {
      const e = toHeraldError(err);
      return fail(e.status, e.message);
    }
    if (this.session.isEnded || !this.session.targets.some((t) => t.label === name)) return;
    this.channels.set(name, { kind, target });
    if (!member) return this.succeeded(name, {}, cacheMiss);
    const presence = this.ctx.presence;
    presence.join(this.session, target.channel, member.userId, member.infoJson);
    try {
      this.succeeded(name, { presence: await presence.snapshot(target.channel) }, cacheMiss);
    } catch (err) {
      // The other nodes' members cannot be read (the broker is down): not subscribed, and the client may retry.
      this.unsubscribe(name);
      fail(503, `Presence cannot be read now: ${toHeraldError(err).message}`);
    }
  }

  /** The subscription holds: pusher-js is told, and on a cache channel with nothing cached, so is the app. */
  private succeeded(name: string, data: unknown, cacheMiss: boolean): void {
    this.session.write(subscriptionSucceeded(name, data));
    if (!cacheMiss) return;
    this.session.write(cacheMissFrame(name));
    this.ctx.events.cacheMiss(this.app, name);
  }

  private unsubscribe(name: unknown): void {
    if (typeof name !== 'string') return;
    const s = this.channels.get(name);
    if (!s) return;
    this.channels.delete(name);
    // The node's observer tells presence (PusherPresence leaves on `unsubscribed`).
    this.ctx.node.unsubscribe(this.session, s.target);
  }

  // --- signin ------------------------------------------------------------------------------------------------------

  private signin(data: Record<string, unknown> | undefined): void {
    const auth = data?.['auth'];
    const userData = data?.['user_data'];
    if (typeof auth !== 'string' || typeof userData !== 'string' || !userAuthValid(this.app.key, this.app.secret, this.socketId, userData, auth)) {
      return this.error(PUSHER_CODES.unauthorized, 'Invalid signin: the auth does not sign this socket id and user_data');
    }
    let id: unknown;
    try {
      id = (JSON.parse(userData) as Record<string, unknown>)['id'];
    } catch {
      id = undefined;
    }
    if ((typeof id !== 'string' && typeof id !== 'number') || String(id).length === 0 || String(id).length > 255) {
      return this.error(PUSHER_CODES.unauthorized, 'user_data must be JSON with an id');
    }
    this.userId = String(id);
    this.session.write(signinSuccess(userData));
  }

  // --- client events -----------------------------------------------------------------------------------------------

  private async clientEvent(event: string, message: Record<string, unknown>): Promise<void> {
    const name = message['channel'];
    if (!this.app.config.clientEvents) return this.error(null, 'Client events are not enabled for this app');
    if (!validEventName(event)) return this.error(null, 'Invalid event name');
    const s = typeof name === 'string' ? this.channels.get(name) : undefined;
    if (!s || typeof name !== 'string') return this.error(null, 'Client events need a channel this connection subscribes to');
    if (s.kind !== 'private' && s.kind !== 'presence') return this.error(null, 'Client events are only for private and presence channels');
    const second = Math.floor(Date.now() / 1000);
    if (second !== this.clientEventSecond) {
      this.clientEventSecond = second;
      this.clientEventCount = 0;
    }
    if (++this.clientEventCount > this.app.config.maxClientEventsPerSecond) {
      return this.error(PUSHER_CODES.client_event_rate, `Client event rejected: at most ${this.app.config.maxClientEventsPerSecond} per second`);
    }
    const dataJson = JSON.stringify(message['data'] ?? null);
    if (Buffer.byteLength(dataJson) > this.app.config.maxEventBytes) {
      return this.error(null, `Client event data is over ${this.app.config.maxEventBytes} bytes`);
    }
    const userId = s.kind === 'presence' ? this.ctx.presence.userOf(this.session, s.target.channel) : undefined;
    const envelope = encodeEnvelope({ event, dataJson, socketId: this.socketId, ...(userId !== undefined ? { userId } : {}) });
    try {
      await this.ctx.node.publish(s.target.channel, envelope, { source: 'pusher' });
    } catch (err) {
      return this.error(null, `Client event not sent: ${toHeraldError(err).message}`);
    }
    this.ctx.events.clientEvent(this.app, name, event, dataJson, this.socketId, userId);
  }
}

/** Herald's error code (metrics) for each Pusher refusal. */
const REFUSAL_CODES: Record<number, ErrorCode> = {
  [PUSHER_CODES.unknown_app]: 'not_found',
  [PUSHER_CODES.no_protocol]: 'bad_request',
  [PUSHER_CODES.unsupported_protocol]: 'bad_request',
  [PUSHER_CODES.unauthorized]: 'origin_not_allowed',
  [PUSHER_CODES.app_over_quota]: 'too_many_requests',
  [PUSHER_CODES.over_capacity]: 'unavailable',
};

/** Pusher's close code for each way Herald ends a session. */
const CLOSE_CODES: Partial<Record<DisconnectReason, number>> = {
  shutdown: PUSHER_CODES.generic_reconnect,
  slow: PUSHER_CODES.over_capacity,
  broker_lost: PUSHER_CODES.generic_reconnect,
  broker_unavailable: PUSHER_CODES.over_capacity,
  disconnected: PUSHER_CODES.unauthorized,
  forbidden: PUSHER_CODES.unauthorized,
  bad_frame: PUSHER_CODES.unauthorized,
  too_large: PUSHER_CODES.unauthorized,
};

/** A message's `data`: pusher-js sends an object; some clients send it as JSON text. */
function dataObject(v: unknown): Record<string, unknown> | undefined {
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      return undefined;
    }
  }
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** A presence subscription's `channel_data`: `{"user_id": "...", "user_info": {...}}`. */
function parseChannelData(text: string | undefined, maxInfoBytes: number): { userId: string; infoJson: string | undefined } | undefined {
  if (text === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const { user_id: id, user_info: info } = v as Record<string, unknown>;
  if ((typeof id !== 'string' && typeof id !== 'number') || String(id).length === 0 || String(id).length > 255) return undefined;
  const infoJson = info === undefined ? undefined : JSON.stringify(info);
  if (infoJson !== undefined && Buffer.byteLength(infoJson) > maxInfoBytes) return undefined;
  return { userId: String(id), infoJson };
}
