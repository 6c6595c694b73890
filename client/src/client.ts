/**
 * HeraldClient: one logical subscription that survives its connections. It opens the first transport that works
 * (WebSocket, then SSE, then long-polling by default), reconnects with full-jitter backoff when a connection drops,
 * and resumes every time from the last id it delivered, so the application sees each message once and in order.
 * While it waits out a backoff delay it watches the server's readiness (probe.ts) and restarts the backoff as soon as
 * an outage is over, so a long outage does not leave it asleep for the backoff's cap after the server is back.
 */
import { fullJitterDelay } from './backoff.js';
import { SeenIds } from './dedupe.js';
import { Emitter } from './emitter.js';
import { normalizeBaseUrl, resolveOptions, type ResolvedOptions } from './options.js';
import { resolvePlatform, type ResolvedPlatform } from './platform.js';
import { ReadyProbe } from './probe.js';
import { tokenChannels, tokenExpiry, TOKEN_REFRESH_MARGIN_MS } from './token.js';
import { pollTransport } from './transports/poll.js';
import { sseTransport } from './transports/sse.js';
import type { ConnectRequest, ServerDisconnect, Transport, TransportConnection } from './transports/transport.js';
import { websocketTransport } from './transports/websocket.js';
import type { ClientEvents, ClientOptions, ClientState, PresenceMember, PresenceResult, PresenceStats, TransportName } from './types.js';
import { memberOf, query } from './wire.js';

const TRANSPORTS: Record<TransportName, Transport> = {
  websocket: websocketTransport,
  sse: sseTransport,
  poll: pollTransport,
};

/** HTTP statuses after which trying again cannot help (401 can, when a fresh token can be had). */
const FATAL_STATUS = new Set([400, 403]);

export class HeraldClient extends Emitter<ClientEvents> {
  private readonly options: ResolvedOptions;
  private readonly platform: ResolvedPlatform;
  private readonly baseUrl: string;
  private readonly transports: readonly Transport[];
  private currentState: ClientState = 'disconnected';
  private token: string | undefined;
  private tokenStale = false;
  /** Channel label → last delivered id: where the next connection resumes. */
  private readonly since: Map<string, string>;
  private readonly seen: SeenIds;
  private readonly probe: ReadyProbe;
  private connection: TransportConnection | undefined;
  private connectedTransport: TransportName | undefined;
  private retryTimer: unknown;
  private connectTimer: unknown;
  /** Failed rounds (every transport tried) since the last successful connection. */
  private attempt = 0;
  /** Index of the transport that connected last: each round starts there. */
  private preferred = 0;
  /** Index being tried, and how many transports this round has tried. */
  private current = 0;
  private tried = 0;
  /**
   * What this round's failures said of the server: 'unreachable' (no answer), 'not_ready' (503), or nothing when
   * they say no outage (say a 429). Told to the probe when the round fails, unless the probe itself started it.
   */
  private roundOutage: 'unreachable' | 'not_ready' | undefined;
  /** This round was started by the probe's "ready": its failure is no new evidence of an outage. */
  private roundFromProbe = false;
  /** This round's server said `broker_unavailable` (up, its broker down). */
  private roundBrokerDown = false;
  /** The last failed round said so: the backoff is capped at outageMaxReconnectDelayMs (see schedule). */
  private brokerOutage = false;
  /** Bumped by connect() and disconnect(): late callbacks of an older run see a different number and do nothing. */
  private generation = 0;
  /**
   * The channel names to subscribe, changed by subscribe()/unsubscribe(). Undefined until the first change: then the
   * options' channels, or (none given) every exact channel of the token, as `channels()` says.
   */
  private chosen: string[] | undefined;

