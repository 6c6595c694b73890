/**
 * The SDK's public types. Platform pieces (WebSocket, EventSource, fetch, timers) are described structurally, so the
 * SDK compiles without the DOM library and accepts the browser's own classes, Node 20's `fetch`, the `ws` package's
 * WebSocket or the `eventsource` package's EventSource alike.
 */

/** The transports, in the order the client tries them by default. */
export type TransportName = 'websocket' | 'sse' | 'poll';

/**
 * The client's connection state.
 * - `disconnected`: not connected and not trying (before `connect()`, after `disconnect()`, or after the server said
 *   not to reconnect).
 * - `connecting`: opening a transport, or waiting out a backoff delay before the next attempt.
 * - `connected`: subscriptions are live; messages flow.
 */
export type ClientState = 'disconnected' | 'connecting' | 'connected';

/** A message as the application sees it: once, in order per channel. */
export interface Message {
  /** The channel as the client named it (for a sealed key: the key itself, never the real name). */
  readonly channel: string;
  /**
   * What was published: a string as it was published, any other JSON value (an object, an array, a number...) as
   * that value, on every transport (docs/protocol.md "JSON data").
   */
  readonly data: unknown;
  /** The server's message id, when the message has one (history on). */
  readonly id?: string;
}

export interface StateEvent {
  readonly state: ClientState;
  readonly previous: ClientState;
}

export interface ConnectedEvent {
  readonly transport: TransportName;
  /** True when this connection followed an earlier one: the client asked to resume from its last ids. */
  readonly resumed: boolean;
}

export interface ConnectingEvent {
  /** Failed attempts since the last successful connection (0 for the first try). */
  readonly attempt: number;
  /** Milliseconds the client waits before this attempt (0 when it tries at once). */
  readonly delayMs: number;
  /** Why the client is (re)connecting. */
  readonly reason: string;
}

export interface DisconnectedEvent {
  /** The server's disconnect reason (for example `shutdown`, `expired`), or a client-side one (`client`, `closed`). */
  readonly reason: string;
  /** The server's disconnect code, when it sent one (3000-3499: may reconnect; 3500-3999: must not). */
  readonly code?: number;
  /** Whether the client will try again on its own. */
  readonly reconnect: boolean;
}

/**
 * The server could not give this client every message it missed (the history no longer holds them, or it was reset):
 * the application should reload its state from its backend. Messages after this event are complete again.
 */
export interface MissedEvent {
  /** The channels concerned; empty when the server did not say which (then: all of them). */
  readonly channels: readonly string[];
  /**
   * The server's reason: `expired` (no longer in history), `epoch` (history was reset), `no_history`,
   * `broker_lost`, or `insufficient_state` (a disconnect saying so).
   */
  readonly reason: string;
}

export interface ErrorEvent {
  /** `transport` (a transport failed), `token` (the token callback failed), `protocol` (an unreadable frame). */
  readonly type: 'transport' | 'token' | 'protocol';
  readonly transport?: TransportName;
  readonly error: Error;
}

/** A client in a presence channel (docs/presence.md). */
export interface PresenceMember {
  /** The client id (one connection), unique across the cluster. */
  readonly client: string;
  /** The token's `sub`; "" for an anonymous client. */
  readonly user: string;
  /** When it connected, ms since the epoch. */
  readonly connectedAt: number;
  /** The token's `info` claim, when it has one. */
  readonly info?: unknown;
}

/** `join` / `leave`: a client joined or left a channel (with `joinLeave: true`, or where the namespace pushes them). */
export interface PresenceEvent {
  readonly channel: string;
  readonly member: PresenceMember;
}

/** `presence(channel)`: who is in the channel (at most 10,000; `truncated` says there are more). */
export interface PresenceResult {
  readonly channel: string;
  readonly members: readonly PresenceMember[];
  readonly truncated: boolean;
}

/** `presenceStats(channel)`: clients (connections) and distinct users. */
export interface PresenceStats {
  readonly channel: string;
  readonly clients: number;
  readonly users: number;
}

/** The server took a channel off this client (the server API's `unsubscribe`): it is no longer subscribed. */
export interface UnsubscribedEvent {
  readonly channel: string;
}

/** Events of `HeraldClient.on()`. */
export interface ClientEvents {
  message: Message;
  join: PresenceEvent;
  leave: PresenceEvent;
  unsubscribed: UnsubscribedEvent;
  state: StateEvent;
  connecting: ConnectingEvent;
  connected: ConnectedEvent;
  disconnected: DisconnectedEvent;
  missed: MissedEvent;
  error: ErrorEvent;
}

// ---- Injected platform pieces --------------------------------------------------------------------------------------

