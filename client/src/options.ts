/** Defaults merged once; contradictory options fail at construction, not on the first reconnect. */
import type { ClientOptions, TransportName } from './types.js';

export interface ResolvedOptions {
  readonly channels: readonly string[];
  readonly keys: readonly string[];
  readonly token: string | undefined;
  readonly getToken: (() => Promise<string>) | undefined;
  readonly since: ReadonlyMap<string, string>;
  readonly transports: readonly TransportName[];
  readonly minReconnectDelayMs: number;
  readonly maxReconnectDelayMs: number;
  readonly outageMaxReconnectDelayMs: number;
  readonly connectTimeoutMs: number;
  readonly pollAbortMs: number;
  readonly pingIntervalMs: number;
  readonly readyProbeIntervalMs: number;
  readonly dedupeWindow: number;
  readonly joinLeave: boolean;
  readonly withCredentials: boolean;
}

export const DEFAULT_TRANSPORTS: readonly TransportName[] = ['websocket', 'sse', 'poll'];

export function resolveOptions(o: ClientOptions): ResolvedOptions {
  const r: ResolvedOptions = {
    channels: [...(o.channels ?? [])],
    keys: [...(o.keys ?? [])],
    token: o.token,
    getToken: o.getToken,
    since: new Map(Object.entries(o.since ?? {})),
    transports: [...(o.transports ?? DEFAULT_TRANSPORTS)],
    minReconnectDelayMs: o.minReconnectDelayMs ?? 500,
    maxReconnectDelayMs: o.maxReconnectDelayMs ?? 20_000,
    outageMaxReconnectDelayMs: o.outageMaxReconnectDelayMs ?? 2000,
    connectTimeoutMs: o.connectTimeoutMs ?? 10_000,
    pollAbortMs: o.pollAbortMs ?? 35_000,
    pingIntervalMs: o.pingIntervalMs ?? 25_000,
    readyProbeIntervalMs: o.readyProbeIntervalMs ?? 1000,
    dedupeWindow: o.dedupeWindow ?? 1000,
    joinLeave: o.joinLeave ?? false,
    withCredentials: o.withCredentials ?? false,
  };
  if (r.channels.length === 0 && r.keys.length === 0 && r.token === undefined && r.getToken === undefined) {
    throw new TypeError('HeraldClient: give channels, keys or a token');
  }
  if (r.transports.length === 0) throw new TypeError('HeraldClient: transports must not be empty');
  for (const t of r.transports) {
    if (!DEFAULT_TRANSPORTS.includes(t)) throw new TypeError(`HeraldClient: unknown transport "${t}"`);
  }
  if (!(r.minReconnectDelayMs >= 0) || !(r.maxReconnectDelayMs >= r.minReconnectDelayMs)) {
    throw new TypeError('HeraldClient: need 0 <= minReconnectDelayMs <= maxReconnectDelayMs');
  }
  if (!(r.outageMaxReconnectDelayMs >= 0)) throw new TypeError('HeraldClient: outageMaxReconnectDelayMs must be 0 or more');
  if (!(r.connectTimeoutMs > 0)) throw new TypeError('HeraldClient: connectTimeoutMs must be positive');
  if (!(r.pingIntervalMs >= 0)) throw new TypeError('HeraldClient: pingIntervalMs must be 0 or more');
  if (!(r.readyProbeIntervalMs >= 0)) throw new TypeError('HeraldClient: readyProbeIntervalMs must be 0 or more');
  if (!(r.pollAbortMs > 0)) throw new TypeError('HeraldClient: pollAbortMs must be positive');
  return r;
}

/** `http(s)://host[:port]/prefix` from what the user gave: an http(s) or ws(s) URL, trailing slashes dropped. */
export function normalizeBaseUrl(url: string): string {
  const m = /^(https?|wss?):\/\/[^/?#]+(\/[^?#]*)?$/i.exec(url.trim());
  if (!m) throw new TypeError(`HeraldClient: "${url}" is not an absolute http(s) or ws(s) URL`);
  return url.trim().replace(/^ws/i, 'http').replace(/\/+$/, '');
}