  /**
   * @param url Herald's base URL, e.g. `https://push.example.com` (a `ws(s)://` URL is accepted too); a path is kept
   *   as a prefix of every endpoint.
   */
  constructor(url: string, options: ClientOptions) {
    super();
    this.options = resolveOptions(options);
    this.platform = resolvePlatform(options.platform);
    this.baseUrl = normalizeBaseUrl(url);
    this.transports = this.options.transports.map((name) => TRANSPORTS[name]);
    this.token = this.options.token;
    this.since = new Map(this.options.since);
    this.seen = new SeenIds(this.options.dedupeWindow);
    this.probe = new ReadyProbe(`${this.baseUrl}/readyz`, this.options.readyProbeIntervalMs, this.platform, () =>
      this.serverReady(),
    );
  }

  get state(): ClientState {
    return this.currentState;
  }

  /** The transport of the live connection, when connected. */
  get transport(): TransportName | undefined {
    return this.currentState === 'connected' ? this.connectedTransport : undefined;
  }

  /** Where the next connection resumes: channel → last delivered id. Store it to resume across page loads. */
  positions(): Record<string, string> {
    return Object.fromEntries(this.since);
  }

  /** Start connecting; does nothing unless disconnected. */
  connect(): void {
    if (this.currentState !== 'disconnected') return;
    this.generation++;
    this.attempt = 0;
    this.beginRound();
    this.setState('connecting');
    this.emit('connecting', { attempt: 0, delayMs: 0, reason: 'connect' });
    void this.tryTransport(this.generation);
  }

  /** The channels this client subscribes (by name; sealed keys are in the options). */
  subscriptions(): string[] {
    return [...this.channels()];
  }

  /**
   * Subscribe one more channel, now or at the next connection. Over WebSocket it is added to the live connection;
   * over SSE and long-polling the connection is reopened with the new set, resuming every channel from its last id.
   */
  subscribe(channel: string): void {
    const list = (this.chosen ??= [...this.channels()]);
    if (list.includes(channel)) return;
    list.push(channel);
    this.applyChange((c) => c.subscribe?.(channel, this.since.get(channel)));
  }

  /** Stop listening to a channel (its resume position is forgotten). Like subscribe(), in place over WebSocket. */
  unsubscribe(channel: string): void {
    const list = (this.chosen ??= [...this.channels()]);
    const i = list.indexOf(channel);
    if (i < 0) return;
    list.splice(i, 1);
    this.since.delete(channel);
    this.seen.forget(channel);
    this.applyChange((c) => c.unsubscribe?.(channel));
  }

  /**
   * A changed channel set reaches the server: in place on a live WebSocket; else the connection (live, or an attempt
   * in flight, built with the old set) is reopened. Waiting out a backoff, the next attempt takes the new set.
   */
  private applyChange(inPlace: (c: TransportConnection) => void): void {
    const c = this.connection;
    if (!c || this.currentState === 'disconnected') return;
    if (this.currentState === 'connected' && c.subscribe && c.unsubscribe) inPlace(c);
    else this.reopen('subscriptions changed');
  }

  /**
   * Who is in a channel this client subscribes to, where the channel keeps presence (docs/presence.md). Needs a live
   * WebSocket connection (over SSE or long-polling, ask your backend: the server API's `presence`).
   */
  async presence(channel: string): Promise<PresenceResult> {
    const r = await this.ask('presence', channel);
    const members = Array.isArray(r['members']) ? (r['members'] as unknown[]).map(memberOf).filter((m): m is PresenceMember => m !== undefined) : [];
    return { channel, members, truncated: r['truncated'] === true };
  }

  /** A channel's counts: clients (connections) and distinct users. Like presence(), over WebSocket. */
  async presenceStats(channel: string): Promise<PresenceStats> {
    const r = await this.ask('presence_stats', channel);
    return { channel, clients: Number(r['clients']) || 0, users: Number(r['users']) || 0 };
  }

