/**
 * The one wiring file: config → broker, node (hub + sessions), auth, transports, routes, HTTP server.
 * It is the only module that picks a concrete broker.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { isLoopback } from './auth/api-key.js';
import { Authorization } from './auth/authorization.js';
import { corsOrigins } from './auth/origin.js';
import type { Broker } from './broker/broker.js';
import type { ClusterView } from './cluster/status.js';
import { MemoryBroker } from './broker/memory.js';
import { RedisBroker } from './broker/redis.js';
import type { HeraldConfig } from './config.js';
import { HeraldError, toHeraldError } from './errors.js';
import { DRAIN_RETRY_AFTER_SECONDS, FastPublisher } from './http/fast-publish.js';
import { FrontReader } from './http/front.js';
import { refuseAndClose } from './http/wire.js';
import { createNodeMetrics, MetricsRegistry } from './core/metrics.js';
import { registerProcessMetrics } from './core/process-metrics.js';
import { PublicationMetrics } from './core/publication-metrics.js';
import { ChannelPolicy } from './core/channel-policy.js';
import { HeraldNode } from './core/node.js';
import { ClientAddress } from './http/client-address.js';
import { checkDevHost } from './http/dev-guard.js';
import { metricsGate, serveHealth, serveMetrics, serveReady } from './http/health.js';
import { withCors, withPreflight } from './http/cors.js';
import { PublishApi } from './http/publish.js';
import { AccessLog } from './http/access-log.js';
import { InternalListener } from './http/internal-listener.js';
import { Router, toOriginForm } from './http/router.js';
import { ROUTES } from './http/routes.js';
import { AdminDashboard } from './http/admin/routes.js';
import { ClusterStats } from './core/node-stats.js';
import { httpStreamTransport } from './transport/http-stream.js';
import { headerOf, streamRequestFromNode } from './http/request.js';
import { sseTransport } from './transport/sse.js';
import { serveStream, type StreamContext, type StreamTransport } from './transport/stream.js';
import { PollTransport } from './transport/poll.js';
import { WebSocketTransport } from './transport/websocket.js';
import { describeError, faultCounts, onFault } from './util/faults.js';
import { createLogger, type Logger } from './util/log.js';
import type { Clock } from './util/clock.js';
import { VERSION } from './version.js';
import type { WebhookDispatcher } from './webhooks/dispatcher.js';
import { startHeraldWebhooks, type HeraldWebhookEvent } from './webhooks/herald-webhooks.js';
import { WebhookMetrics } from './webhooks/metrics.js';
import type { OccupancyObserver } from './core/hub.js';
import { Presence } from './presence/presence.js';
import { LocalOnlyStore, type PresenceStore, type StoreContext } from './presence/store.js';
import { RedisPresenceStore } from './presence/redis-store.js';
import type { LocalPresence } from './presence/local-presence.js';
import { PusherLayer } from './pusher/layer.js';
import { PusherTransport } from './pusher/transport.js';

/** Requests parsed behind a stream (pipelined) before its connection is closed: their objects are held meanwhile. */
const MAX_PARSED_BEHIND_STREAM = 8;
import { ServerApiCalls } from './api/calls.js';
import { serverApiRoutes } from './api/routes.js';
import { presenceRoute } from './presence/http.js';

/** The accept queue asked of the kernel (capped there by net.core.somaxconn, 4096 on current Linux). */
const LISTEN_BACKLOG = 4096;

export interface HeraldServerOptions {
  /** Use this broker instead of the one `config.broker` names (tests, embedding). */
  broker?: Broker;
  /**
   * Time for the node's ticker (heartbeats, expiry, close grace, poll deadlines) and the embedded broker's TTLs
   * (util/clock.ts). Tests pass a ManualClock to move it by hand; the system clock otherwise.
   */
  clock?: Clock;
  logger?: Logger;
  /**
   * Serve every connection with node:http alone: no front reader, no publish fast path. The reference that
   * test/http-differential.test.ts compares Herald's own readers with; not a setting.
   */
  nodeHttpOnly?: boolean;
  /** This process is a worker of `herald serve --workers N` (src/cluster/): its health routes answer for the machine. */
  cluster?: ClusterView;
  /** Where this node's presence members are shared (a worker on the embedded broker passes the primary's). */
  presenceStore?: (ctx: StoreContext) => PresenceStore;
  /**
   * The machine's channel occupancy (a worker on the embedded broker): webhooks' channel_occupied / vacated then
   * tell of the machine, not this node (docs/webhooks.md).
   */
  occupancy?: (listener: OccupancyObserver) => void;
}

