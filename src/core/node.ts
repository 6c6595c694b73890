/**
 * The node: one Herald process's live state. It owns the hub, every open session, the connection limits and the one
 * ticker that drives heartbeats and credential expiry for all sessions (no per-connection timers).
 */
import { randomBytes } from 'node:crypto';
import { hasHistory, NODE_CONTROL_CHANNEL, type Broker, type PublishOptions, type PublishResult } from '../broker/broker.js';
import type { HeraldConfig } from '../config.js';
import { HeraldError, type DisconnectReason } from '../errors.js';
import type { FrameEncoder } from '../protocol/frames.js';
import type { StreamPosition } from '../protocol/message-id.js';
import { systemClock, type Clock, type Repeating } from '../util/clock.js';
import type { Logger } from '../util/log.js';
import { ControlPath } from './control-path.js';
import { ChannelPolicy } from './channel-policy.js';
import { Hub, type OccupancyObserver } from './hub.js';
import type { NodeMetrics } from './metrics.js';
import { readMissed } from './recovery.js';
import {
  Session,
  type RecoveryOutcome,
  type SessionOptions,
  type SessionOwner,
  type SessionTarget,
} from './session.js';

/**
 * A client resuming: per target (in the order given to openSession/subscribe) the position it resumes from,
 * undefined where it has none. Any resume request puts the session in resume mode: every channel's position is
 * read, so the client can resume next time even from a channel that stayed quiet.
 */
export interface ResumeRequest {
  readonly since: readonly (StreamPosition | undefined)[];
}

/** How a caller publishes through HeraldNode.publish. */
export interface NodePublishOptions {
  /** Who publishes, for the metrics: the HTTP API, a WebSocket client, the CLI, the admin dashboard. */
  readonly source: 'api' | 'ws' | 'cli' | 'admin' | 'pusher';
  /** Publish at most once per (channel, key) within `idempotencyWindowSeconds` (already checked for shape). */
  readonly idempotencyKey?: string;
  /** `data` is JSON text made by JSON.stringify (a JSON value that is not a string): Publication.json. */
  readonly json?: boolean;
}

const TICK_MS = 1000;

/**
 * What the node tells observers (webhooks/herald-webhooks.ts): a session opened (every subscription of its opening
 * live) and ended (only sessions that were announced opened), and a channel's first local subscriber and last.
 * Called synchronously: an observer must only queue work.
 */
export interface NodeObserver {
  sessionOpened?(session: Session): void;
  sessionEnded?(session: Session, reason: DisconnectReason | 'client_gone'): void;
  channelOccupied?(channel: string): void;
  channelVacated?(channel: string): void;
  /** A session's subscription to one target is live (presence: a member joins). */
  subscribed?(session: Session, target: SessionTarget): void;
  /** A session no longer holds one target (unsubscribed, or the session ended). */
  unsubscribed?(session: Session, target: SessionTarget): void;
}

export class HeraldNode implements SessionOwner {
  /** Random per start, 7 base-36 characters: names this node to its peers and prefixes its session ids. */
  readonly nodeId = newNodeId();
  readonly hub: Hub;
  /** Messages to and from the other nodes on the same broker (core/control-path.ts). */
  readonly control: ControlPath;
  /** Open sessions per transport (`herald_open_sessions`); they add up to `sessionCount()`. */
  private readonly byTransport = new Map<string, number>();
  /**
   * Open sessions by `Session.seq`: the registry behind `findSession`. A Map costs one word per entry more than a
   * Set did, for a lookup by id that needs no scan (the admin page's disconnect, the server API's).
   */
  private readonly sessions = new Map<number, Session>();
  private readonly perIp = new Map<string, number>();
  private ticker: Repeating | undefined;
  private ticks = 0;
  /** Work that runs on the node's one ticker besides heartbeats and expiry (e.g. answering timed-out polls). */
  private readonly tickHooks: ((now: number) => void)[] = [];
  private draining = false;
  private closedObserver: ((session: Session) => void) | undefined;
  private brokerLost = false;
  /** Subscriptions waiting for the broker (HeraldNode.subscribe), woken together by `wakeBrokerWaiters`. */
  private brokerWaiters: (() => void)[] = [];
  private readonly observers: NodeObserver[] = [];
  /** Work done by `stop` before the broker closes (presence removes this node's entries). */
  private readonly stopHooks: (() => Promise<void>)[] = [];
  /** Sessions announced to observers as opened, so only they are announced ended (made with the first observer). */
  private announced: WeakSet<Session> | undefined;