  /** Over the live WebSocket; else `GET /presence` with the client's credentials (SSE, polls, or not connected). */
  private async ask(op: string, channel: string): Promise<Record<string, unknown>> {
    const request = this.currentState === 'connected' ? this.connection?.request : undefined;
    if (request) return request(op, { channel });
    const fetch = this.platform.fetch;
    if (!fetch) throw new Error(`${op} needs a WebSocket connection or fetch`);
    const isKey = this.options.keys.includes(channel);
    const params: [string, string | undefined][] = [[isKey ? 'key' : 'channel', channel], ['token', this.token], ['stats', op === 'presence_stats' ? '1' : undefined]];
    const res = await fetch(`${this.baseUrl}/presence${query(params)}`, { credentials: this.options.withCredentials ? 'include' : 'same-origin' });
    const body: unknown = JSON.parse(await res.text());
    const answer = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
    if (res.status !== 200) {
      const e = (answer['error'] ?? {}) as { code?: unknown; message?: unknown };
      throw new Error(`${typeof e.code === 'string' ? e.code : res.status}: ${typeof e.message === 'string' ? e.message : 'refused'}`);
    }
    return answer;
  }

  /** Close the connection (not the client) and open a new one at once: SSE and polls carry their channels in the URL. */
  private reopen(reason: string): void {
    this.generation++;
    this.clearTimers();
    this.connection?.close();
    this.connection = undefined;
    this.setState('connecting');
    this.emit('connecting', { attempt: 0, delayMs: 0, reason });
    this.attempt = 0;
    this.beginRound();
    void this.tryTransport(this.generation);
  }

  /** Close the connection and stop reconnecting. Resume positions are kept for a later connect(). */
  disconnect(): void {
    this.stop('client', undefined);
  }

  private stop(reason: string, code: number | undefined): void {
    this.generation++;
    this.clearTimers();
    this.probe.stop();
    this.connection?.close();
    this.connection = undefined;
    if (this.currentState === 'disconnected') return;
    this.setState('disconnected');
    this.emit('disconnected', code === undefined ? { reason, reconnect: false } : { reason, code, reconnect: false });
  }

  private setState(state: ClientState): void {
    const previous = this.currentState;
    if (previous === state) return;
    this.currentState = state;
    this.emit('state', { state, previous });
  }

  private beginRound(): void {
    this.current = this.preferred;
    this.tried = 0;
  }

  private clearTimers(): void {
    if (this.retryTimer !== undefined) this.platform.clock.clearTimeout(this.retryTimer);
    if (this.connectTimer !== undefined) this.platform.clock.clearTimeout(this.connectTimer);
    this.retryTimer = this.connectTimer = undefined;
  }

  private needsToken(): boolean {
    if (!this.options.getToken) return false;
    if (this.tokenStale || this.token === undefined) return true;
    const exp = tokenExpiry(this.token);
    return exp !== undefined && exp - TOKEN_REFRESH_MARGIN_MS <= this.platform.clock.now();
  }

  private async tryTransport(generation: number): Promise<void> {
    if (generation !== this.generation) return;
    if (this.needsToken() && this.options.getToken) {
      try {
        const token = await this.options.getToken();
        if (generation !== this.generation) return;
        this.token = token;
        this.tokenStale = false;
      } catch (err) {
        if (generation !== this.generation) return;
        this.emit('error', { type: 'token', error: asError(err) });
        this.roundFailed('token refresh failed');
        return;
      }
    }
    const n = this.transports.length;
    while (this.tried < n && !this.transports[this.current]?.available(this.platform)) this.next();
    const transport = this.transports[this.current];
    if (this.tried >= n || !transport) {
      this.roundFailed('no transport connected');
      return;
    }
    this.open(transport, generation);
  }

  /** A token for a live connection's in-place refresh; failures are reported and the old token stays. */
  private async refreshToken(): Promise<string> {
    const getToken = this.options.getToken;
    if (!getToken) throw new Error('no getToken');
    try {
      this.token = await getToken();
      return this.token;
    } catch (err) {
      this.emit('error', { type: 'token', error: asError(err) });
      throw err;
    }
  }

  private next(): void {
    this.tried++;
    this.current = (this.current + 1) % this.transports.length;
  }