export class HeraldServer {
  readonly node: HeraldNode;
  readonly http: Server;
  /**
   * The listening socket. Every connection is read first by the front reader (http/front.ts), which hands the ones
   * it does not serve to `http` through node's documented `server.emit('connection', socket)`.
   */
  private readonly listener: TcpServer;
  readonly log: Logger;
  /** Keys, tokens, namespaces, origins: what transports call (see auth/authorization.ts). */
  readonly auth: Authorization;
  /** What each channel keeps and allows (core/channel-policy.ts). */
  readonly policy: ChannelPolicy;
  private readonly sockets = new Set<Socket>();
  private readonly front: FrontReader;
  private readonly fastPublish: FastPublisher;
  /** Publishes node:http is answering (publishers are few): a drain makes their answers close the connection. */
  private readonly nodePublishes = new Set<ServerResponse>();
  /** One shared listener for every socket (a closure per socket would cost memory on every held stream). */
  private readonly forgetSocket = ((sockets: Set<Socket>) =>
    function (this: Socket): void {
      sockets.delete(this);
    })(this.sockets);
  /** Every node's figures, once a second (the admin dashboard's feed; shared with the other nodes). */
  readonly stats: ClusterStats;
  /** The admin dashboard, when it is on (an admin secret, or --dev). Its routes can be mounted on another listener. */
  readonly admin: AdminDashboard | undefined;
  private closing: Promise<void> | undefined;
  private readonly stopFaultLog: () => void;
  private readonly processMetrics: { stop(): void };
  /**
   * Operators' routes (/metrics; the admin pages add theirs here): on the internal listener when `internalPort` is
   * set, else on the public port. `/healthz` and `/readyz` answer on both.
   */
  readonly operatorRoutes: Router;
  private readonly internal: InternalListener | undefined;
  /** Webhook figures for every dispatcher of this server (Herald's own; a Pusher layer's passes `name: 'pusher'`). */
  readonly webhookMetrics: WebhookMetrics;
  /** Who is in each presence channel (src/presence/): the server API, /ws clients and other protocols use it. */
  readonly presence: Presence;
  /** The Pusher protocol (src/pusher/): `/app/{key}` and `/apps/{id}/...`, when a Pusher app is configured. */
  readonly pusher: PusherLayer | undefined;
  /** Herald's own webhooks (`webhook` URL), when configured. */
  readonly webhooks: WebhookDispatcher<HeraldWebhookEvent> | undefined;