  constructor(
    readonly broker: Broker,
    private readonly config: HeraldConfig,
    private readonly log: Logger,
    readonly metrics: NodeMetrics,
    /** What each channel keeps and allows (core/channel-policy.ts); by default the config's. */
    readonly policy: ChannelPolicy = new ChannelPolicy(config),
    /** Time for the ticker and every deadline it keeps (util/clock.ts): a unit test's ManualClock moves it by hand. */
    readonly clock: Clock = systemClock,
  ) {
    this.hub = new Hub(broker, log);
    this.control = new ControlPath(broker, this.nodeId, log);
    metrics.registry.gauge('herald_sessions', 'Open client streams.', () => this.sessions.size);
    metrics.registry.gauge('herald_hub_channels', 'Channels with local subscribers.', () => this.hub.channelCount());
    metrics.registry.gauge('herald_hub_subscriptions', 'Local (session, channel) subscriptions.', () =>
      this.hub.subscriptionCount(),
    );
    metrics.registry.gauge('herald_open_sessions', 'Open client streams, by transport.', () =>
      [...this.byTransport].map(([transport, n]): [Record<string, string>, number] => [{ transport }, n]),
    );
    metrics.registry.gauge('herald_delivered_total', 'Frames handed to subscribers.', () => this.hub.deliveries, 'counter');
    metrics.registry.gauge(
      'herald_hub_publications_total',
      'Messages this node delivered to at least one of its own subscribers.',
      () => this.hub.publications,
      'counter',
    );
    metrics.registry.gauge('herald_broker_channels', 'Channels this node subscribes at the broker.', () =>
      broker.subscribedCount(),
    );
    const usage = hasHistory(broker) ? broker.historyUsage?.bind(broker) : undefined;
    if (usage) {
      metrics.registry.gauge('herald_history_bytes', 'Estimated bytes of history kept in this process (bounded by historyMaxBytes).', () => usage().bytes);
      metrics.registry.gauge('herald_history_channels', 'Channels with a history position kept in this process.', () => usage().channels);
      metrics.registry.gauge(
        'herald_history_evictions_total',
        'Channels whose history was dropped early to stay within historyMaxBytes.',
        () => usage().evictions,
        'counter',
      );
    }
    metrics.registry.gauge(
      'herald_broker_waiting',
      'Subscriptions waiting for an unreachable broker to come back (brokerWaitMs).',
      () => this.brokerWaiters.length,
    );
    metrics.registry.gauge('herald_broker_ready', '1 when the broker can publish and deliver now, else 0.', () =>
      broker.isReady() ? 1 : 0,
    );
  }

  async start(): Promise<void> {
    await this.broker.start({
      onPublication: (p) => (p.channel === NODE_CONTROL_CHANNEL ? this.control.receive(p) : this.hub.onPublication(p)),
      onConnectionChange: (ready, scope) => this.brokerConnectionChanged(ready, scope),
    });
    await this.control.start();
    this.ticker = this.clock.every(TICK_MS, () => this.tick());
  }

  get isDraining(): boolean {
    return this.draining;
  }

  isReady(): boolean {
    return !this.draining && this.broker.isReady();
  }

  sessionCount(): number {
    return this.sessions.size;
  }

  /** Open sessions per transport (e.g. `{ sse: 3, ws: 1 }`); transports that had sessions stay, at 0. */
  sessionsByTransport(): Record<string, number> {
    return Object.fromEntries(this.byTransport);
  }