  private request(): ConnectRequest {
    return {
      baseUrl: this.baseUrl,
      channels: this.channels(),
      keys: this.options.keys,
      token: this.token,
      since: new Map(this.since),
      withCredentials: this.options.withCredentials,
      pollAbortMs: this.options.pollAbortMs,
      pingIntervalMs: this.options.pingIntervalMs,
      joinLeave: this.options.joinLeave,
      refreshToken: this.options.getToken && this.token !== undefined ? () => this.refreshToken() : undefined,
    };
  }

  /** The channels to name: the ones given, else every exact channel of the token (see tokenChannels). */
  private channels(): readonly string[] {
    if (this.chosen) return this.chosen;
    if (this.options.channels.length > 0 || this.token === undefined) return this.options.channels;
    return tokenChannels(this.token);
  }

  private open(transport: Transport, generation: number): void {
    const index = this.current;
    let opened = false;
    let attemptAtOpen = 0;
    let last: ServerDisconnect | undefined;
    // Until open() returns, `connection` is unset: a transport that reported synchronously is still this attempt.
    const ref: { connection?: TransportConnection } = {};
    let ended = false;
    const live = (): boolean =>
      generation === this.generation && !ended && (ref.connection === undefined || this.connection === ref.connection);
    const connection = transport.open(
      this.request(),
      {
        open: () => {
          if (!live()) return;
          opened = true;
          this.clearTimers();
          const resumed = this.since.size > 0;
          attemptAtOpen = this.attempt;
          this.attempt = 0;
          this.roundOutage = undefined;
          this.roundFromProbe = false;
          this.roundBrokerDown = false;
          this.brokerOutage = false;
          this.probe.reset();
          this.preferred = index;
          this.connectedTransport = transport.name;
          this.setState('connected');
          this.emit('connected', { transport: transport.name, resumed });
        },
        message: (channel, data, id) => {
          if (!live()) return;
          if (id !== undefined) {
            if (!this.seen.add(channel, id)) return;
            this.since.set(channel, id);
          }
          this.emit('message', id === undefined ? { channel, data } : { channel, data, id });
        },
        missed: (channels, reason, id) => {
          if (!live()) return;
          // The gap cannot be filled: continue from the position the server gives (or from "now"), not ask again.
          // What follows is new whatever its id (after a Redis rollback the same ids are handed out again), so the
          // remembered ids go too: the server may deliver the new history right after this notice.
          const all = channels.length === 0 ? [...this.since.keys()] : channels;
          if (channels.length === 0) this.seen.clear();
          for (const c of all) {
            this.seen.forget(c);
            if (id !== undefined) this.since.set(c, id);
            else this.since.delete(c);
          }
          this.emit('missed', { channels, reason });
        },
        position: (channel, id) => {
          if (live()) this.since.set(channel, id);
        },
        presence: (kind, channel, member) => {
          if (live()) this.emit(kind, { channel, member });
        },
        unsubscribed: (channel) => {
          if (!live()) return;
          // The server took it off: not asked for again at the next connection.
          const list = (this.chosen ??= [...this.channels()]);
          const i = list.indexOf(channel);
          if (i >= 0) list.splice(i, 1);
          this.since.delete(channel);
          this.emit('unsubscribed', { channel });
        },
        disconnect: (info) => {
          if (!live()) return;
          last = info;
          if (info.reason === 'expired') this.tokenStale = true;
        },
        closed: (error, status) => {
          if (!live()) return;
          ended = true;
          this.connection = undefined;
          this.clearTimers();
          this.onClosed(transport, opened, last, error, status, attemptAtOpen);
        },
      },
      this.platform,
    );
    if (ended) return;
    ref.connection = connection;
    this.connection = connection;
    this.connectTimer = this.platform.clock.setTimeout(() => {
      if (!live() || opened) return;
      this.connectTimer = undefined;
      ended = true;
      connection.close();
      this.connection = undefined;
      this.onClosed(transport, false, undefined, new Error(`${transport.name}: no answer in ${this.options.connectTimeoutMs} ms`), undefined);
    }, this.options.connectTimeoutMs);
  }