  constructor(readonly config: HeraldConfig, options: HeraldServerOptions = {}) {
    this.log = options.logger ?? createLogger(config.logLevel, undefined, config.logFormat);
    const access = config.accessLog ? new AccessLog(this.log) : undefined;
    const metrics = createNodeMetrics(new MetricsRegistry());
    const broker = options.broker ?? createBroker(config, this.log, options.clock);
    this.processMetrics = registerProcessMetrics(metrics.registry, VERSION);
    // What each channel keeps and allows, from the config alone: the node (history) and auth (anonymous access,
    // limits, client publish) both ask it, so it comes first.
    this.policy = new ChannelPolicy(config);
    this.node = new HeraldNode(broker, config, this.log, metrics, this.policy, options.clock);
    if (options.occupancy) this.node.occupancyFrom(options.occupancy);

    this.presence = createPresence(config, this.node, this.policy, broker, this.log, options.presenceStore);
    this.webhookMetrics = new WebhookMetrics(metrics.registry);
    this.webhooks = startHeraldWebhooks(config, this.node, this.webhookMetrics, this.log);

    const hub = this.node.hub;
    this.auth = new Authorization(config, this.policy, (channel) => hub.memberCount(channel), metrics.registry);
    const auth = this.auth;
    const policy = this.policy;
    const flow = new PublicationMetrics(metrics.registry, Object.keys(config.namespaces), (channel) => policy.namespaceOf(channel));
    flow.timeBroker(broker);
    hub.observeFanOut(flow.fannedOut);
    metrics.registry.gauge(
      'herald_internal_errors_total',
      'Unexpected errors caught at a connection boundary (the connection was closed), by where; process-wide.',
      () => faultCounts('internal'),
      'counter',
    );
    metrics.registry.gauge(
      'herald_uncaught_errors_total',
      'Errors that escaped every handler, seen by the process guard of herald serve (the node kept running), by where.',
      () => faultCounts('uncaught'),
      'counter',
    );
    this.stopFaultLog = onFault((f) => {
      if (f.kind === 'internal') this.log.error('connection closed on an unexpected error', { where: f.where, err: describeError(f.error) });
    });
    metrics.registry.gauge(
      'herald_token_verifications_total',
      'Token signature checks run (verified tokens are cached by their SHA-256).',
      () => auth.tokens?.verifications ?? 0,
      'counter',
    );
    const clientAddress = new ClientAddress(config.trustedProxies);
    const stream: StreamContext = { node: this.node, authorizer: auth.authorizer, config, clientAddress };
    const publish = new PublishApi(config, this.node, this.policy, clientAddress);
    if (broker instanceof MemoryBroker) {
      const memo = broker.idempotency;
      metrics.registry.gauge('herald_idempotency_keys', 'Idempotency keys the memory broker remembers now.', () => memo.size());
      metrics.registry.gauge(
        'herald_idempotency_evicted_total',
        'Idempotency keys dropped before their window ended because the memory broker held its bound.',
        () => memo.evicted,
        'counter',
      );
    }
    /** Connections a stream holds or is opening on node:http's path, and how many requests were parsed behind it. */
    const streamSockets = new WeakMap<Socket, number>();
    const streamRoute = (transport: StreamTransport) => async (req: IncomingMessage, res: ServerResponse, q: URLSearchParams) => {
      streamSockets.set(req.socket, 0);
      try {
        await serveStream(stream, transport, streamRequestFromNode(req, q, clientAddress), () => {
          // A request pipelined behind another gets its socket only once the earlier answer is done, and never
          // behind a held stream: refuse it cleanly instead of letting detachSocket assert.
          if (res.socket !== req.socket) throw new HeraldError('bad_request', 'a stream request cannot be pipelined');
          res.detachSocket(req.socket);
        });
      } catch (err) {
        streamSockets.delete(req.socket);
        throw err;
      }
    };
    const streamTransports = new Map<string, StreamTransport>([
      [ROUTES.sub.path, httpStreamTransport],
      [ROUTES.sse.path, sseTransport],
    ]);
    this.pusher =
      config.pusherApps.length > 0
        ? new PusherLayer({
            node: this.node,
            config,
            presence: this.presence,
            webhookMetrics: this.webhookMetrics,
            log: this.log,
            clientAddress,
            peers: () => this.stats.nodes().map((n) => n.node),
            onRefused: (code) => {
              metrics.rejected.inc({ code });
              access?.refused('GET', '/app', code, 'ws');
            },
          })
        : undefined;
    const poll = new PollTransport(stream);
    metrics.registry.gauge('herald_poll_waiting', 'Long polls waiting for a message.', () => poll.waiting());
    const router = new Router(metrics, this.log, config, (req) =>
      checkDevHost(config, headerOf(req)('host')),
    );
    this.stats = new ClusterStats(this.node);
    this.admin =
      config.adminSecret !== '' || config.dev
        ? new AdminDashboard({
            node: this.node,
            stats: this.stats,
            secret: config.adminSecret === '' ? undefined : config.adminSecret,
            ...(options.cluster ? { machineKey: options.cluster.machineKey } : {}),
            publish: (channel, data) => this.node.publish(channel, data, { source: 'admin' }),
            addressOf: (req) => clientAddress.of(req.socket.remoteAddress, headerOf(req)),
            log: this.log,
            presence: this.presence,
          })
        : undefined;
    // The server API (docs/api.md): one route per call, with the publish API's keys and scopes.
    const apiCalls = new ServerApiCalls(this.node, this.presence, this.stats);
    const apiRoutes = serverApiRoutes({
      calls: apiCalls,
      authenticate: (req) => {
        const header = headerOf(req);
        return publish.authenticate({ authorization: req.headers.authorization, remoteAddress: req.socket.remoteAddress, header });
      },
      maxBodyBytes: config.maxBodyBytes,
      maxJsonDepth: config.maxJsonDepth,
    });
    for (const route of apiRoutes) router.add(route.path, route.handler, route.allow);
    // A subscriber's own presence question without a WebSocket (the SDK over SSE and polls).
    router.add('/presence', withCors(presenceRoute(this.presence, auth.authorizer, config, clientAddress), corsOrigins(config)));
    const metricsAllowed = metricsGate(config);
    for (const route of [ROUTES.sub, ROUTES.sse]) {
      const transport = streamTransports.get(route.path);
      if (transport) router.mount(route, withPreflight(streamRoute(transport), corsOrigins(config)));
    }
    router
      .mount(ROUTES.publish, (req, res) => {
        if (this.node.isDraining) {
          // Not published: say so, and that another node will take it (the connection closes after this answer).
          res.setHeader('Retry-After', String(DRAIN_RETRY_AFTER_SECONDS));
          res.setHeader('Connection', 'close');
          throw new HeraldError('unavailable', 'node is draining: retry on another node');
        }
        this.nodePublishes.add(res);
        res.once('close', () => this.nodePublishes.delete(res));
        return publish.handle(req, res);
      })
      .mount(ROUTES.poll, withPreflight(poll.handle, corsOrigins(config)))
      .mount(ROUTES.ws, () => {
        throw new HeraldError('bad_request', 'GET /ws is a WebSocket endpoint: send an Upgrade request');
      })
    if (this.pusher) router.addPrefix('/apps/', this.pusher.api.handle, 'GET, POST');
    const healthRoutes = (r: Router): Router =>
      r
        .mount(ROUTES.healthz, withCors((req, res) => serveHealth(req, res, VERSION, options.cluster), corsOrigins(config)))
        .mount(ROUTES.readyz, withCors((req, res) => serveReady(this.node, req, res, options.cluster), corsOrigins(config)));
    healthRoutes(router);
    this.operatorRoutes =
      config.internalPort === 0
        ? router
        : healthRoutes(
            new Router(metrics, this.log, config, (req) =>
              checkDevHost({ dev: config.dev, host: config.internalHost }, headerOf(req)('host')),
            ),
          );
    this.internal = config.internalPort === 0 ? undefined : new InternalListener(this.operatorRoutes, config);
    if (access) {
      const remoteOf = (req: IncomingMessage): string => clientAddress.of(req.socket.remoteAddress, headerOf(req));
      for (const r of new Set([router, this.operatorRoutes])) {
        r.watchRequests((req, res) => access.watch(req, res, req.url?.startsWith('/poll') ? 'poll' : 'http', remoteOf(req)));
      }
      this.node.onSessionClosed((session) => access.sessionClosed(session));
    }
    this.operatorRoutes.mount(ROUTES.metrics, (req, res) => serveMetrics(this.node, req, res, metricsAllowed, options.cluster));
    // The admin pages are operators' routes too: on the internal port when there is one.
    for (const route of this.admin?.routes() ?? []) this.operatorRoutes.add(route.path, route.handler, route.allow);

    const requestTimeoutMs = Math.max(config.headersTimeoutMs, 30_000);
    this.http = createHttpServer(
      {
        // The URL is checked against maxUrlBytes (414) before the header bound (431) can hide it.
        maxHeaderSize: config.maxHeaderBytes + config.maxUrlBytes,
        headersTimeout: config.headersTimeoutMs,
        requestTimeout: requestTimeoutMs,
        connectionsCheckingInterval: Math.min(1000, config.headersTimeoutMs),
        keepAliveTimeout: 5000,
        // The router refuses an HTTP/1.1 request without Host itself, with the documented JSON error.
        requireHostHeader: false,
      },
      (req, res) => {
        // A request node:http parsed behind a stream on the same connection (pipelined) is never answered: the
        // connection is the stream's, as on the front reader, which drops such bytes. Answering it would write a
        // response into the stream, or trip node:http's own ordering assertion once the stream took the socket.
        const behind = streamSockets.get(req.socket);
        if (behind === undefined) return router.handle(req, res);
        if (behind >= MAX_PARSED_BEHIND_STREAM) req.socket.destroy();
        else streamSockets.set(req.socket, behind + 1);
      },
    );
    this.fastPublish = new FastPublisher({
      authenticate: (head) => {
        try {
          return { scope: publish.authenticate(head) };
        } catch (err) {
          const e = toHeraldError(err);
          return { refused: { status: e.status, json: e.toJSON(), code: e.code } };
        }
      },
      publish: (scope, body) => publish.publish(scope, body),
      maxUrlBytes: config.maxUrlBytes,
      handOff: (socket, since) => this.front.handToNode(socket, since),
      maxHeaderBytes: config.maxHeaderBytes,
      maxBodyBytes: config.maxBodyBytes,
      headersTimeoutMs: config.headersTimeoutMs,
      requestTimeoutMs,
      onRefused: (code) => metrics.rejected.inc({ code }),
      onAnswered: access
        ? (status, bytes, ms, remote) => access.write({ method: 'POST', path: ROUTES.publish.path, status, bytes, ms, transport: 'http', remote })
        : undefined,
    });
    this.front = new FrontReader({
      serve: (req, takeOver) => {
        const transport = streamTransports.get(req.path);
        if (!transport) return Promise.reject(new HeraldError('not_found'));
        return serveStream(stream, transport, req, takeOver);
      },
      handOff: (socket) => this.http.emit('connection', socket),
      fastPublish: this.fastPublish,
      maxUrlBytes: config.maxUrlBytes,
      maxHeaderBytes: config.maxHeaderBytes,
      headersTimeoutMs: config.headersTimeoutMs,
      onRefused: (code, path, remote) => {
        metrics.rejected.inc({ code });
        access?.refused('GET', path ?? '-', code, 'http', remote);
      },
      clientAddress,
    });
    // node:http has a request head: the front reader's header clock for a handed-off connection stops.
    const headComplete = (req: IncomingMessage): void => this.front.headComplete(req.socket);
    this.http.prependListener('request', headComplete);
    this.http.prependListener('upgrade', headComplete);
    // Every new connection goes to the front reader first. The options are node:http's own for its sockets.
    this.listener = createTcpServer({ allowHalfOpen: true, noDelay: true }, (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', this.forgetSocket);
      if (options.nodeHttpOnly) handToNodeOnFirstRead(this.http, socket);
      else this.front.accept(socket);
    });
    // node:http starts its connection bookkeeping (headersTimeout, requestTimeout, closeIdleConnections) when it
    // hears 'listening': it listens through `listener`, so it is told when that one does.
    this.listener.on('listening', () => this.http.emit('listening'));
    const websocket = new WebSocketTransport({
      node: this.node,
      authorizer: stream.authorizer,
      config,
      mayPublish: (grant, channel, remoteAddress, otherSite) =>
        auth.mayClientPublish(channel, grant) || (config.dev && isLoopback(remoteAddress) && !otherSite),
      publish: (channel, data, json, key) =>
        this.node.publish(channel, data, { source: 'ws', ...(key !== undefined ? { idempotencyKey: key } : {}), ...(json ? { json } : {}) }),
      clientAddress,
      presence: this.presence,
      onRefused: (code) => {
        metrics.rejected.inc({ code });
        access?.refused('GET', '/ws', code, 'ws');
      },
    });
    this.http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      toOriginForm(req);
      if (this.pusher && PusherTransport.handles(req.url)) this.pusher.transport.handleUpgrade(req, socket, head);
      else websocket.handleUpgrade(req, socket, head);
    });
    this.http.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      // Malformed or timed-out requests: answer as node would, without a stack trace, and count them under
      // Herald's code (never the parser's own HPE_* code: labels stay a fixed set).
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      const code = status === 431 ? 'header_too_large' : status === 408 ? 'request_timeout' : 'bad_request';
      metrics.rejected.inc({ code });
      access?.refused('-', '-', code, 'http', socket.remoteAddress);
      if (!socket.writable) return socket.destroy();
      refuseAndClose(socket, new HeraldError(code));
    });
  }

  /** Start the broker and listen. Resolves with the bound address. */
  async listen(port = this.config.port, host = this.config.host): Promise<AddressInfo> {
    await this.node.start();
    this.front.start();
    await this.internal?.listen(this.config.internalPort, this.config.internalHost);
    await new Promise<void>((resolve, reject) => {
      this.listener.once('error', reject);
      // A deep accept queue (the kernel caps it at net.core.somaxconn): after a restart thousands of clients
      // reconnect within a second, and node's default of 511 drops the rest into SYN retransmits of 1, 3, 7 s...
      this.listener.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
        this.listener.off('error', reject);
        resolve();
      });
    });
    return this.listener.address() as AddressInfo;
  }

  /** Base URL of the internal listener (`internalPort`), when there is one. */
  get internalUrl(): string | undefined {
    const a = this.internal?.address;
    return a ? `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` : undefined;
  }

  /** Base URL for clients on this machine, e.g. http://127.0.0.1:8080. */
  get url(): string {
    const a = this.listener.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address === '::' ? '::1' : a.address}]` : a.address === '0.0.0.0' ? '127.0.0.1' : a.address;
    return `http://${host}:${a.port}`;
  }

  /**
   * Drain and stop: tell every stream to reconnect elsewhere, close idle publisher connections and refuse new
   * publishes (503 + Retry-After), and stop as soon as the last client is gone, or at drainTimeoutMs, when the rest
   * are closed. Then stop the broker.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    // Streams first: each gets its last "reconnect elsewhere" frame before node:http closes idle sockets (held
    // streams look idle to it, since they were taken over).
    this.node.drain();
    this.admin?.close();
    // Publishers: idle keep-alive connections close now, busy ones right after their last answer owed (it says
    // `Connection: close`); a publish not started yet gets 503 `unavailable` + Retry-After, never an ack.
    this.fastPublish.drain();
    for (const res of this.nodePublishes) if (!res.headersSent) res.setHeader('Connection', 'close');
    await new Promise((r) => setImmediate(r));
    this.http.closeIdleConnections();
    // The listener stays open until the clients are gone: a balancer's /readyz probe still gets its 503, and a late
    // publish its 503 + Retry-After rather than a refused connection.
    const deadline = Date.now() + this.config.drainTimeoutMs;
    while (this.sockets.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      // A connection node:http holds turns idle once its answer is out (node:http keeps it alive otherwise).
      this.http.closeIdleConnections();
    }
    const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    // node:http never listened itself: its close() stops its bookkeeping and says so (ERR_SERVER_NOT_RUNNING).
    this.http.close(() => undefined);
    this.http.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    this.front.stop();
    await closed;
    // Operators' port last: /readyz said 503 there too for the whole drain.
    await this.internal?.close();
    await this.node.stop();
    // The drain's disconnects and vacated channels are queued by now: one last attempt to send them.
    await this.webhooks?.close(Math.min(this.config.webhookTimeoutMs, 2000));
    await this.pusher?.close(Math.min(this.config.webhookTimeoutMs, 2000));
    this.stopFaultLog();
    this.processMetrics.stop();
  }
}

/**
 * `nodeHttpOnly`: node:http gets the connection as the front reader gives it (the first bytes read, then pushed
 * back), so that the reference sees its bytes arrive the way Herald's hand-off delivers them.
 */
