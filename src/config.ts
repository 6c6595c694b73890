/**
 * Configuration: every setting Herald reads, its default, and its validation, in one place.
 *
 * Sources, highest first: command-line flags, `HERALD_*` environment variables, a JSON config file
 * (`--config FILE` or `HERALD_CONFIG`), defaults. `REDIS_URL` is the broker when `HERALD_BROKER` is unset, and
 * `HERALD_API_KEY` the publish API key when `HERALD_API_KEYS` is.
 * No other module reads `process.env`.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { closest } from './util/closest.js';
import { JsoncError, parseJsonc } from './util/jsonc.js';

export interface HeraldConfig {
  /** TCP port to listen on. @default 8080 */
  readonly port: number;
  /** Address to bind. @default "0.0.0.0" ("127.0.0.1" with --dev) */
  readonly host: string;
  /** `memory`, `redis://HOST:PORT` or `redis-cluster://HOST:PORT,HOST:PORT`. @default "memory" */
  readonly broker: string;
  /** Timeout of every Redis call, of connecting to Redis, and of a liveness probe's round trip, in milliseconds. @default 2000 */
  readonly redisTimeoutMs: number;
  /** Milliseconds between liveness probes of the Redis connections (a publish to a per-node channel that must come back). @default 1000 */
  readonly redisProbeIntervalMs: number;
  /**
   * Milliseconds a new or resuming subscription waits for an unreachable broker to come back before it is answered
   * `broker_unavailable` (a retryable signal on every transport, docs/protocol.md "When the broker is down"). The
   * wait is counted against the connection limits and checked on the node's ticker. 0: answer at once. @default 5000
   */
  readonly brokerWaitMs: number;
  /** Development mode: loopback only, anonymous subscribe and publish from localhost. @default false */
  readonly dev: boolean;
  /**
   * Processes serving clients on this machine (docs/architecture.md "Workers"): with the embedded broker they behave as
   * one node; with Redis each is a node. 0: the CPU count (1 with --dev). @default 0
   */
  readonly workers: number;
  /** Secret for sealed channel keys and HS* JWTs. @default "" (required outside --dev) */
  readonly secret: string;
  /** API keys accepted by POST /api/publish (`Authorization: Bearer KEY`). @default [] */
  readonly apiKeys: readonly string[];
  /** Bytes a client may have waiting in its outgoing queue before it is disconnected as slow. @default 1048576 */
  readonly maxQueueBytes: number;
  /**
   * Milliseconds a stream the server ends (slow, shutdown, expired, ...) has to take its last bytes, the reason
   * included, and close; then its socket is destroyed. Checked on the node's once-a-second ticker. @default 5000
   */
  readonly closeGraceMs: number;
  /** Channels one connection may subscribe. @default 100 */
  readonly maxChannelsPerConnection: number;
  /** Concurrent client connections per node (0 = unlimited). @default 0 */
  readonly maxConnections: number;
  /** Concurrent client connections per remote IP (0 = unlimited). @default 0 */
  readonly maxConnectionsPerIp: number;
  /** Seconds between heartbeats on idle streams. @default 25 */
  readonly heartbeatSeconds: number;
  /** Largest WebSocket message a client may send, in bytes; a bigger one closes the connection with 1009. @default 65536 */
  readonly wsMaxFrameBytes: number;
  /**
   * Offer permessage-deflate to WebSocket clients. Off by default: a compressed connection gets its messages
   * compressed for it alone (CPU and ~64 KB of zlib state per connection) instead of sharing one pre-framed buffer.
   * @default false
   */
  readonly wsCompression: boolean;
  /** Seconds a long poll (`GET /poll`) waits for a message before answering with an empty batch. @default 25 */
  readonly pollTimeoutSeconds: number;
  /** Milliseconds a client has to send its complete request headers. @default 10000 */
  readonly headersTimeoutMs: number;
  /** Largest request header block in bytes. @default 16384 */
  readonly maxHeaderBytes: number;
  /** Largest request URL in bytes. @default 8192 */
  readonly maxUrlBytes: number;
  /** Largest publish request body in bytes. @default 65536 */
  readonly maxBodyBytes: number;
  /**
   * Deepest nesting of objects and arrays in client JSON (WebSocket frames, publish API bodies); deeper is refused
   * (`bad_frame` on /ws, 400 on HTTP). @default 64
   */
  readonly maxJsonDepth: number;
  /** Milliseconds SIGTERM waits for clients to leave before closing the rest. @default 5000 */
  readonly drainTimeoutMs: number;
  /** Seconds a publish's idempotency key is remembered: a retry under it within this window publishes nothing. @default 300 */
  readonly idempotencyWindowSeconds: number;
  /** Origins allowed for cross-origin streams and WebSocket upgrades; "*" allows any (never with credentials). @default [] */
  readonly allowedOrigins: readonly string[];
  /**
   * Proxies (addresses or CIDRs) whose `X-Forwarded-For` / `Forwarded: for=` name the client: the client address is
   * then the rightmost hop that is not a trusted proxy (per-IP limits, logs). @default [] (the peer is the client)
   */
  readonly trustedProxies: readonly string[];
  /** Bearer token `GET /metrics` requires outside --dev ("" = /metrics is refused unless metricsPublic). @default "" */
  readonly metricsToken: string;
  /**
   * Secret of the admin dashboard (`GET /admin`): its login form asks for it. "" = the dashboard is off (404),
   * except in --dev, where it is on without a login. @default ""
   */
  readonly adminSecret: string;
  /** Serve `GET /metrics` without a token outside --dev (a scrape port only the monitoring network reaches). @default false */
  readonly metricsPublic: boolean;
  /** `debug`, `info`, `warn`, `error` or `silent`. @default "info" */
  readonly logLevel: LogLevel;
  /** `json` (one JSON object per line) or `text` (`TIME LEVEL message key=value ...`). @default "json" */
  readonly logFormat: LogFormat;
  /**
   * Write an access-log line per HTTP request answered and per stream ended (method, path without its query,
   * status, bytes, milliseconds, transport, connection id). @default false
   */
  readonly accessLog: boolean;
  /**
   * Port of an internal listener for operators: `/metrics`, `/admin`, `/healthz` and `/readyz`. When set, `/metrics`
   * and `/admin` answer only there (404 on the public port); `/healthz` and `/readyz` answer on both. 0 = none.
   * @default 0
   */
  readonly internalPort: number;
  /** Address the internal listener binds. @default "127.0.0.1" */
  readonly internalHost: string;

  // Authorization (docs/security.md).
  /** A rotated-out secret still accepted (sealed keys and HS* tokens) until `previousSecretUntil`. @default "" */
  readonly previousSecret: string;
  /** ISO 8601 date after which `previousSecret` is refused. Required with `previousSecret`. @default "" */
  readonly previousSecretUntil: string;
  /** JWT algorithms accepted: never taken from the token. HS* use the secret; others `jwtPublicKeys`/`jwks`. @default ["HS256"] */
  readonly jwtAlgorithms: readonly string[];
  /** Files holding PEM (SPKI) public keys or JWK JSON, for RS/PS/ES/EdDSA tokens. @default [] */
  readonly jwtPublicKeys: readonly string[];
  /** JWKS sources: `URL` or `FILE`, or `ISSUER SOURCE` to use those keys only for tokens from ISSUER. @default [] */
  readonly jwks: readonly string[];
  /** Accepted `iss` values; when set, tokens without one of them are refused. @default [] */
  readonly jwtIssuers: readonly string[];
  /** Accepted `aud` values; when set, tokens without one of them are refused. @default [] */
  readonly jwtAudience: readonly string[];
  /** Clock skew tolerated on `nbf`, `exp` and `iat`, in seconds. @default 5 */
  readonly jwtLeewaySeconds: number;
  /** Seconds a fetched JWKS is trusted before it is fetched again. @default 600 */
  readonly jwksCacheSeconds: number;
  /** Name of a cookie that carries the subscription token (EventSource cannot send headers); "" = none. @default "" */
  readonly tokenCookie: string;
  /** Verified tokens and opened keys remembered (LRU), so many clients sharing one cost one verification. @default 10000 */
  readonly authCacheSize: number;
  /**
   * URL of the app's auth hook (docs/auth-hook.md): a subscribe without a token or key is decided by a POST to it
   * with the request's transport, channels, `authHookCookies`, `authHookHeaders` and client address. "" = none.
   * @default ""
   */
  readonly authHook: string;
  /** Cookies of the client's request forwarded to the auth hook (and its cache key). @default [] */
  readonly authHookCookies: readonly string[];
  /** Request headers forwarded to the auth hook (and its cache key), lower-case names. @default [] */
  readonly authHookHeaders: readonly string[];
  /** Milliseconds the auth hook has to answer; then the failure policy applies. @default 2000 */
  readonly authHookTimeoutMs: number;
  /** Seconds an auth hook answer is reused for the same credential and channels (0 = ask every time). @default 30 */
  readonly authHookCacheSeconds: number;
  /** Auth hook answers remembered at most (LRU). @default 10000 */
  readonly authHookCacheSize: number;
  /**
   * Auth hook calls in flight at most; a subscribe that would need one more is treated as a hook failure (so a
   * flood of distinct credentials cannot become a flood on the backend). @default 100
   */
  readonly authHookMaxConcurrent: number;
  /** What a subscribe gets when the auth hook fails (timeout, error, bad answer): `deny` (503) or `allow`. @default "deny" */
  readonly authHookFailure: 'deny' | 'allow';
  /** URL that receives webhooks (docs/webhooks.md): client connected/disconnected, channel occupied/vacated. "" = none. @default "" */
  readonly webhook: string;
  /** Secret webhooks are signed with (HMAC-SHA256, `X-Herald-Signature`). Required with `webhook`. @default "" */
  readonly webhookSecret: string;
  /** Webhook events sent. @default ["client_connected","client_disconnected","channel_occupied","channel_vacated"] */
  readonly webhookEvents: readonly string[];
  /** Events one webhook request carries at most. @default 100 */
  readonly webhookBatchSize: number;
  /** Milliseconds an event waits to be sent together with later ones. @default 250 */
  readonly webhookBatchMs: number;
  /** Webhook events waiting at most; more are dropped and counted (herald_webhook_dropped_total). @default 10000 */
  readonly webhookQueueSize: number;
  /** Milliseconds one webhook request may take. @default 5000 */
  readonly webhookTimeoutMs: number;
  /** Attempts per webhook batch (with exponential backoff between them) before it is dropped. @default 6 */
  readonly webhookMaxAttempts: number;
  /**
   * Seconds between a node's presence heartbeats on Redis: its members' entries are refreshed this often
   * (docs/presence.md). @default 5
   */
  readonly presenceHeartbeatSeconds: number;
  /**
   * Seconds a node's presence entries live on Redis without a heartbeat: a killed node's members are gone from
   * presence answers at most this long after its last heartbeat. More than presenceHeartbeatSeconds. @default 15
   */
  readonly presenceTtlSeconds: number;
  /** Largest user info (JSON text of the token's `info` claim, or the auth hook's) a presence member carries. @default 1024 */
  readonly presenceMaxInfoBytes: number;
  /** Namespaces by channel-name prefix (`"chat"` rules `chat:*`): see docs/security.md. @default {} */
  readonly namespaces: Readonly<Record<string, NamespaceRules>>;
  /** Rules for channels outside every namespace. @default {} (nothing anonymous, no client publish) */
  readonly defaultNamespace: NamespaceRules;
  /** Publish API keys limited to namespaces: `[{"key":"...","namespaces":["chat"]}]`. @default [] */
  readonly scopedApiKeys: readonly ScopedApiKey[];
  /** Messages kept per channel for resume (0 = no history, no message ids). @default 100 */
  readonly historySize: number;
  /** Seconds a channel's messages are kept after its last publication (0 = no history). @default 120 */
  readonly historyTtlSeconds: number;
  /**
   * Seconds a channel's position (epoch and offset) is kept after its last publication or read, so a client of a
   * quiet channel resumes without a reload. At least historyTtlSeconds. @default 3600
   */
  readonly historyMetaTtlSeconds: number;
  /**
   * Bytes of history the memory broker keeps for all channels together (estimated: see docs/configuration.md); past
   * it the least recently published channels lose their messages first, then their positions. With Redis, history
   * lives in Redis: bound it there (docs/deployment.md). @default 67108864 (64 MiB)
   */
  readonly historyMaxBytes: number;
  /**
   * Pusher Channels apps (docs/pusher.md): pusher-js and Laravel Echo connect to `/app/{key}`, the `pusher` server
   * libraries call `/apps/{id}/...`. In --dev, with none configured, the app `app-id` / `app-key` / `app-secret`.
   * @default []
   */
  readonly pusherApps: readonly PusherAppConfig[];
  /** Seconds of silence after which a Pusher client pings (`activity_timeout`); the node pings quiet clients too. @default 120 */
  readonly pusherActivityTimeoutSeconds: number;
}