  private onClosed(
    transport: Transport,
    opened: boolean,
    last: ServerDisconnect | undefined,
    error: Error | undefined,
    status: number | undefined,
    attemptAtOpen = 0,
  ): void {
    if (last && !last.reconnect) return this.stop(last.reason, last.code);
    const brokerDown = last?.reason === 'broker_unavailable';
    if (brokerDown) this.roundBrokerDown = true;
    if (opened && last && brokerDown) {
      // The server answered only to say its broker is down (SSE answers 200 for EventSource's sake; a first poll
      // held while the server waits for its broker counted as open): a failed attempt, not a lost connection.
      this.emit('disconnected', { reason: last.reason, code: last.code, reconnect: true });
      this.setState('connecting');
      this.attempt = attemptAtOpen;
      this.roundOutage = 'not_ready';
      this.roundFailed(last.reason);
      return;
    }
    if (status === 401) {
      if (!this.options.getToken) return this.stop('unauthorized', undefined);
      this.tokenStale = true;
    }
    if (status !== undefined && FATAL_STATUS.has(status)) return this.stop(status === 403 ? 'forbidden' : 'bad_request', undefined);
    if (opened) {
      const reason = last?.reason ?? 'connection lost';
      this.emit('disconnected', last ? { reason, code: last.code, reconnect: true } : { reason, reconnect: true });
      this.setState('connecting');
      this.beginRound();
      this.schedule(0, reason);
      return;
    }
    if (error) this.emit('error', { type: 'transport', transport: transport.name, error });
    this.roundOutage ??= brokerDown ? 'not_ready' : outageOf(status);
    this.next();
    if (this.tried < this.transports.length) void this.tryTransport(this.generation);
    else this.roundFailed(error?.message ?? 'connection failed');
  }

  /** Every transport failed this round: wait a growing, jittered delay, then start a new round. */
  private roundFailed(reason: string): void {
    if (this.roundOutage && !this.roundFromProbe) this.probe.noteOutage(this.roundOutage);
    this.brokerOutage = this.roundBrokerDown;
    this.roundBrokerDown = false;
    this.roundOutage = undefined;
    this.roundFromProbe = false;
    this.attempt++;
    this.beginRound();
    this.schedule(this.attempt, reason);
  }

  private schedule(attempt: number, reason: string): void {
    const { minReconnectDelayMs, maxReconnectDelayMs, outageMaxReconnectDelayMs } = this.options;
    // Up without its broker: its return comes unannounced, so the wait stays short (the probe may cut it shorter).
    const cap = this.brokerOutage && attempt > 0 ? Math.max(minReconnectDelayMs, Math.min(maxReconnectDelayMs, outageMaxReconnectDelayMs)) : maxReconnectDelayMs;
    const delayMs = fullJitterDelay(attempt, minReconnectDelayMs, cap, this.platform.random);
    this.emit('connecting', { attempt, delayMs, reason });
    const generation = this.generation;
    this.retryTimer = this.platform.clock.setTimeout(() => {
      this.retryTimer = undefined;
      this.probe.stop();
      void this.tryTransport(generation);
    }, delayMs);
    // After a failed round the server may be down for a while: watch for its return during the wait.
    if (attempt > 0) this.probe.start();
  }

  /**
   * The probe saw the outage end while the client waits: restart the backoff. The retry still waits a full-jitter
   * delay of the first attempt, so the clients of one outage do not all arrive in the same instant.
   */
  private serverReady(): void {
    if (this.currentState !== 'connecting' || this.retryTimer === undefined) return;
    this.platform.clock.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.attempt = 0;
    this.roundFromProbe = true;
    this.beginRound();
    this.schedule(0, 'server ready');
  }
}

/**
 * What a failed attempt says of the server: no HTTP status (refused, reset, timed out, a WebSocket or EventSource
 * that cannot tell) reads as unreachable, 502-504 as up but not ready; any other status is no outage.
 */
function outageOf(status: number | undefined): 'unreachable' | 'not_ready' | undefined {
  if (status === undefined) return 'unreachable';
  return status >= 502 && status <= 504 ? 'not_ready' : undefined;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