  /** The open session with this client id (`Session.id`), if this node holds it. */
  findSession(id: string): Session | undefined {
    const dash = id.lastIndexOf('-');
    if (dash < 0 || id.slice(0, dash) !== this.nodeId) return undefined;
    const digits = id.slice(dash + 1);
    if (!/^[0-9a-z]{1,11}$/.test(digits)) return undefined;
    const session = this.sessions.get(parseInt(digits, 36));
    return session && !session.isEnded ? session : undefined;
  }

  /** The open sessions subscribed to `channel` on this node (each once, whatever labels it holds the channel under). */
  sessionsOn(channel: string): Session[] {
    const found = new Set<Session>();
    for (const member of this.hub.membersOf(channel)) if (member instanceof Session && !member.isEnded) found.add(member);
    return [...found];
  }

  /** Every open session (for listings; the caller bounds what it keeps). */
  openSessions(): IterableIterator<Session> {
    return this.sessions.values();
  }

  /** Be told of sessions opening and ending and channels occupied and vacated on this node (see NodeObserver). */
  observe(observer: NodeObserver): void {
    this.observers.push(observer);
    this.announced ??= new WeakSet();
    if ((observer.channelOccupied || observer.channelVacated) && !this.occupancyOfMachine) {
      this.hub.occupancyObserver = this.tellOccupancy;
    }
  }

  /** Observers hear the machine's occupancy, not this node's hub (set by `occupancyFrom`). */
  private occupancyOfMachine = false;

  /**
   * From now on, observers' channelOccupied / channelVacated are the machine's, not this node's: `source` calls back
   * when a channel gets its first subscriber on any worker, and when its last one anywhere leaves (a worker on the
   * embedded broker: src/cluster/, docs/webhooks.md). Call before the node has sessions.
   */
  occupancyFrom(source: (listener: OccupancyObserver) => void): void {
    this.occupancyOfMachine = true;
    this.hub.occupancyObserver = undefined;
    source(this.tellOccupancy);
  }

  private readonly tellOccupancy: OccupancyObserver = (channel, occupied) => {
    for (const o of this.observers) {
      if (occupied) o.channelOccupied?.(channel);
      else o.channelVacated?.(channel);
    }
  };

  /** Run `hook` when the node stops, after the drain and before the broker closes. */
  beforeStop(hook: () => Promise<void>): void {
    this.stopHooks.push(hook);
  }

  /** Run `hook` on every tick of the node's one timer (once a second): transports sweep their deadlines here. */
  onTick(hook: (now: number) => void): void {
    this.tickHooks.push(hook);
  }

  /**
   * The one publish path, whoever publishes (the publish API, a WebSocket client, `herald publish --broker`): the
   * channel's history and the idempotency window are worked out here, the broker publishes, and the publish is
   * counted by its source. Rejects as the broker does (503 `unavailable`: not published; 504 `outcome_unknown`).
   */
  async publish(channel: string, data: string, options: NodePublishOptions): Promise<PublishResult> {
    const history = this.policy.history(channel);
    const key = options.idempotencyKey;
    const broker: PublishOptions = {
      ...(history ? { history } : {}),
      ...(key !== undefined ? { idempotency: { key, windowMs: this.config.idempotencyWindowSeconds * 1000 } } : {}),
      ...(options.json === true ? { json: true } : {}),
    };
    const result = await this.broker.publish(channel, data, broker);
    if (result.replayed) this.metrics.replayed.inc({ source: options.source });
    else this.metrics.published.inc({ source: options.source });
    return result;
  }

  /** Throws 503 when the node is draining or full, 429 when the client's address holds too many connections. */
  admit(remoteAddress: string): void {
    if (this.draining) throw new HeraldError('unavailable', 'node is draining');
    const { maxConnections, maxConnectionsPerIp } = this.config;
    if (maxConnections > 0 && this.sessions.size >= maxConnections) {
      throw new HeraldError('unavailable', `node holds its limit of ${maxConnections} connections`);
    }
    if (maxConnectionsPerIp > 0 && (this.perIp.get(remoteAddress) ?? 0) >= maxConnectionsPerIp) {
      throw new HeraldError('too_many_requests', `address holds its limit of ${maxConnectionsPerIp} connections`);
    }
  }