/** One Pusher app (docs/pusher.md "Apps"): its credentials, what its clients may do, its webhooks and limits. */
export interface PusherAppConfig {
  /** The app id of the HTTP API's path, `/apps/{id}/...`. */
  readonly id: string;
  /** The public key pusher-js connects with (`/app/{key}`) and the HTTP API signs with (`auth_key`). */
  readonly key: string;
  /** Signs channel authorizations, the HTTP API's requests and the app's webhooks. */
  readonly secret: string;
  /** Origins whose pages may connect (`*` = any); empty: the node's allowedOrigins rule. @default [] */
  readonly allowedOrigins: readonly string[];
  /** Clients may send `client-*` events on private and presence channels. @default false (true for --dev's app) */
  readonly clientEvents: boolean;
  /** Prefix of the Herald channel each Pusher channel is (isolates apps on one node). @default "" */
  readonly channelPrefix: string;
  /** Webhook receivers: `[{"url": "https://...", "events": ["channel_occupied", ...]}]`. @default [] */
  readonly webhooks: readonly PusherWebhookConfig[];
  /** Connections the app may hold on one node (0 = only the node's limits). @default 0 */
  readonly maxConnections: number;
  /** Largest event `data` the API or a client may send, in bytes. @default 10240 */
  readonly maxEventBytes: number;
  /** Client events one connection may send per second (more: pusher:error 4301). @default 10 */
  readonly maxClientEventsPerSecond: number;
  /** Members a presence channel may hold (Pusher's limit is 100). @default 100 */
  readonly maxPresenceMembers: number;
}