/** Timers and time, injectable so tests can drive reconnect timing without waiting. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * The part of a WebSocket the SDK uses: the browser's class and the `ws` package's both fit. Listeners are declared as
 * methods so both classes' richer event types are accepted.
 */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'error', listener: () => void): void;
  addEventListener(type: 'message', listener: (ev: { data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (ev: { code: number; reason: string }) => void): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** The part of an EventSource the SDK uses: the browser's class and the `eventsource` package's both fit. */
export interface EventSourceLike {
  readonly readyState: number;
  close(): void;
  addEventListener(type: 'open' | 'error', listener: () => void): void;
  addEventListener(
    type: 'message' | 'reload' | 'disconnect' | 'join' | 'leave' | 'unsubscribed',
    listener: (ev: { data: string; lastEventId: string }) => void,
  ): void;
}
export type EventSourceConstructor = new (url: string, init?: { withCredentials?: boolean }) => EventSourceLike;

/** The part of a fetch Response the SDK uses. */
export interface FetchResponseLike {
  readonly status: number;
  text(): Promise<string>;
}
/**
 * The part of `fetch` the SDK uses (long-polling); the global one fits. `signal` is typed `never` because only the
 * platform's own AbortSignal is acceptable to its fetch: the SDK passes the one its AbortController made.
 */
export type FetchLike = (
  url: string,
  init: { method?: string; headers?: Record<string, string>; signal?: never; credentials?: 'include' | 'same-origin' },
) => Promise<FetchResponseLike>;

export interface AbortControllerLike {
  readonly signal: unknown;
  abort(): void;
}

/** Platform pieces; each defaults to the global one where the platform has it. */
export interface Platform {
  WebSocket?: WebSocketConstructor;
  EventSource?: EventSourceConstructor;
  fetch?: FetchLike;
  AbortController?: new () => AbortControllerLike;
  clock?: Clock;
  /** A number in [0, 1): the source of backoff jitter. @default Math.random */
  random?: () => number;
}

// ---- Options -------------------------------------------------------------------------------------------------------

export interface ClientOptions {
  /** Channel names to subscribe (anonymous namespaces, or a choice among a token's channels). @default [] */
  channels?: readonly string[];
  /** Sealed channel keys (`herald key`). Messages of such a channel carry the key as their channel. @default [] */
  keys?: readonly string[];
  /** A JWT subscription token (`herald token`). @default undefined */
  token?: string;
  /**
   * Called for a fresh token when the current one expired (the server said so, or its `exp` is past) and before the
   * first connection when `token` is unset. Resolve with the new token. @default undefined
   */
  getToken?: () => Promise<string>;
  /** Transports to try, in order; when one fails to connect the client tries the next. @default ["websocket","sse","poll"] */
  transports?: readonly TransportName[];
  /** Smallest backoff ceiling in ms: the first retry waits up to this long. @default 500 */
  minReconnectDelayMs?: number;
  /** Largest backoff ceiling in ms. @default 20000 */
  maxReconnectDelayMs?: number;
  /**
   * Largest backoff ceiling in ms while the server says its broker is down (`broker_unavailable`, on every
   * transport): such an outage ends without warning, and the server holds an attempt for a while (`brokerWaitMs`)
   * and lets it go on the moment its broker is back, so the client keeps retrying at least this often (still full
   * jitter) instead of letting its backoff grow to `maxReconnectDelayMs`. @default 2000
   */
  outageMaxReconnectDelayMs?: number;
  /** Give up opening a transport after this many ms and try the next. @default 10000 */
  connectTimeoutMs?: number;
  /**
   * Abort a long-poll request that has not answered after this many ms; keep it above the server's
   * `pollTimeoutSeconds` (default 25 s). @default 35000
   */
  pollAbortMs?: number;
  /**
   * WebSocket: send the protocol's `ping` op this often; when the next one is due and nothing arrived since the
   * last, the connection counts as dead and the client reconnects. 0 turns it off. @default 25000
   */
  pingIntervalMs?: number;
  /**
   * While waiting to reconnect after a failed attempt, ask `GET /readyz` about this often (jittered: each wait in
   * [0.5, 1.5) x this, one request at a time). When the server was unreachable or not ready (503) and then answers
   * 200, the backoff starts again from its first step, so the client is back within about a second of an outage's
   * end instead of sleeping out a delay that grew to `maxReconnectDelayMs`. 0 turns it off. Cross-origin, the server's
   * `allowedOrigins` must admit the page's origin for the browser to show the answer. @default 1000
   */
  readyProbeIntervalMs?: number;
  /**
   * Ids remembered per channel to drop duplicates (a safety net: resume itself sends none). Compared within one epoch
   * only, and forgotten on a `missed` event. @default 1000
   */
  dedupeWindow?: number;
  /**
   * Ask for join and leave events (`join`, `leave`) on the client's presence channels. Where the channel's namespace
   * sets `joinLeave` they come anyway. @default false
   */
  joinLeave?: boolean;
  /** Send cookies cross-origin (EventSource `withCredentials`, fetch `credentials: "include"`). @default false */
  withCredentials?: boolean;
  /**
   * Resume positions to start from, channel → the last message id the application already has (for example the id
   * its page was rendered at), so even the first connection misses nothing. @default {}
   */
  since?: Readonly<Record<string, string>>;
  /** Injected platform pieces; tests pass fakes, Node passes the `ws` package. @default the globals */
  platform?: Platform;
}