  /**
   * Open a session on its channels. Resolves once every subscription is live; on failure nothing is left subscribed.
   */
  async openSession(
    codec: FrameEncoder,
    targets: readonly SessionTarget[],
    options: SessionOptions,
    resume?: ResumeRequest,
  ): Promise<Session> {
    this.admit(options.remoteAddress);
    const session = new Session(this, codec, options);
    this.sessions.set(session.seq, session);
    const transport = options.transport;
    this.byTransport.set(transport, (this.byTransport.get(transport) ?? 0) + 1);
    this.perIp.set(options.remoteAddress, (this.perIp.get(options.remoteAddress) ?? 0) + 1);
    try {
      await this.subscribe(session, targets, resume);
    } catch (err) {
      session.clientGone();
      throw err;
    }
    this.metrics.connectionsOpened.inc({ transport: options.transport });
    if (this.announced && !session.isEnded) {
      this.announced.add(session);
      for (const o of this.observers) o.sessionOpened?.(session);
    }
    return session;
  }

  /**
   * Add channels to an open session (also used by transports that subscribe after connecting). With `resume`, each
   * channel joins live first, then its history after the client's position is read and delivered, then the live
   * messages held meanwhile are released without duplicates (Session.endRecovery).
   *
   * While the broker cannot serve these channels (unreachable, or its history unreadable), the call waits for it up
   * to `brokerWaitMs`, re-trying at its return and at each tick of the node's one timer (no timer per connection; the
   * session is admitted, so the wait counts against the connection limits). Then it rejects with
   * `broker_unavailable`, a retryable answer on every transport, and leaves none of these channels subscribed.
   * A session ended meanwhile (the node drains) makes it return: the transport says the session's last words.
   */
  async subscribe(session: Session, targets: readonly SessionTarget[], resume?: ResumeRequest): Promise<void> {
    if (resume && resume.since.length !== targets.length) throw new Error('resume.since must match targets');
    if (resume) session.announcePositions = true;
    const deadline = this.clock.now() + this.config.brokerWaitMs;
    let recover: Recovering[];
    for (;;) {
      while (!this.brokerServes(targets)) {
        if (session.isEnded) return;
        if (this.clock.now() >= deadline) throw new HeraldError('broker_unavailable', 'broker unreachable: retry shortly');
        await this.brokerEvent();
      }
      if (session.isEnded) return;
      const joined = await this.join(session, targets, resume);
      if (joined.ok) {
        recover = joined.recover;
        if (!session.isEnded) for (const t of joined.added) for (const o of this.observers) o.subscribed?.(session, t);
        break;
      }
      this.dropTargets(session, joined.added);
      if (!isBrokerOutage(joined.error) || this.clock.now() >= deadline) throw outageError(joined.error);
      await this.brokerEvent();
    }
    if (recover.length === 0) return;
    // Every channel is live now: what is published from here on is held, so history read now leaves no gap. A read
    // that fails is tried again (the live messages stay held, bounded by maxQueueBytes) until the deadline.
    const outcomes: (RecoveryOutcome | undefined)[] = recover.map(() => undefined);
    for (;;) {
      const todo = recover.flatMap((r, i) => (outcomes[i] === undefined ? [i] : []));
      const reads = await Promise.allSettled(
        todo.map((i) => readMissed(this.broker, this.policy.history(recover[i]!.target.channel), recover[i]!.target.channel, recover[i]!.since)),
      );
      let failure: unknown;
      reads.forEach((r, j) => {
        if (r.status === 'fulfilled') outcomes[todo[j]!] = r.value;
        else failure ??= r.reason;
      });
      if (failure === undefined) break;
      if (session.isEnded) return;
      if (!isBrokerOutage(failure) || this.clock.now() >= deadline) {
        this.dropTargets(session, recover.map((r) => r.target));
        throw outageError(failure, 'history cannot be read');
      }
      await this.brokerEvent();
      if (session.isEnded) return;
    }
    outcomes.forEach((o, i) => {
      const { target, since } = recover[i]!;
      if (o) session.endRecovery(target.label, o, since === undefined);
    });
  }