export interface PusherWebhookConfig {
  readonly url: string;
  /** Events sent to this URL. @default every one: channel_occupied, channel_vacated, member_added, member_removed, client_event, cache_miss */
  readonly events: readonly string[];
}

/** What a namespace allows. Every field is optional; a missing one means "no" (or the node-wide default). */
export interface NamespaceRules {
  /** Subscribe with `channel=` alone, without credentials. @default false */
  readonly anonymous?: boolean;
  /** WebSocket clients that may subscribe a channel may also publish to it. @default false */
  readonly clientPublish?: boolean;
  /** Subscribers per channel on one node (0 = unlimited). @default 0 */
  readonly maxSubscribers?: number;
  /** Messages kept per channel for resuming (0 = none); unset = the node's history settings. */
  readonly historySize?: number;
  /** Seconds a channel's history lives after its last message; unset = the node's history settings. */
  readonly historyTtlSeconds?: number;
  /** Keep who is subscribed (docs/presence.md): the server API's presence calls, the clients' `presence`. @default false (true in --dev) */
  readonly presence?: boolean;
  /** Push join and leave events to every subscriber (implies presence). @default false */
  readonly joinLeave?: boolean;
}

/**
 * An API key limited to channels of some namespaces (`""` names the default namespace; absent: every namespace) and
 * to some server API calls (docs/api.md; absent: `publish` only).
 */
export interface ScopedApiKey {
  readonly key: string;
  readonly namespaces?: readonly string[];
  readonly calls?: readonly string[];
}

/** The server API's calls (docs/api.md), as a scoped key's `calls` names them. */
export const API_CALLS = [
  'publish', 'presence', 'presence_stats', 'channels', 'info', 'history', 'remove_history', 'disconnect', 'unsubscribe',
] as const;

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
export type LogFormat = 'json' | 'text';

/** A bad setting: names the setting and says why. The CLI prints it as one line and exits with code 2. */
export class ConfigError extends Error {
  constructor(readonly setting: string, reason: string) {
    super(`invalid setting ${setting}: ${reason}`);
    this.name = 'ConfigError';
  }
}

/** How a setting is written: as flag or environment text, and as its JSON type in the config file. */
export type SettingKind = 'int' | 'string' | 'bool' | 'list' | 'json';
type Kind = SettingKind;
interface Spec {
  kind: Kind;
  min?: number;
  max?: number;
  oneOf?: readonly string[];
  check?: (value: string) => string | undefined;
  /** For `json` settings: validates and normalizes the parsed value, or throws ConfigError. */
  json?: (name: string, value: unknown) => unknown;
  /** One line for `--help`, the JSON Schema and the starter config. */
  doc: string;
  /** The default in words, where the value alone would mislead (`--help`). */
  defaultText?: string;
  /** A credential: `herald config print` masks it. */
  secret?: boolean;
}

/** What the CLI shows of a setting (help, JSON Schema, starter config, masking): a read-only view of its spec. */
export interface SettingInfo {
  readonly key: keyof HeraldConfig;
  readonly kind: SettingKind;
  readonly flag: string;
  readonly env: string;
  readonly doc: string;
  readonly default: unknown;
  readonly defaultText?: string;
  readonly min?: number;
  readonly max?: number;
  readonly oneOf?: readonly string[];
  readonly secret: boolean;
}

/**
 * Every setting: its kind, its bounds and checks, and one line `doc` that `--help`, `herald config schema` and
 * `herald config init` show (the JSDoc above says more; docs/configuration.md says all). A new setting needs a
 * line here, a default in DEFAULTS and a row in docs/configuration.md (test/docs.test.ts checks the row and its
 * default). Mark `secret: true` what `herald config print` must mask.
 */
