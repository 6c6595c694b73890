/**
 * The auth hook (issue 10 §3; docs/auth-hook.md): the app's backend decides who may subscribe, as Nchan's
 * `nchan_authorize_request` and Centrifugo's connect and subscribe proxies do. A subscribe without a token or a
 * sealed key asks it: Herald POSTs the transport, the channels, the configured cookies and headers and the client
 * address, and the backend answers allow (user, channels, expiry, info) or deny.
 *
 * - Cached: answers (allows and denials) are kept per credential (the forwarded cookies and headers, hashed) and
 *   channel set, for `authHookCacheSeconds` at most (less when the answer says `ttl` or expires sooner), in a
 *   bounded LRU (`authHookCacheSize`). Failures are not cached.
 * - Coalesced: while an ask is in flight, identical asks wait for its answer instead of calling again, so 200
 *   clients arriving together with one cookie cost one call.
 * - Bounded: at most `authHookMaxConcurrent` calls in flight (one more is a failure), `authHookTimeoutMs` for the whole exchange, answers of at most 64 KiB, redirects not followed.
 * - Failure policy: a timeout, an unreachable hook, a status other than 200/401/403 or an answer that is not a
 *   decision is a failure; `authHookFailure` `deny` answers 503 `auth_hook_unavailable`, `allow` lets the asked
 *   channels through with no user.
 */
import type { HeraldConfig } from '../config.js';
import { ROUND_TRIP_SECONDS, type Counter, type Histogram, type MetricsRegistry } from '../core/metrics.js';
import { HeraldError } from '../errors.js';
import { cookieValue } from '../http/request.js';
import { credentialDigest, ExpiringLru } from '../util/lru.js';
import { BadAnswer, MAX_ANSWER_BYTES, parseAnswer, reason, type HookDecision } from './hook-answer.js';
import type { Grant } from './grant.js';


/** What identifies a client to the hook: the configured cookies and headers it sent, and their digest. */
export interface HookCredential {
  readonly cookies: Readonly<Record<string, string>>;
  readonly headers: Readonly<Record<string, string>>;
  /** SHA-256 of the above: the cache key's first part (never the cookie's own text). */
  readonly digest: string;
}

/** One question to the hook. */
export interface HookAsk {
  readonly event: 'connect' | 'subscribe';
  readonly transport: string;
  readonly channels: readonly string[];
  readonly credential: HookCredential;
  readonly remoteAddress: string;
}

/** A grant from the hook; its `info` is the answer's `info` as JSON text (as a token's `info` claim is). */
export type HookGrant = Grant;

type Outcome = 'allow' | 'deny' | 'error' | 'timeout' | 'invalid';
const OUTCOMES: readonly Outcome[] = ['allow', 'deny', 'error', 'timeout', 'invalid'];

/** What a call came to: a decision, or a failure (never cached). */
type CallResult = { decision: HookDecision } | { failure: Exclude<Outcome, 'allow' | 'deny'> | 'overloaded'; detail: string };

export class AuthHook {
  private readonly cache: ExpiringLru<string, HookDecision>;
  private readonly inFlight = new Map<string, Promise<CallResult>>();
  private readonly calls: Counter;
  private readonly cacheHits: Counter;
  private readonly coalesced: Counter;
  private readonly failuresAllowed: Counter;
  private readonly overloaded: Counter;
  private readonly duration: Histogram;
  private readonly fetchImpl: typeof fetch;

  constructor(
    private readonly config: Pick<
      HeraldConfig,
      | 'authHook'
      | 'authHookCookies'
      | 'authHookHeaders'
      | 'authHookTimeoutMs'
      | 'authHookCacheSeconds'
      | 'authHookCacheSize'
      | 'authHookFailure'
      | 'authHookMaxConcurrent'
      | 'presenceMaxInfoBytes'
    >,
    registry: MetricsRegistry,
    fetchImpl: typeof fetch = fetch,
  ) {
    this.fetchImpl = fetchImpl;
    this.cache = new ExpiringLru(config.authHookCacheSeconds > 0 ? config.authHookCacheSize : 0);
    this.calls = registry.counter('herald_auth_hook_calls_total', 'Calls to the auth hook, by result (allow, deny, error, timeout, invalid).', {
      result: [...OUTCOMES],
    });
    this.cacheHits = registry.counter('herald_auth_hook_cache_hits_total', 'Subscribes decided by a cached auth hook answer.');
    this.coalesced = registry.counter('herald_auth_hook_coalesced_total', 'Subscribes that waited for an identical auth hook call in flight.');
    this.failuresAllowed = registry.counter(
      'herald_auth_hook_failures_allowed_total',
      'Subscribes let through by authHookFailure=allow while the hook failed.',
    );
    this.overloaded = registry.counter(
      'herald_auth_hook_overloaded_total',
      'Subscribes that needed an auth hook call while authHookMaxConcurrent calls were in flight (a hook failure).',
    );
    this.duration = registry.histogram('herald_auth_hook_duration_seconds', 'Time of one auth hook call, answer read.', ROUND_TRIP_SECONDS);
    registry.gauge('herald_auth_hook_cached', 'Auth hook answers cached now.', () => this.cache.size);
    registry.gauge('herald_auth_hook_in_flight', 'Auth hook calls in flight now.', () => this.inFlight.size);
  }