  /** Join the hub for each target the session does not hold yet; says which were added and which recover. */
  private async join(
    session: Session,
    targets: readonly SessionTarget[],
    resume: ResumeRequest | undefined,
  ): Promise<{ ok: true; added: SessionTarget[]; recover: Recovering[] } | { ok: false; added: SessionTarget[]; error: unknown }> {
    const joins: Promise<void>[] = [];
    const added: SessionTarget[] = [];
    const recover: Recovering[] = [];
    targets.forEach((t, i) => {
      if (session.targets.some((s) => s.channel === t.channel && s.label === t.label)) return;
      // A fresh exact-size array: push() or spread would reserve room for 16 more on every held connection.
      session.targets = session.targets.concat([t]);
      added.push(t);
      session.track(t.label, resume?.since[i]);
      if (resume && session.beginRecovery(t.label)) recover.push({ target: t, since: resume.since[i] });
      joins.push(this.hub.join(t.channel, t.label, session.codec, session));
    });
    const results = await Promise.allSettled(joins);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    return failed ? { ok: false, added, error: failed.reason } : { ok: true, added, recover };
  }

  /**
   * Undo a subscribe that failed: its channels are left and forgotten (with any live messages held for them), so a
   * retry starts clean and a client told "not subscribed" holds none of them.
   */
  private dropTargets(session: Session, targets: readonly SessionTarget[]): void {
    for (const t of targets) {
      const i = session.targets.findIndex((s) => s.channel === t.channel && s.label === t.label);
      if (i < 0) continue;
      session.targets = session.targets.filter((_, j) => j !== i);
      session.untrack(t.label);
      this.hub.leave(t.channel, t.label, session.codec, session);
      for (const o of this.observers) o.unsubscribed?.(session, t);
    }
    session.forgetHeld();
  }

  /** Can the broker serve every one of these channels now (on Cluster: is each one's shard up)? */
  private brokerServes(targets: readonly SessionTarget[]): boolean {
    if (targets.length === 0) return true;
    if (this.brokerLost) return false;
    for (const t of targets) if (!(this.broker.isReadyFor?.(t.channel) ?? this.broker.isReady())) return false;
    return true;
  }

  /** Resolves at the next broker event: its connection restored, the next tick of the node's timer, or the drain. */
  private brokerEvent(): Promise<void> {
    return new Promise((resolve) => this.brokerWaiters.push(resolve));
  }

  /** Wake every subscription waiting for the broker: each checks again whether it can go on. */
  private wakeBrokerWaiters(): void {
    if (this.brokerWaiters.length === 0) return;
    const waiters = this.brokerWaiters;
    this.brokerWaiters = [];
    for (const wake of waiters) wake();
  }

  unsubscribe(session: Session, target: SessionTarget): void {
    const i = session.targets.findIndex((s) => s.channel === target.channel && s.label === target.label);
    if (i < 0) return;
    session.targets.splice(i, 1);
    session.untrack(target.label);
    this.hub.leave(target.channel, target.label, session.codec, session);
    for (const o of this.observers) o.unsubscribed?.(session, target);
  }

  /** SessionOwner: count reload notices, the losses clients had to repair. */
  reloadSent(reason: string): void {
    this.metrics.reloads.inc({ reason });
  }