const SPECS: { [K in keyof HeraldConfig]: Spec } = {
  port: { kind: 'int', min: 0, max: 65535, doc: 'TCP port to listen on (0: any free port)' },
  host: {
    kind: 'string',
    check: (v) => (v.length === 0 ? 'must not be empty' : undefined),
    doc: 'address to bind',
    defaultText: '0.0.0.0 (127.0.0.1 with --dev)',
  },
  broker: { kind: 'string', check: checkBrokerUrl, doc: 'memory, redis://HOST:PORT, rediss://... (TLS) or redis-cluster://HOST:PORT,...' },
  redisTimeoutMs: { kind: 'int', min: 50, max: 60_000, doc: 'timeout of every Redis call, of connecting and of a liveness probe (ms)' },
  redisProbeIntervalMs: { kind: 'int', min: 50, max: 60_000, doc: 'milliseconds between liveness probes of the Redis connections' },
  brokerWaitMs: { kind: 'int', min: 0, max: 60_000, doc: 'milliseconds a new or resuming subscription waits for an unreachable broker (0: answer at once)' },
  dev: { kind: 'bool', doc: 'development mode: loopback, anonymous subscribe and publish from this machine' },
  workers: { kind: 'int', min: 0, max: 256, doc: 'processes serving clients on this machine (0: the CPU count, 1 with --dev)', defaultText: '0 (the CPU count; 1 with --dev)' },
  secret: { kind: 'string', secret: true, doc: 'secret for sealed channel keys and HS* JWTs (32+ random characters)', defaultText: 'none (required outside --dev)' },
  apiKeys: { kind: 'list', secret: true, doc: 'API keys accepted by POST /api/publish (Authorization: Bearer KEY)' },
  maxQueueBytes: { kind: 'int', min: 1024, max: 1 << 30, doc: 'bytes a client may have waiting before it is disconnected as slow' },
  closeGraceMs: { kind: 'int', min: 0, max: 600_000, doc: 'milliseconds an ended stream has to take its last bytes before its socket is destroyed' },
  maxChannelsPerConnection: { kind: 'int', min: 1, max: 10000, doc: 'channels one connection may subscribe, and one publish may name' },
  maxConnections: { kind: 'int', min: 0, max: 10_000_000, doc: 'client streams one node holds (0 = unlimited)' },
  maxConnectionsPerIp: { kind: 'int', min: 0, max: 10_000_000, doc: 'client streams from one remote address (0 = unlimited)' },
  heartbeatSeconds: { kind: 'int', min: 1, max: 3600, doc: 'seconds between heartbeats on idle streams' },
  wsMaxFrameBytes: { kind: 'int', min: 256, max: 16 << 20, doc: 'largest WebSocket message a client may send (bigger: close 1009)' },
  wsCompression: { kind: 'bool', doc: 'offer permessage-deflate to WebSocket clients' },
  pollTimeoutSeconds: { kind: 'int', min: 1, max: 300, doc: 'seconds a long poll waits for a message' },
  headersTimeoutMs: { kind: 'int', min: 100, max: 600_000, doc: 'milliseconds a client has to send its complete request headers' },
  maxHeaderBytes: { kind: 'int', min: 1024, max: 1 << 20, doc: 'largest request header block in bytes' },
  maxUrlBytes: { kind: 'int', min: 256, max: 1 << 20, doc: 'largest request URL in bytes' },
  maxBodyBytes: { kind: 'int', min: 64, max: 64 << 20, doc: 'largest publish request body in bytes' },
  // Above ~1000 levels JSON.stringify's recursion nears the stack limit: that is what the bound is for.
  maxJsonDepth: { kind: 'int', min: 2, max: 512, doc: 'deepest nesting of objects and arrays in client JSON' },
  drainTimeoutMs: { kind: 'int', min: 0, max: 600_000, doc: 'milliseconds SIGTERM waits for clients to leave before closing the rest' },
  idempotencyWindowSeconds: { kind: 'int', min: 1, max: 86_400, doc: "seconds a publish's idempotency key is remembered" },
  allowedOrigins: { kind: 'list', doc: 'origins allowed for cross-origin streams and WebSocket upgrades (* = any)' },
  trustedProxies: { kind: 'list', json: checkProxies, doc: 'proxies (addresses or CIDRs) whose X-Forwarded-For names the client' },
  metricsToken: {
    kind: 'string',
    secret: true,
    check: (v) => (v === '' || /^[\x21-\x7e]{16,}$/.test(v) ? undefined : 'must be at least 16 visible ASCII characters'),
    doc: 'bearer token GET /metrics requires outside --dev',
  },
  metricsPublic: { kind: 'bool', doc: 'serve GET /metrics without a token outside --dev' },
  adminSecret: {
    kind: 'string',
    secret: true,
    check: (v) => (v === '' || /^[\x21-\x7e]{16,}$/.test(v) ? undefined : 'must be at least 16 visible ASCII characters'),
    doc: 'secret of the admin dashboard at GET /admin ("" = off outside --dev)',
  },
  logLevel: { kind: 'string', oneOf: ['debug', 'info', 'warn', 'error', 'silent'], doc: 'log level' },
  logFormat: { kind: 'string', oneOf: ['json', 'text'], doc: 'log lines as JSON objects or as TIME LEVEL message key=value text' },
  accessLog: { kind: 'bool', doc: 'one log line per HTTP request answered and per stream ended' },
  internalPort: { kind: 'int', min: 0, max: 65535, doc: 'port of the internal listener for /metrics and operator routes (0 = none)' },
  internalHost: {
    kind: 'string',
    check: (v) => (v.length === 0 ? 'must not be empty' : undefined),
    doc: 'address the internal listener binds',
  },
  previousSecret: { kind: 'string', secret: true, doc: 'a rotated-out secret still accepted until previousSecretUntil' },
  previousSecretUntil: {
    kind: 'string',
    check: (v) => (v === '' || isDate(v) ? undefined : `"${v}" is not an ISO 8601 date`),
    doc: 'ISO 8601 date after which previousSecret is refused',
  },
  jwtAlgorithms: { kind: 'list', json: checkAlgorithms, doc: 'JWT algorithms accepted (HS* use the secret, others jwtPublicKeys or jwks)' },
  jwtPublicKeys: { kind: 'list', doc: 'files holding PEM (SPKI) public keys or JWK JSON' },
  jwks: { kind: 'list', doc: 'JWKS sources: URL or FILE, or "ISSUER SOURCE"' },
  jwtIssuers: { kind: 'list', doc: 'accepted iss values; when set, tokens without one are refused' },
  jwtAudience: { kind: 'list', doc: 'accepted aud values; when set, tokens without one are refused' },
  jwtLeewaySeconds: { kind: 'int', min: 0, max: 300, doc: 'clock skew tolerated on nbf, exp and iat, in seconds' },
  jwksCacheSeconds: { kind: 'int', min: 1, max: 86_400, doc: 'seconds a fetched JWKS is trusted before it is fetched again' },
  tokenCookie: {
    kind: 'string',
    check: (v) => (v === '' || /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(v) ? undefined : 'not a cookie name'),
    doc: 'name of a cookie that carries the subscription token ("" = none)',
  },
  authCacheSize: { kind: 'int', min: 0, max: 10_000_000, doc: 'verified tokens and opened keys remembered (LRU)' },
  authHook: { kind: 'string', check: checkHookUrl, doc: 'URL of the auth hook that decides subscribes without a token or key ("" = none)' },
  authHookCookies: { kind: 'list', json: checkCookieNames, doc: 'cookies forwarded to the auth hook (and its cache key)' },
  authHookHeaders: { kind: 'list', json: checkHeaderNames, doc: 'request headers forwarded to the auth hook (and its cache key)' },
  authHookTimeoutMs: { kind: 'int', min: 50, max: 60_000, doc: 'milliseconds the auth hook has to answer' },
  authHookCacheSeconds: { kind: 'int', min: 0, max: 86_400, doc: 'seconds an auth hook answer is reused (0 = ask every time)' },
  authHookCacheSize: { kind: 'int', min: 0, max: 10_000_000, doc: 'auth hook answers remembered (LRU)' },
  authHookMaxConcurrent: { kind: 'int', min: 1, max: 100_000, doc: 'auth hook calls in flight at most (more: treated as a hook failure)' },
  authHookFailure: { kind: 'string', oneOf: ['deny', 'allow'], doc: 'when the auth hook fails: deny (503) or allow' },
  webhook: { kind: 'string', check: checkHookUrl, doc: 'URL that receives webhooks ("" = none)' },
  webhookSecret: { kind: 'string', secret: true, doc: 'secret webhooks are signed with (X-Herald-Signature); required with webhook' },
  webhookEvents: { kind: 'list', json: checkWebhookEvents, doc: 'webhook events sent' },
  webhookBatchSize: { kind: 'int', min: 1, max: 10_000, doc: 'events one webhook request carries at most' },
  webhookBatchMs: { kind: 'int', min: 0, max: 60_000, doc: 'milliseconds an event waits to be batched with later ones' },
  webhookQueueSize: { kind: 'int', min: 1, max: 10_000_000, doc: 'webhook events waiting at most (more are dropped and counted)' },
  webhookTimeoutMs: { kind: 'int', min: 50, max: 120_000, doc: 'milliseconds one webhook request may take' },
  webhookMaxAttempts: { kind: 'int', min: 1, max: 100, doc: 'attempts per webhook batch before it is dropped' },
  presenceHeartbeatSeconds: { kind: 'int', min: 1, max: 300, doc: 'seconds between a node\'s presence heartbeats on Redis' },
  presenceTtlSeconds: { kind: 'int', min: 2, max: 3600, doc: 'seconds a node\'s presence entries live on Redis without a heartbeat' },
  presenceMaxInfoBytes: { kind: 'int', min: 0, max: 65_536, doc: 'largest user info (JSON text) a presence member carries' },
  namespaces: { kind: 'json', json: checkNamespaces, doc: 'rules by channel-name prefix: {"chat": {"anonymous": true}}' },
  defaultNamespace: { kind: 'json', json: (name, v) => checkRules(name, v), doc: 'rules for channels outside every namespace' },
  scopedApiKeys: {
    kind: 'json',
    secret: true,
    json: checkScopedKeys,
    doc: 'API keys limited to namespaces and calls: [{"key":"...","namespaces":["chat"],"calls":["publish","presence"]}]',
  },
  historySize: { kind: 'int', min: 0, max: 100_000, doc: 'messages kept per channel for resume (0 = no history)' },
  historyTtlSeconds: { kind: 'int', min: 0, max: 30 * 86400, doc: "seconds a channel's messages are kept after its last publication" },
  historyMetaTtlSeconds: {
    kind: 'int',
    min: 1,
    max: 30 * 86400,
    doc: "seconds a channel's position is kept after its last publication or read",
  },
  historyMaxBytes: { kind: 'int', min: 1 << 20, max: 2 ** 40, doc: 'memory broker only: estimated bytes of history of all channels together' },
  pusherApps: {
    kind: 'json',
    secret: true,
    json: checkPusherApps,
    doc: 'Pusher apps: [{"id":"1","key":"...","secret":"...","clientEvents":true}] (docs/pusher.md)',
    defaultText: '[] (in --dev: app-id / app-key / app-secret)',
  },
  pusherActivityTimeoutSeconds: { kind: 'int', min: 1, max: 3600, doc: "seconds of silence before a Pusher client pings (activity_timeout)" },
};