  /** The credential of a request, from its headers (taken once: a WebSocket keeps it for later subscribes). */
  credentialOf(header: (name: string) => string | undefined): HookCredential {
    const cookies: Record<string, string> = {};
    const headers: Record<string, string> = {};
    const cookieHeader = header('cookie');
    for (const name of this.config.authHookCookies) {
      const v = cookieValue(cookieHeader, name);
      if (v !== undefined) cookies[name] = v;
    }
    for (const name of this.config.authHookHeaders) {
      const v = header(name);
      if (v !== undefined) headers[name] = v;
    }
    return { cookies, headers, digest: credentialDigest(JSON.stringify([cookies, headers])) };
  }

  /**
   * The hook's grant for `ask`: rejects with 401/403 when the backend denies, 503 `auth_hook_unavailable` when it
   * fails and the policy is `deny`. With the policy `allow`, a failure grants exactly the channels asked.
   */
  async decide(ask: HookAsk): Promise<HookGrant> {
    const key = ask.credential.digest + '\u0000' + [...ask.channels].sort().join('\u0000');
    let decision = this.cache.get(key);
    if (decision) this.cacheHits.inc();
    else {
      let pending = this.inFlight.get(key);
      if (pending) this.coalesced.inc();
      else if (this.inFlight.size >= this.config.authHookMaxConcurrent) {
        this.overloaded.inc();
        pending = Promise.resolve({ failure: 'overloaded', detail: 'too many calls in flight' });
      } else {
        pending = this.call(ask, key).finally(() => this.inFlight.delete(key));
        this.inFlight.set(key, pending);
      }
      const result = await pending;
      if ('failure' in result) {
        if (this.config.authHookFailure === 'allow') {
          this.failuresAllowed.inc();
          return { channels: ask.channels.map((c) => ({ pattern: c, prefix: false })) };
        }
        throw new HeraldError('auth_hook_unavailable', `auth hook ${result.failure}: retry shortly`);
      }
      decision = result.decision;
    }
    return toGrant(decision, ask.channels, this.config.presenceMaxInfoBytes);
  }

  private remember(key: string, decision: HookDecision): void {
    const now = Date.now();
    let ttl = this.config.authHookCacheSeconds * 1000;
    if (decision.ttlSeconds !== undefined) ttl = Math.min(ttl, decision.ttlSeconds * 1000);
    let until = now + ttl;
    if (decision.allow && decision.expiresAt !== undefined) until = Math.min(until, decision.expiresAt);
    if (until > now) this.cache.set(key, decision, until);
  }

  private async call(ask: HookAsk, key: string): Promise<CallResult> {
    const started = performance.now();
    const result = await this.exchange(ask);
    this.duration.observe((performance.now() - started) / 1000);
    this.calls.inc({ result: 'failure' in result ? result.failure : result.decision.allow ? 'allow' : 'deny' });
    if ('decision' in result) this.remember(key, result.decision);
    return result;
  }

  private async exchange(ask: HookAsk): Promise<CallResult> {
    const body = JSON.stringify({
      event: ask.event,
      transport: ask.transport,
      channels: ask.channels,
      cookies: ask.credential.cookies,
      headers: ask.credential.headers,
      remoteAddress: ask.remoteAddress,
    });
    const signal = AbortSignal.timeout(this.config.authHookTimeoutMs);
    try {
      const res = await this.fetchImpl(this.config.authHook, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'User-Agent': 'herald-auth-hook' },
        body,
        redirect: 'manual',
        signal,
      });
      const text = await readBounded(res, MAX_ANSWER_BYTES);
      if (res.status === 401 || res.status === 403) {
        return { decision: { allow: false, status: res.status, ...reasonOf(text) } };
      }
      if (res.status !== 200) return { failure: 'error', detail: `status ${res.status}` };
      if (text === undefined) return { failure: 'invalid', detail: `answer over ${MAX_ANSWER_BYTES} bytes` };
      return { decision: parseAnswer(text) };
    } catch (err) {
      if (err instanceof BadAnswer) return { failure: 'invalid', detail: err.message };
      const name = err instanceof Error ? err.name : '';
      if (signal.aborted || name === 'TimeoutError' || name === 'AbortError') return { failure: 'timeout', detail: 'timed out' };
      return { failure: 'error', detail: err instanceof Error ? err.message : String(err) };
    }
  }
}

/** The grant a decision makes for the channels asked (a denial throws). */
function toGrant(decision: HookDecision, asked: readonly string[], maxInfoBytes: number): HookGrant {
  if (!decision.allow) {
    const why = decision.reason ? `denied by the auth hook: ${decision.reason}` : 'denied by the auth hook';
    throw new HeraldError(decision.status === 401 ? 'unauthorized' : 'forbidden', why);
  }
  if (decision.expiresAt !== undefined && decision.expiresAt <= Date.now()) {
    throw new HeraldError('token_expired', 'the auth hook granted access that has already expired');
  }
  return {
    channels: decision.channels ?? asked.map((c) => ({ pattern: c, prefix: false })),
    ...(decision.user !== undefined ? { subject: decision.user } : {}),
    ...(decision.expiresAt !== undefined ? { expiresAt: decision.expiresAt } : {}),
    // Info past presenceMaxInfoBytes is left out (as a token's is): no connection holds more than presence could show.
    ...(decision.info !== undefined && Buffer.byteLength(decision.info) <= maxInfoBytes ? { info: decision.info } : {}),
  };
}

/** A 401/403 body may say why (`{"reason": "..."}`); anything else about it is ignored. */
function reasonOf(text: string | undefined): { reason?: string } {
  if (text === undefined) return {};
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null ? reason((v as Record<string, unknown>)['reason']) : {};
  } catch {
    return {};
  }
}

/** The body as text, or undefined when it is longer than `max` bytes (reading stops there). */
async function readBounded(res: Response, max: number): Promise<string | undefined> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > max) {
    await res.body?.cancel().catch(() => undefined);
    return undefined;
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