function handToNodeOnFirstRead(http: Server, socket: Socket): void {
  socket.once('data', (chunk: Buffer) => {
    socket.pause();
    socket.unshift(chunk);
    http.emit('connection', socket);
    socket.resume();
  });
}

export function createHeraldServer(config: HeraldConfig, options?: HeraldServerOptions): HeraldServer {
  return new HeraldServer(config, options);
}

/**
 * Presence with the store the broker allows: per-node entries on Redis, the primary's index for a worker on the
 * embedded broker (`given`), or this node alone on the embedded broker.
 */
function createPresence(
  config: HeraldConfig,
  node: HeraldNode,
  policy: ChannelPolicy,
  broker: Broker,
  log: Logger,
  given: ((ctx: StoreContext) => PresenceStore) | undefined,
): Presence {
  const maxInfoBytes = config.presenceMaxInfoBytes;
  const storeFor = (local: LocalPresence): PresenceStore => {
    const ctx: StoreContext = {
      nodeId: node.nodeId,
      local,
      heartbeatMs: config.presenceHeartbeatSeconds * 1000,
      ttlMs: config.presenceTtlSeconds * 1000,
      maxInfoBytes,
    };
    if (given) return given(ctx);
    if (!(broker instanceof RedisBroker)) return new LocalOnlyStore();
    return new RedisPresenceStore(broker, ctx, log);
  };
  return new Presence(node, policy, storeFor, { maxInfoBytes, log });
}

/** The one place a concrete broker is picked. config.ts has already checked the URL's shape. */
export function createBroker(
  config: Pick<HeraldConfig, 'broker' | 'redisTimeoutMs' | 'redisProbeIntervalMs' | 'historyMaxBytes'>,
  log: Logger,
  clock?: Clock,
): Broker {
  if (config.broker === 'memory') return new MemoryBroker({ maxHistoryBytes: config.historyMaxBytes, ...(clock ? { clock } : {}) });
  return new RedisBroker({
    url: config.broker,
    timeoutMs: config.redisTimeoutMs,
    probeIntervalMs: config.redisProbeIntervalMs,
    log,
  });
}