export const DEFAULTS: HeraldConfig = {
  port: 8080,
  host: '0.0.0.0',
  broker: 'memory',
  redisTimeoutMs: 2000,
  redisProbeIntervalMs: 1000,
  brokerWaitMs: 5000,
  dev: false,
  workers: 0,
  secret: '',
  apiKeys: [],
  maxQueueBytes: 1 << 20,
  closeGraceMs: 5000,
  maxChannelsPerConnection: 100,
  maxConnections: 0,
  maxConnectionsPerIp: 0,
  heartbeatSeconds: 25,
  wsMaxFrameBytes: 64 * 1024,
  wsCompression: false,
  pollTimeoutSeconds: 25,
  headersTimeoutMs: 10_000,
  maxHeaderBytes: 16 * 1024,
  maxUrlBytes: 8 * 1024,
  maxBodyBytes: 64 * 1024,
  maxJsonDepth: 64,
  drainTimeoutMs: 5000,
  idempotencyWindowSeconds: 300,
  allowedOrigins: [],
  trustedProxies: [],
  metricsToken: '',
  metricsPublic: false,
  adminSecret: '',
  logLevel: 'info',
  logFormat: 'json',
  accessLog: false,
  internalPort: 0,
  internalHost: '127.0.0.1',
  previousSecret: '',
  previousSecretUntil: '',
  jwtAlgorithms: ['HS256'],
  jwtPublicKeys: [],
  jwks: [],
  jwtIssuers: [],
  jwtAudience: [],
  jwtLeewaySeconds: 5,
  jwksCacheSeconds: 600,
  tokenCookie: '',
  authCacheSize: 10_000,
  authHook: '',
  authHookCookies: [],
  authHookHeaders: [],
  authHookTimeoutMs: 2000,
  authHookCacheSeconds: 30,
  authHookCacheSize: 10_000,
  authHookMaxConcurrent: 100,
  authHookFailure: 'deny',
  webhook: '',
  webhookSecret: '',
  webhookEvents: ['client_connected', 'client_disconnected', 'channel_occupied', 'channel_vacated'],
  webhookBatchSize: 100,
  webhookBatchMs: 250,
  webhookQueueSize: 10_000,
  webhookTimeoutMs: 5000,
  webhookMaxAttempts: 6,
  presenceHeartbeatSeconds: 5,
  presenceTtlSeconds: 15,
  presenceMaxInfoBytes: 1024,
  namespaces: {},
  defaultNamespace: {},
  scopedApiKeys: [],
  historySize: 100,
  historyTtlSeconds: 120,
  historyMetaTtlSeconds: 3600,
  historyMaxBytes: 64 * 1024 * 1024,
  pusherApps: [],
  pusherActivityTimeoutSeconds: 120,
};

/** Environment variables honoured when a setting's own `HERALD_*` variable is unset (INTERFACE.md names them). */
const ENV_ALIASES: Partial<Record<keyof HeraldConfig, readonly string[]>> = {
  broker: ['REDIS_URL'],
  apiKeys: ['HERALD_API_KEY'],
};

export const SETTING_NAMES = Object.keys(SPECS) as (keyof HeraldConfig)[];

