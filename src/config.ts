/**
 * Configuration: every setting Herald reads, its default, and its validation, in one place.
 *
 * Sources, highest first: command-line flags, `HERALD_*` environment variables, a JSON config file
 * (`--config FILE` or `HERALD_CONFIG`), defaults. `REDIS_URL` is the broker when `HERALD_BROKER` is unset.
 * No other module reads `process.env`.
 */
import { readFileSync } from 'node:fs';

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
  /** Development mode: loopback only, anonymous subscribe and publish from localhost. @default false */
  readonly dev: boolean;
  /** Secret for sealed channel keys and HS* JWTs. @default "" (required outside --dev) */
  readonly secret: string;
  /** API keys accepted by POST /api/publish (`Authorization: Bearer KEY`). @default [] */
  readonly apiKeys: readonly string[];
  /** Bytes a client may have waiting in its outgoing queue before it is disconnected as slow. @default 1048576 */
  readonly maxQueueBytes: number;
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
  /** Milliseconds SIGTERM waits for clients to leave before closing the rest. @default 5000 */
  readonly drainTimeoutMs: number;
  /** Origins allowed for cross-origin streams and WebSocket upgrades; "*" allows any (never with credentials). @default [] */
  readonly allowedOrigins: readonly string[];
  /** `debug`, `info`, `warn`, `error` or `silent`. @default "info" */
  readonly logLevel: LogLevel;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

/** A bad setting: names the setting and says why. The CLI prints it as one line and exits with code 2. */
export class ConfigError extends Error {
  constructor(readonly setting: string, reason: string) {
    super(`invalid setting ${setting}: ${reason}`);
    this.name = 'ConfigError';
  }
}

type Kind = 'int' | 'string' | 'bool' | 'list';
interface Spec {
  kind: Kind;
  min?: number;
  max?: number;
  oneOf?: readonly string[];
  check?: (value: string) => string | undefined;
}

const SPECS: { [K in keyof HeraldConfig]: Spec } = {
  port: { kind: 'int', min: 0, max: 65535 },
  host: { kind: 'string', check: (v) => (v.length === 0 ? 'must not be empty' : undefined) },
  broker: { kind: 'string', check: checkBrokerUrl },
  redisTimeoutMs: { kind: 'int', min: 50, max: 60_000 },
  redisProbeIntervalMs: { kind: 'int', min: 50, max: 60_000 },
  dev: { kind: 'bool' },
  secret: { kind: 'string' },
  apiKeys: { kind: 'list' },
  maxQueueBytes: { kind: 'int', min: 1024, max: 1 << 30 },
  maxChannelsPerConnection: { kind: 'int', min: 1, max: 10000 },
  maxConnections: { kind: 'int', min: 0, max: 10_000_000 },
  maxConnectionsPerIp: { kind: 'int', min: 0, max: 10_000_000 },
  heartbeatSeconds: { kind: 'int', min: 1, max: 3600 },
  wsMaxFrameBytes: { kind: 'int', min: 256, max: 16 << 20 },
  pollTimeoutSeconds: { kind: 'int', min: 1, max: 300 },
  headersTimeoutMs: { kind: 'int', min: 100, max: 600_000 },
  maxHeaderBytes: { kind: 'int', min: 1024, max: 1 << 20 },
  maxUrlBytes: { kind: 'int', min: 256, max: 1 << 20 },
  maxBodyBytes: { kind: 'int', min: 64, max: 64 << 20 },
  drainTimeoutMs: { kind: 'int', min: 0, max: 600_000 },
  allowedOrigins: { kind: 'list' },
  logLevel: { kind: 'string', oneOf: ['debug', 'info', 'warn', 'error', 'silent'] },
};

export const DEFAULTS: HeraldConfig = {
  port: 8080,
  host: '0.0.0.0',
  broker: 'memory',
  redisTimeoutMs: 2000,
  redisProbeIntervalMs: 1000,
  dev: false,
  secret: '',
  apiKeys: [],
  maxQueueBytes: 1 << 20,
  maxChannelsPerConnection: 100,
  maxConnections: 0,
  maxConnectionsPerIp: 0,
  heartbeatSeconds: 25,
  wsMaxFrameBytes: 64 * 1024,
  pollTimeoutSeconds: 25,
  headersTimeoutMs: 10_000,
  maxHeaderBytes: 16 * 1024,
  maxUrlBytes: 8 * 1024,
  maxBodyBytes: 64 * 1024,
  drainTimeoutMs: 5000,
  allowedOrigins: [],
  logLevel: 'info',
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

/** Merge the sources, validate every setting, and return a frozen config. Throws ConfigError. */
export function resolveConfig(sources: ConfigSources = {}): HeraldConfig {
  const env = sources.env ?? {};
  const file = loadConfigFile(sources.configFile ?? env['HERALD_CONFIG']);
  const out: Record<string, unknown> = {};
  for (const key of SETTING_NAMES) {
    const spec = SPECS[key];
    let value: unknown = DEFAULTS[key];
    let origin = key as string;
    if (file[key] !== undefined) {
      value = fromJson(key, spec, file[key]);
      origin = `${key} (config file)`;
    }
    const envRaw = env[envName(key)] ?? (key === 'broker' ? env['REDIS_URL'] : undefined);
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
    validate(origin, spec, value);
    out[key] = Array.isArray(value) ? Object.freeze([...(value as string[])]) : value;
  }
  const config = out as unknown as HeraldConfig;
  // --dev binds loopback unless a host was asked for explicitly.
  if (config.dev && sources.flags?.host === undefined && env['HERALD_HOST'] === undefined && file['host'] === undefined
      && sources.overrides?.host === undefined) {
    (out as { host: string }).host = '127.0.0.1';
  }
  checkSafety(config);
  return Object.freeze(config);
}

/** Secrets anybody could guess: refused outside --dev. */
const WEAK_SECRETS = new Set(['secret', 'changeme', 'change-me', 'password', 'herald', 'test', 'default', 'dev']);
export const MIN_SECRET_LENGTH = 32;

/** Rules across settings. Outside --dev a strong secret is required, so nothing starts open by accident. */
function checkSafety(config: HeraldConfig): void {
  if (config.dev) return;
  if (config.secret === '') {
    throw new ConfigError('HERALD_SECRET', 'a secret is required outside --dev (at least 32 random characters)');
  }
  if (WEAK_SECRETS.has(config.secret.toLowerCase()) || config.secret.length < MIN_SECRET_LENGTH
      || new Set(config.secret).size < 8) {
    throw new ConfigError('HERALD_SECRET', `too weak: use at least ${MIN_SECRET_LENGTH} random characters`);
  }
}

function loadConfigFile(path: string | undefined): Record<string, unknown> {
  if (!path) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('--config', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigError('--config', `${path} is not valid JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError('--config', `${path} must hold a JSON object`);
  }
  for (const key of Object.keys(parsed)) {
    if (!(key in SPECS)) throw new ConfigError(key, `unknown setting in ${path}`);
  }
  return parsed as Record<string, unknown>;
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
  }
}

function fromJson(name: string, spec: Spec, value: unknown): unknown {
  const ok =
    (spec.kind === 'int' && typeof value === 'number') ||
    (spec.kind === 'bool' && typeof value === 'boolean') ||
    (spec.kind === 'string' && typeof value === 'string') ||
    (spec.kind === 'list' && Array.isArray(value) && value.every((v) => typeof v === 'string'));
  if (!ok) throw new ConfigError(name, `must be ${spec.kind === 'list' ? 'a list of strings' : `a ${spec.kind}`}`);
  return value;
}

function validate(name: string, spec: Spec, value: unknown): void {
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