  /**
   * SessionOwner: a live message on `label` skipped offsets, or began a new epoch after its first message; the
   * session holds its live messages meanwhile.
   */
  recoverGap(session: Session, label: string, cause: 'gap' | 'epoch'): void {
    const target = session.targets.find((t) => t.label === label);
    if (!target) return;
    // Messages can flow on a rebuilt broker link before it reports ready: the history read would fail now. The
    // session keeps holding; the coming onConnectionChange(true) recovers every channel.
    if (this.brokerLost || !(this.broker.isReadyFor?.(target.channel) ?? this.broker.isReady())) return;
    // A poll that holds its answer already (e.g. a replay cut where its queue was full) needs no read: the next poll
    // reads on from the answer's cursor.
    if (session.options.replayInPieces && session.hasUnsent()) return;
    this.metrics.recoveries.inc({ cause });
    this.recoverOne(session, target, session.positionOf(label), new Map());
  }

  /**
   * The broker lost its connection (messages may have been published meanwhile) and got it back with every
   * subscription restored: every session re-reads each channel's history from its last delivered position, or is
   * told to reload where that cannot be done. One read per (channel, position) serves every session there.
   * With a `scope` (one Redis Cluster shard) only the channels in it: the others never stopped.
   */
  private brokerConnectionChanged(ready: boolean, scope?: (channel: string) => boolean): void {
    this.log.warn(ready ? 'broker connection restored' : 'broker connection lost', scope ? { scope: 'shard' } : {});
    if (scope) {
      // Lost: the shard's channels are held (and recoverGap skips them while their shard is down). Back: recover them.
      if (ready) this.recoverAll(scope);
      else this.holdAll(scope);
      if (ready) this.wakeBrokerWaiters();
      return;
    }
    if (!ready) {
      this.brokerLost = true;
      this.holdAll(() => true);
      return;
    }
    // Subscriptions that waited for this moment go on now, not at the next tick.
    this.wakeBrokerWaiters();
    if (!this.brokerLost) return;
    this.brokerLost = false;
    this.recoverAll(() => true);
  }

  /**
   * Hold every channel in `scope` from now until its history is read again: messages may flow on a rebuilt link
   * before it reports ready, and none may be judged against positions from the lost link meanwhile (a read stamp
   * above all: Session.deliverLive takes a new epoch's first message after one as nothing missed).
   */
  private holdAll(scope: (channel: string) => boolean): void {
    for (const session of this.sessions.values()) {
      for (const target of session.targets) if (scope(target.channel)) session.beginRecovery(target.label);
    }
  }

  /** Every session re-reads each channel in `scope` from its last delivered position. */
  private recoverAll(scope: (channel: string) => boolean): void {
    const reads = new Map<string, Promise<RecoveryOutcome>>();
    for (const session of this.sessions.values()) {
      for (const target of session.targets) {
        if (!scope(target.channel)) continue;
        // Also when it is already holding (a gap seen before the broker reported ready, or a read in flight): a
        // recovery applied twice delivers nothing twice (Session.endRecovery skips what was delivered).
        session.beginRecovery(target.label);
        this.metrics.recoveries.inc({ cause: 'broker' });
        this.recoverOne(session, target, session.positionOf(target.label), reads);
      }
    }
  }

  /** Read and apply one channel's recovery for a session already holding its live messages. */
  private recoverOne(
    session: Session,
    target: SessionTarget,
    since: StreamPosition | undefined,
    reads: Map<string, Promise<RecoveryOutcome>>,
  ): void {
    const key = target.channel + '\u0000' + (since ? `${since.offset}-${since.epoch}` : '');
    let read = reads.get(key);
    if (!read) {
      read = readMissed(this.broker, this.policy.history(target.channel), target.channel, since, 'broker_lost');
      reads.set(key, read);
    }
    read.then(
      (outcome) => session.endRecovery(target.label, outcome, false),
      (err: unknown) => {
        this.log.warn('history read failed: telling the client to reload', { conn: session.id, channel: target.channel, err: String(err) });
        session.endRecovery(target.label, { publications: [], reload: 'broker_lost' }, false);
      },
    );
  }