/** `maxQueueBytes` → `--max-queue-bytes`. */
export function flagName(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}
/** `maxQueueBytes` → `HERALD_MAX_QUEUE_BYTES`. */
export function envName(key: string): string {
  return 'HERALD_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

export function settingInfo(key: keyof HeraldConfig): SettingInfo {
  const spec = SPECS[key];
  return {
    key,
    kind: spec.kind,
    flag: flagName(key),
    env: envName(key),
    doc: spec.doc,
    default: DEFAULTS[key],
    secret: spec.secret === true,
    ...(spec.defaultText !== undefined ? { defaultText: spec.defaultText } : {}),
    ...(spec.min !== undefined ? { min: spec.min } : {}),
    ...(spec.max !== undefined ? { max: spec.max } : {}),
    ...(spec.oneOf !== undefined ? { oneOf: spec.oneOf } : {}),
  };
}

/**
 * `HERALD_*` variables read besides the settings' own (`HERALD_PORT`, ...). A variable in neither list draws a
 * warning at start, so that `HERALD_PROT=9000` is not silently ignored: add here any variable a command reads.
 */
export const OTHER_VARIABLES: readonly string[] = ['HERALD_CONFIG', 'HERALD_API_KEY', 'HERALD_SERVER'];

/** A `HERALD_*` variable that no setting or command reads, with the known name it most likely meant. */
export interface UnknownVariable {
  readonly variable: string;
  readonly suggestion?: string;
  /** `unknown environment variable HERALD_PROT ignored (did you mean HERALD_PORT?)` */
  readonly message: string;
}

export function unknownVariables(env: Record<string, string | undefined>): UnknownVariable[] {
  const known = [...SETTING_NAMES.map(envName), ...OTHER_VARIABLES];
  const out: UnknownVariable[] = [];
  for (const variable of Object.keys(env).sort()) {
    if (!variable.startsWith('HERALD_') || known.includes(variable)) continue;
    const suggestion = closest(variable, known);
    const hint = suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`;
    out.push({ variable, ...(suggestion ? { suggestion } : {}), message: `unknown environment variable ${variable} ignored${hint}` });
  }
  return out;
}

export interface ConfigSources {
  /** Settings given as flags, already split into key → raw value (lists may repeat). */
  flags?: Partial<Record<keyof HeraldConfig, string | string[] | boolean>>;
  /** The environment (`process.env` at the CLI). */
  env?: Record<string, string | undefined>;
  /** Path of a JSON config file; overrides `HERALD_CONFIG`. */
  configFile?: string;
  /** Values given directly by library users, at the level of flags. */
  overrides?: Partial<HeraldConfig>;
}

/** Merge the sources, validate every setting, and return a frozen config. Throws the first problem as ConfigError. */
export function resolveConfig(sources: ConfigSources = {}): HeraldConfig {
  const checked = checkConfig(sources);
  if (!checked.config) throw checked.problems[0] ?? new ConfigError('config', 'invalid');
  return checked.config;
}

/** A resolved config, or every problem that stops it (in the order resolveConfig would meet them). */
export type ConfigCheck = { config: HeraldConfig; problems: [] } | { config: undefined; problems: ConfigError[] };

/** resolveConfig without the throw: every bad setting is reported, not only the first (`herald config check`). */
export function checkConfig(sources: ConfigSources = {}): ConfigCheck {
  const problems: ConfigError[] = [];
  const collect = (fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(err);
    }
  };
  const env = sources.env ?? {};
  let file: Record<string, unknown> = {};
  collect(() => (file = loadConfigFile(sources.configFile ?? env['HERALD_CONFIG'], problems)));
  const out: Record<string, unknown> = {};
  for (const key of SETTING_NAMES) {
    collect(() => {
      const spec = SPECS[key];
      let value: unknown = DEFAULTS[key];
      let origin = key as string;
      if (file[key] !== undefined) {
        value = fromJson(key, spec, file[key]);
        origin = `${key} (config file)`;
      }
      const envRaw = env[envName(key)] ?? ENV_ALIASES[key]?.map((name) => env[name]).find((v) => v !== undefined);
      if (envRaw !== undefined && envRaw !== '') {
        value = parseRaw(envName(key), spec, envRaw);
        origin = envName(key);
      }
      const flag = sources.flags?.[key];
      if (flag !== undefined) {
        value = typeof flag === 'boolean' ? flag : parseRaw(flagName(key), spec, flag);
        origin = flagName(key);
      }
      const direct = sources.overrides?.[key];
      if (direct !== undefined) value = fromJson(key, spec, direct);
      out[key] = deepFreeze(validate(origin, spec, value));
    });
  }
  if (problems.length > 0) return { config: undefined, problems };
  const config = out as unknown as HeraldConfig;
  // --dev binds loopback unless a host was asked for explicitly.
  if (config.dev && sources.flags?.host === undefined && env['HERALD_HOST'] === undefined && file['host'] === undefined
      && sources.overrides?.host === undefined) {
    (out as { host: string }).host = '127.0.0.1';
  }
  // workers 0: one per CPU, one in --dev (a development node stays one process unless asked).
  if (config.workers === 0) (out as { workers: number }).workers = config.dev ? 1 : availableParallelism();
  // --dev: pusher-js works with no config, with the app Soketi users know.
  if (config.dev && config.pusherApps.length === 0) (out as { pusherApps: readonly PusherAppConfig[] }).pusherApps = [DEV_PUSHER_APP];
  checkSafety(config, problems);
  if (problems.length > 0) return { config: undefined, problems };
  return { config: Object.freeze(config), problems: [] };
}

/** Secrets anybody could guess (from docs, tutorials and jwt.io): refused outside --dev. */
const WEAK_SECRETS = new Set([
  'secret', 'changeme', 'change-me', 'password', 'herald', 'test', 'default', 'dev',
  'your-256-bit-secret', 'your-384-bit-secret', 'your-512-bit-secret', 'supersecret', 'mysecret', 'secretkey',
  'herald-secret', 'change-this-secret', 'replace-me', 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
]);
export const MIN_SECRET_LENGTH = 32;

/** Rules across settings. Outside --dev a strong secret is required, so nothing starts open by accident. */
function checkSafety(config: HeraldConfig, problems: ConfigError[]): void {
  if (config.internalPort !== 0 && config.internalPort === config.port) {
    problems.push(new ConfigError('internalPort', `must differ from port (${config.port})`));
  }
  if (config.historyMetaTtlSeconds < config.historyTtlSeconds) {
    problems.push(new ConfigError('historyMetaTtlSeconds', 'must be at least historyTtlSeconds'));
  }
  if (config.presenceTtlSeconds <= config.presenceHeartbeatSeconds) {
    problems.push(new ConfigError('presenceTtlSeconds', 'must be more than presenceHeartbeatSeconds (at least twice is wise)'));
  }
  if (config.previousSecret !== '' && config.previousSecretUntil === '') {
    problems.push(new ConfigError('HERALD_PREVIOUS_SECRET_UNTIL', 'required with a previous secret: the date it stops being accepted'));
  }
  const asymmetric = config.jwtAlgorithms.some((a) => !HMAC_ALGORITHMS.includes(a));
  if (asymmetric && config.jwtPublicKeys.length === 0 && config.jwks.length === 0) {
    problems.push(new ConfigError('HERALD_JWT_ALGORITHMS', 'RS/PS/ES/EdDSA algorithms need jwtPublicKeys or jwks'));
  }
  if (config.webhook !== '' && config.webhookSecret.length < 16) {
    problems.push(new ConfigError('HERALD_WEBHOOK_SECRET', 'required with a webhook URL: at least 16 characters the receiver checks signatures with'));
  }
  if (config.authHook !== '' && config.authHookCookies.length === 0 && config.authHookHeaders.length === 0) {
    // Answers are cached per forwarded credential: with none, one client's answer would be every client's.
    problems.push(new ConfigError('HERALD_AUTH_HOOK_COOKIES', 'name the cookies (or authHookHeaders) that identify a client to the auth hook'));
  }
  if (config.dev) return;
  config.pusherApps.forEach((app, i) => {
    // Anyone who knows the secret can publish to every channel and sign any subscription: --dev's is public.
    if (app.secret.length < 16 || app.secret === DEV_PUSHER_APP.secret) {
      problems.push(new ConfigError(`pusherApps[${i}].secret`, 'too weak outside --dev: use at least 16 random characters'));
    }
  });
  if (config.secret === '') {
    problems.push(new ConfigError('HERALD_SECRET', 'a secret is required outside --dev (at least 32 random characters)'));
  } else if (weakSecret(config.secret)) {
    problems.push(new ConfigError('HERALD_SECRET', `too weak: use at least ${MIN_SECRET_LENGTH} random characters`));
  }
  if (config.previousSecret !== '' && weakSecret(config.previousSecret)) {
    problems.push(new ConfigError('HERALD_PREVIOUS_SECRET', `too weak: use at least ${MIN_SECRET_LENGTH} random characters`));
  }
}

/** Known, short, or with too few distinct characters (`aaaa...`, `abababab...`). */
export function weakSecret(secret: string): boolean {
  return WEAK_SECRETS.has(secret.toLowerCase()) || secret.length < MIN_SECRET_LENGTH || new Set(secret).size < 8;
}

/**
 * The config file: JSON, with `//` and `/* *\/` comments allowed (as in tsconfig.json, so a starter file can explain
 * itself) and a `$schema` key for editors, which Herald ignores. Each unknown key is a problem of its own; the file's
 * other keys still count, so `herald config check` reports them all.
 */
function loadConfigFile(path: string | undefined, problems: ConfigError[]): Record<string, unknown> {
  if (!path) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('--config', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let parsed: unknown;
  try {
    parsed = parseJsonc(text);
  } catch (err) {
    throw new ConfigError('--config', `${path} is not valid JSON${err instanceof JsoncError ? ` (${err.message})` : ''}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError('--config', `${path} must hold a JSON object`);
  }
  const known: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (key === '$schema') continue;
    if (key in SPECS) {
      known[key] = value;
      continue;
    }
    const suggestion = closest(key, SETTING_NAMES);
    problems.push(new ConfigError(key, `unknown setting in ${path}${suggestion ? ` (did you mean ${suggestion}?)` : ''}`));
  }
  return known;
}

function parseRaw(name: string, spec: Spec, raw: string | string[]): unknown {
  const values = Array.isArray(raw) ? raw : [raw];
  const last = values[values.length - 1] ?? '';
  switch (spec.kind) {
    case 'int': {
      if (!/^-?\d+$/.test(last.trim())) throw new ConfigError(name, `"${last}" is not an integer`);
      return Number(last.trim());
    }
    case 'bool': {
      const v = last.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      throw new ConfigError(name, `"${last}" is not a boolean (true/false)`);
    }
    case 'list':
      return values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v.length > 0);
    case 'string':
      return last;
    case 'json':
      try {
        return JSON.parse(last) as unknown;
      } catch {
        throw new ConfigError(name, 'is not valid JSON');
      }
  }
}

const KIND_NAMES: Record<Kind, string> = {
  int: 'an integer',
  bool: 'a boolean',
  string: 'a string',
  list: 'a list of strings',
  json: 'JSON',
};

function fromJson(name: string, spec: Spec, value: unknown): unknown {
  const ok =
    (spec.kind === 'int' && typeof value === 'number') ||
    (spec.kind === 'bool' && typeof value === 'boolean') ||
    (spec.kind === 'string' && typeof value === 'string') ||
    (spec.kind === 'list' && Array.isArray(value) && value.every((v) => typeof v === 'string')) ||
    spec.kind === 'json';
  if (!ok) throw new ConfigError(name, `must be ${KIND_NAMES[spec.kind]}`);
  return value;
}

/** Check a value against its spec; returns it, normalized where the spec says how. */
function validate(name: string, spec: Spec, value: unknown): unknown {
  if (spec.kind === 'int') {
    const n = value as number;
    if (!Number.isSafeInteger(n)) throw new ConfigError(name, 'must be an integer');
    if (spec.min !== undefined && n < spec.min) throw new ConfigError(name, `must be at least ${spec.min}`);
    if (spec.max !== undefined && n > spec.max) throw new ConfigError(name, `must be at most ${spec.max}`);
  }
  if (spec.kind === 'string') {
    const s = value as string;
    if (spec.oneOf && !spec.oneOf.includes(s)) throw new ConfigError(name, `must be one of ${spec.oneOf.join(', ')}`);
    const problem = spec.check?.(s);
    if (problem) throw new ConfigError(name, problem);
  }
  return spec.json ? spec.json(name, value) : value;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function isDate(v: string): boolean {
  return /^\d{4}-\d{2}-\d{2}/.test(v) && !Number.isNaN(Date.parse(v));
}

const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'];
export const JWT_ALGORITHMS: readonly string[] = [
  ...HMAC_ALGORITHMS, 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519',
];

function checkAlgorithms(name: string, value: unknown): unknown {
  const list = value as string[];
  if (list.length === 0) throw new ConfigError(name, 'name at least one algorithm');
  for (const a of list) {
    if (!JWT_ALGORITHMS.includes(a)) throw new ConfigError(name, `"${a}" is not one of ${JWT_ALGORITHMS.join(', ')}`);
  }
  return list;
}

/** The fields of a namespace's rules and their kinds (also the JSON Schema's, in src/cli/config-schema.ts). */
export const RULE_FIELDS: Readonly<Record<keyof NamespaceRules, 'boolean' | 'count'>> = {
  anonymous: 'boolean',
  clientPublish: 'boolean',
  maxSubscribers: 'count',
  historySize: 'count',
  historyTtlSeconds: 'count',
  presence: 'boolean',
  joinLeave: 'boolean',
};

function checkRules(name: string, value: unknown): NamespaceRules {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(name, 'must be an object of namespace rules');
  }
  for (const [field, v] of Object.entries(value)) {
    const kind = RULE_FIELDS[field as keyof NamespaceRules];
    if (!kind) throw new ConfigError(`${name}.${field}`, `unknown rule (known: ${Object.keys(RULE_FIELDS).join(', ')})`);
    if (kind === 'boolean' && typeof v !== 'boolean') throw new ConfigError(`${name}.${field}`, 'must be true or false');
    if (kind === 'count' && !(Number.isSafeInteger(v) && (v as number) >= 0)) {
      throw new ConfigError(`${name}.${field}`, 'must be a whole number, 0 or more');
    }
  }
  return value as NamespaceRules;
}

function checkNamespaces(name: string, value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(name, 'must be an object: {"chat": {"anonymous": false, ...}}');
  }
  for (const [ns, rules] of Object.entries(value)) {
    // A namespace is the part of a channel name before its first ":"; it cannot hold one itself.
    if (!/^[^:\s]{1,64}$/.test(ns)) throw new ConfigError(`${name}.${ns}`, 'a namespace name is 1-64 characters, no ":" or spaces');
    checkRules(`${name}.${ns}`, rules);
  }
  return value;
}

function checkScopedKeys(name: string, value: unknown): unknown {
  if (!Array.isArray(value)) throw new ConfigError(name, 'must be a list: [{"key":"...","namespaces":["chat"]}]');
  for (const [i, entry] of value.entries()) {
    const e = entry as Partial<ScopedApiKey> | null;
    if (typeof e !== 'object' || e === null || typeof e.key !== 'string' || e.key.length < 16) {
      throw new ConfigError(`${name}[${i}].key`, 'must be a string of at least 16 characters');
    }
    if (e.namespaces !== undefined || e.calls === undefined) {
      if (!Array.isArray(e.namespaces) || !e.namespaces.every((n) => typeof n === 'string')) {
        throw new ConfigError(`${name}[${i}].namespaces`, 'must be a list of namespace names');
      }
    }
    if (e.calls !== undefined) {
      const known: readonly string[] = API_CALLS;
      if (!Array.isArray(e.calls) || !e.calls.every((c) => typeof c === 'string' && known.includes(c))) {
        throw new ConfigError(`${name}[${i}].calls`, `must be a list of server API calls (${API_CALLS.join(', ')})`);
      }
    }
  }
  return value;
}

/** Each entry an IPv4/IPv6 address or a CIDR (`10.0.0.0/8`, `fd00::/8`). */
function checkProxies(name: string, value: unknown): unknown {
  for (const entry of value as string[]) {
    const [address = '', bits, ...rest] = entry.split('/');
    const family = isIP(address);
    const max = family === 4 ? 32 : 128;
    const ok = family !== 0 && rest.length === 0 && (bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= max));
    if (!ok) throw new ConfigError(name, `"${entry}" is not an IP address or CIDR (e.g. 10.0.0.0/8)`);
  }
  return value;
}

/** An http(s) URL, or "" (none). */
function checkHookUrl(value: string): string | undefined {
  if (value === '') return undefined;
  try {
    const u = new URL(value);
    if (u.protocol === 'http:' || u.protocol === 'https:') return undefined;
  } catch {
    /* below */
  }
  return `"${value}" is not an http:// or https:// URL`;
}

function checkCookieNames(name: string, value: unknown): unknown {
  for (const c of value as string[]) {
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(c)) throw new ConfigError(name, `"${c}" is not a cookie name`);
  }
  return value;
}

/** Header names, kept lower-case (how both request readers hold them). */
function checkHeaderNames(name: string, value: unknown): unknown {
  const list = (value as string[]).map((h) => h.toLowerCase());
  for (const h of list) {
    if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(h)) throw new ConfigError(name, `"${h}" is not a header name`);
  }
  return list;
}

const WEBHOOK_EVENTS = ['client_connected', 'client_disconnected', 'channel_occupied', 'channel_vacated'];
function checkWebhookEvents(name: string, value: unknown): unknown {
  for (const e of value as string[]) {
    if (!WEBHOOK_EVENTS.includes(e)) throw new ConfigError(name, `"${e}" is not one of ${WEBHOOK_EVENTS.join(', ')}`);
  }
  return value;
}

/** --dev's Pusher app: the ids and secret Soketi's documentation uses, so existing client settings work. */
export const DEV_PUSHER_APP: PusherAppConfig = Object.freeze({
  id: 'app-id',
  key: 'app-key',
  secret: 'app-secret',
  allowedOrigins: Object.freeze(['*']),
  clientEvents: true,
  channelPrefix: '',
  webhooks: Object.freeze([]),
  maxConnections: 0,
  maxEventBytes: 10_240,
  maxClientEventsPerSecond: 10,
  maxPresenceMembers: 100,
});

export const PUSHER_WEBHOOK_EVENTS = ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event', 'cache_miss'];
const PUSHER_APP_FIELDS = [
  'id', 'key', 'secret', 'allowedOrigins', 'clientEvents', 'channelPrefix', 'webhooks', 'maxConnections', 'maxEventBytes',
  'maxClientEventsPerSecond', 'maxPresenceMembers',
];

/** Each app entry checked field by field; the first problem is one line naming the entry and the field. */
function checkPusherApps(name: string, value: unknown): unknown {
  if (!Array.isArray(value)) throw new ConfigError(name, 'must be a list: [{"id":"1","key":"...","secret":"..."}]');
  const seen = { id: new Set<string>(), key: new Set<string>() };
  return value.map((entry: unknown, i): PusherAppConfig => {
    const at = `${name}[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new ConfigError(at, 'must be an object {"id","key","secret",...}');
    const e = entry as Record<string, unknown>;
    for (const k of Object.keys(e)) {
      if (PUSHER_APP_FIELDS.includes(k)) continue;
      const s = closest(k, PUSHER_APP_FIELDS);
      throw new ConfigError(`${at}.${k}`, `unknown field${s ? ` (did you mean ${s}?)` : ''}`);
    }
    const text = (field: string, re: RegExp, what: string): string => {
      const v = e[field];
      if (typeof v !== 'string' || !re.test(v)) throw new ConfigError(`${at}.${field}`, what);
      return v;
    };
    const id = text('id', /^[A-Za-z0-9_-]{1,64}$/, 'required: 1-64 letters, digits, "-" or "_"');
    const key = text('key', /^[A-Za-z0-9_-]{1,64}$/, 'required: 1-64 letters, digits, "-" or "_"');
    const secret = text('secret', /^[\x21-\x7e]{1,256}$/, 'required: 1-256 visible ASCII characters');
    if (seen.id.has(id)) throw new ConfigError(`${at}.id`, `"${id}" is used by another app`);
    if (seen.key.has(key)) throw new ConfigError(`${at}.key`, `"${key}" is used by another app`);
    seen.id.add(id);
    seen.key.add(key);
    const int = (field: string, def: number, min: number, max: number): number => {
      const v = e[field] ?? def;
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw new ConfigError(`${at}.${field}`, `must be an integer ${min}..${max}`);
      return v;
    };
    const list = (field: string): string[] => {
      const v = e[field] ?? [];
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new ConfigError(`${at}.${field}`, 'must be a list of strings');
      return v as string[];
    };
    const clientEvents = e['clientEvents'] ?? false;
    if (typeof clientEvents !== 'boolean') throw new ConfigError(`${at}.clientEvents`, 'must be true or false');
    const channelPrefix = e['channelPrefix'] ?? '';
    if (typeof channelPrefix !== 'string' || !/^[A-Za-z0-9_\-=@,.;:]{0,64}$/.test(channelPrefix)) {
      throw new ConfigError(`${at}.channelPrefix`, 'must be up to 64 characters of a channel name');
    }
    const hooks = e['webhooks'] ?? [];
    if (!Array.isArray(hooks)) throw new ConfigError(`${at}.webhooks`, 'must be a list: [{"url":"https://...","events":[...]}]');
    const webhooks = hooks.map((h: unknown, j): PusherWebhookConfig => {
      const hat = `${at}.webhooks[${j}]`;
      if (typeof h !== 'object' || h === null) throw new ConfigError(hat, 'must be an object {"url", "events"}');
      const { url, events } = h as Record<string, unknown>;
      const problem = typeof url === 'string' && url !== '' ? checkHookUrl(url) : 'url is required';
      if (problem) throw new ConfigError(`${hat}.url`, problem);
      const evs = events ?? PUSHER_WEBHOOK_EVENTS;
      if (!Array.isArray(evs) || !evs.every((x) => typeof x === 'string' && PUSHER_WEBHOOK_EVENTS.includes(x))) {
        throw new ConfigError(`${hat}.events`, `must list some of ${PUSHER_WEBHOOK_EVENTS.join(', ')}`);
      }
      return { url: url as string, events: evs as string[] };
    });
    return {
      id,
      key,
      secret,
      allowedOrigins: list('allowedOrigins'),
      clientEvents,
      channelPrefix,
      webhooks,
      maxConnections: int('maxConnections', 0, 0, 10_000_000),
      maxEventBytes: int('maxEventBytes', 10_240, 64, 16 << 20),
      maxClientEventsPerSecond: int('maxClientEventsPerSecond', 10, 1, 10_000),
      maxPresenceMembers: int('maxPresenceMembers', 100, 1, 100_000),
    };
  });
}

/** Why `value` is not a broker URL, or undefined when it is one. */
export function checkBrokerUrl(value: string): string | undefined {
  if (value === 'memory') return undefined;
  if (/^rediss?:\/\/[^\s]+$/.test(value)) {
    try {
      new URL(value);
      return undefined;
    } catch {
      return `"${value}" is not a valid URL`;
    }
  }
  if (/^redis-cluster:\/\/[^\s,]+(,[^\s,]+)*$/.test(value)) return undefined;
  return `"${value}" must be memory, redis://HOST:PORT or redis-cluster://HOST:PORT,...`;
}