  /**
   * SessionOwner: a session's stream ended; release its channels. It stays counted against the limits until its
   * socket closes (`sessionClosed`): a client being told why it is cut still holds a connection.
   */
  sessionEnded(session: Session, reason: DisconnectReason | 'client_gone'): void {
    if (this.sessions.get(session.seq) !== session) return;
    for (const t of session.targets) {
      this.hub.leave(t.channel, t.label, session.codec, session);
      for (const o of this.observers) o.unsubscribed?.(session, t);
    }
    session.targets.length = 0;
    if (this.announced?.delete(session)) for (const o of this.observers) o.sessionEnded?.(session, reason);
    if (reason !== 'client_gone') {
      this.metrics.disconnects.inc({ reason });
      if (reason === 'slow') {
        this.log.warn('client disconnected: outgoing queue full', {
          conn: session.id,
          transport: session.options.transport,
          remote: session.options.remoteAddress,
          limitBytes: this.config.maxQueueBytes,
          queuedBytes: session.queuedBytes(),
        });
      }
    }
  }

  /** Be told of every session whose socket closed (the access log). */
  onSessionClosed(observer: (session: Session) => void): void {
    this.closedObserver = observer;
  }

  /** SessionOwner: a session's socket closed; it no longer counts against the connection limits. */
  sessionClosed(session: Session): void {
    if (!this.sessions.delete(session.seq)) return;
    const transport = session.options.transport;
    this.byTransport.set(transport, (this.byTransport.get(transport) ?? 1) - 1);
    this.closedObserver?.(session);
    const ip = session.options.remoteAddress;
    const n = (this.perIp.get(ip) ?? 1) - 1;
    if (n <= 0) this.perIp.delete(ip);
    else this.perIp.set(ip, n);
  }

  /** Stop admitting and tell every client to reconnect elsewhere. */
  drain(): void {
    this.draining = true;
    for (const s of [...this.sessions.values()]) s.disconnect('shutdown');
    // Subscriptions waiting for the broker see their session ended and return: the client is told `shutdown`.
    this.wakeBrokerWaiters();
  }

  async stop(): Promise<void> {
    this.drain();
    this.ticker?.stop();
    await Promise.all(this.stopHooks.map((hook) => hook().catch(() => undefined)));
    await this.broker.close();
  }

  /** SessionOwner: the time (milliseconds since the epoch) on the node's clock. */
  now(): number {
    return this.clock.now();
  }

  private tick(): void {
    this.ticks++;
    const now = this.clock.now();
    const heartbeat = this.ticks % Math.max(1, Math.round((this.config.heartbeatSeconds * 1000) / TICK_MS)) === 0;
    for (const s of this.sessions.values()) {
      if (s.isEnded) s.closeIfOverdue(now, this.config.closeGraceMs);
      else if (s.expiresAt !== undefined && s.expiresAt <= now) s.disconnect('expired');
      else if (heartbeat) s.heartbeat();
    }
    this.control.retry();
    for (const hook of this.tickHooks) hook(now);
    // Once a second, subscriptions waiting for the broker look again (and those past brokerWaitMs give up).
    this.wakeBrokerWaiters();
  }
}

/** A channel being joined with resume: the position its history is read from. */
interface Recovering {
  readonly target: SessionTarget;
  readonly since: StreamPosition | undefined;
}

/** A failure that waiting for the broker may cure: the broker refused (unreachable, not ready, read failed). */
function isBrokerOutage(err: unknown): boolean {
  return err instanceof HeraldError && (err.code === 'unavailable' || err.code === 'broker_unavailable');
}

/** What a subscribe that failed on the broker answers: `broker_unavailable`, a retryable signal. Others as they are. */
function outageError(err: unknown, what = 'broker unreachable'): unknown {
  if (!isBrokerOutage(err)) return err;
  return new HeraldError('broker_unavailable', `${what} (${(err as HeraldError).message}): retry shortly`, { cause: err });
}

function newNodeId(): string {
  // 36^7 ≈ 7.8e10 ids: two nodes of one cluster drawing the same is not a practical worry.
  return (randomBytes(6).readUIntBE(0, 6) % 36 ** 7).toString(36).padStart(7, '0');
}
