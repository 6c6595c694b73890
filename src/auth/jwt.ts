/**
 * JWT grants: verification (jose) and signing (`herald token`, `signToken()`).
 *
 * The rules that make a push server safe with JWTs:
 * - The algorithm comes from configuration, never from the token: a token whose `alg` is not configured (`none`
 *   included) is refused before any key is looked at, and HS* tokens are checked only against the secret, never
 *   against a public key (the classic RS256→HS256 confusion).
 * - `exp` is required; `nbf`/`exp` get a small leeway; `aud` and `iss` are checked where configured.
 * - Results are cached per token (bounded LRU, never past `exp`), and concurrent verifications of one token
 *   share one promise, so 10,000 clients connecting with the same token cost one signature check.
 * - A token's length and shape are checked before any cache is looked at, and the caches are keyed by the token's
 *   SHA-256, never by its text: V8 hashes strings over 16,383 characters by their length alone, so long tokens of one
 *   length used as Map keys all fall in one bucket and every lookup compares them all (issue 15: a flood of refused
 *   60 KB tokens stalled the event loop for seconds).
 */
import type { KeyObject } from 'node:crypto';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import { loadedJose, loadJose } from './jose-lazy.js';
import { HeraldError } from '../errors.js';
import { channelProblem, MAX_CHANNEL_BYTES } from '../protocol/channel.js';
import { credentialDigest, ExpiringLru } from '../util/lru.js';
import { parseChannelGrant, type ChannelGrant, type Grant } from './grant.js';
import type { PublicKeys } from './jwt-keys.js';
import type { SecretRing } from './secrets.js';

/** Longest token looked at. Longer ones are refused unparsed. */
export const MAX_TOKEN_CHARS = 8192;
/** A compact JWS: three base64url segments (the signature may be empty only for `alg: none`, refused later). */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Why a token is refused on its length and shape alone, or undefined. Cheap: no lookup, no decoding. */
export function tokenShapeProblem(token: string): string | undefined {
  if (token.length === 0) return 'invalid token: empty';
  if (token.length > MAX_TOKEN_CHARS) return `invalid token: longer than ${MAX_TOKEN_CHARS} characters`;
  if (!JWT_SHAPE.test(token)) return 'invalid token: not a JWT (three base64url segments)';
  return undefined;
}
/** Most entries a `channels` claim may hold. */
export const MAX_CLAIM_CHANNELS = 1000;
/** How long a refused token is remembered, so a flood of one bad token is cheap too. */
const NEGATIVE_TTL_MS = 10_000;
const HMAC = new Set(['HS256', 'HS384', 'HS512']);
/** Refusals that time may cure (a token not yet valid): never remembered. */
const TRANSIENT = new WeakSet<HeraldError>();

export interface TokenVerifierOptions {
  readonly ring: SecretRing;
  readonly algorithms: readonly string[];
  readonly publicKeys?: PublicKeys;
  readonly issuers?: readonly string[];
  readonly audience?: readonly string[];
  readonly leewaySeconds?: number;
  readonly cacheSize?: number;
}

export class TokenVerifier {
  private readonly cache: ExpiringLru<string, Grant>;
  private readonly refused: ExpiringLru<string, HeraldError>;
  private readonly inflight = new Map<string, Promise<Grant>>();
  /** Signature checks actually run (for tests and the benchmark: the cache's effect). */
  verifications = 0;

  constructor(private readonly options: TokenVerifierOptions) {
    this.cache = new ExpiringLru(options.cacheSize ?? 10_000);
    this.refused = new ExpiringLru(Math.min(1000, options.cacheSize ?? 1000));
  }

  /** A `GrantResolvers.verifyToken`: the grant of a token, or a HeraldError (401; 503 when a JWKS is unreachable). */
  readonly verify = (token: string): Promise<Grant> => {
    // Length and shape first: a refused shape costs no lookup, no hash, and is not remembered.
    const shape = tokenShapeProblem(token);
    if (shape) return Promise.reject(invalid(shape));
    const key = credentialDigest(token);
    const now = Date.now();
    const hit = this.cache.get(key, now);
    if (hit) return Promise.resolve(hit);
    const bad = this.refused.get(key, now);
    if (bad) return Promise.reject(bad);
    let p = this.inflight.get(key);
    if (!p) {
      p = this.verifyUncached(token).then(
        (grant) => {
          this.inflight.delete(key);
          this.cache.set(key, grant, grant.expiresAt ?? now);
          return grant;
        },
        (err: unknown) => {
          this.inflight.delete(key);
          if (err instanceof HeraldError && err.code === 'unauthorized' && !TRANSIENT.has(err)) {
            this.refused.set(key, err, Date.now() + NEGATIVE_TTL_MS);
          }
          throw err;
        },
      );
      this.inflight.set(key, p);
    }
    return p;
  };

  private async verifyUncached(token: string): Promise<Grant> {
    const { decodeProtectedHeader, jwtVerify } = await loadJose();
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw invalid('invalid token');
    }
    if (alg === undefined || !this.options.algorithms.includes(alg)) throw invalid('invalid token: algorithm not accepted');

    const o = this.options;
    const verifyOptions = {
      algorithms: [alg],
      issuer: o.issuers && o.issuers.length > 0 ? [...o.issuers] : undefined,
      audience: o.audience && o.audience.length > 0 ? [...o.audience] : undefined,
      clockTolerance: o.leewaySeconds ?? 5,
      requiredClaims: ['exp'],
    };
    const now = Date.now();
    let lastError: unknown = new HeraldError('unauthorized', 'invalid token: no key for it');
    for (const candidate of this.candidates(token, alg, now)) {
      this.verifications++;
      try {
        const { payload } = await jwtVerify(token, candidate.key as KeyObject, verifyOptions);
        issuedInThePast(payload, verifyOptions.clockTolerance, Date.now());
        return grantFromClaims(payload, candidate.until);
      } catch (err) {
        if (isWrongKey(err)) {
          lastError = err;
          continue;
        }
        throw toAuthError(err);
      }
    }
    throw toAuthError(lastError);
  }

  /** The keys a token of `alg` may be checked against: secrets for HS*, public keys and JWKS for the rest. */
  private *candidates(token: string, alg: string, now: number): Iterable<{ key: KeyObject | Uint8Array | JWTVerifyGetKey; until?: number }> {
    if (HMAC.has(alg)) {
      for (const s of this.options.ring.accepted(now)) yield { key: new TextEncoder().encode(s.secret), until: s.until };
      return;
    }
    const pk = this.options.publicKeys;
    if (!pk) return;
    for (const key of pk.keys) if (fits(key, alg)) yield { key };
    if (pk.sets.length === 0) return;
    let iss: string | undefined;
    try {
      iss = loadedJose().decodeJwt(token).iss;
    } catch {
      return;
    }
    // Key sets bound to an issuer serve only that issuer's tokens; the signature check proves the rest.
    for (const set of pk.sets) if (set.issuer === undefined || set.issuer === iss) yield { key: set.getKey };
  }
}

/**
 * jose checks that `iat` is a number but not that it is in the past (only with `maxTokenAge`). A token issued
 * later than now plus the leeway is refused, as `nbf` is: 401, not remembered (time may cure a skewed clock).
 */
function issuedInThePast(payload: JWTPayload, leewaySeconds: number, now: number): void {
  if (typeof payload.iat === 'number' && payload.iat * 1000 > now + leewaySeconds * 1000) {
    const e = invalid('token issued in the future (iat)');
    TRANSIENT.add(e);
    throw e;
  }
}

/** Does a public key's type go with an algorithm? (jose would refuse the mismatch too; this skips the attempt.) */
function fits(key: KeyObject, alg: string): boolean {
  const t = key.asymmetricKeyType;
  if (alg.startsWith('RS') || alg.startsWith('PS')) return t === 'rsa' || t === 'rsa-pss';
  if (alg.startsWith('ES')) return t === 'ec';
  return t === 'ed25519' || t === 'ed448';
}

function isWrongKey(err: unknown): boolean {
  const { errors } = loadedJose();
  return (
    err instanceof errors.JWSSignatureVerificationFailed ||
    err instanceof errors.JWKSNoMatchingKey ||
    (err instanceof TypeError && /key/i.test(err.message))
  );
}

function invalid(message: string): HeraldError {
  return new HeraldError('unauthorized', message);
}

/** jose's errors → the documented answers; jose's own messages stay in the server. */
function toAuthError(err: unknown): HeraldError {
  if (err instanceof HeraldError) return err;
  const { errors } = loadedJose();
  if (err instanceof errors.JWTExpired) return new HeraldError('token_expired', 'token expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf' || err.claim === 'iat') {
      const e = invalid(err.claim === 'nbf' ? 'token not yet valid (nbf)' : 'token issued in the future (iat)');
      TRANSIENT.add(e);
      return e;
    }
    if (err.claim === 'exp') return invalid('token has no exp');
    if (err.claim === 'aud') return invalid('token audience not accepted');
    if (err.claim === 'iss') return invalid('token issuer not accepted');
    return invalid(`invalid token claim: ${err.claim}`);
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return invalid('invalid token: bad signature');
  if (err instanceof errors.JWKSTimeout || (err instanceof Error && err.name === 'TypeError' && /fetch/i.test(err.message))) {
    return new HeraldError('unavailable', 'token keys unreachable, try again');
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return invalid('invalid token: algorithm not accepted');
  return invalid('invalid token');
}

/**
 * The grant of a verified payload. `channels` lists exact names and prefix patterns (`user.42.*`); `publish` is
 * `true` (every listed channel) or a list of entries of `channels` a WebSocket client may publish to.
 */
export function grantFromClaims(payload: JWTPayload, secretUntil?: number): Grant {
  const raw = payload['channels'];
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > MAX_CLAIM_CHANNELS) {
    throw invalid('invalid token: "channels" must list 1 to 1000 channels');
  }
  const pub = payload['publish'];
  const publishAll = pub === true;
  const publishSome = new Set(Array.isArray(pub) ? pub.filter((p): p is string => typeof p === 'string') : []);
  const channels: ChannelGrant[] = [];
  for (const entry of raw) {
    if (typeof entry !== 'string') throw invalid('invalid token: "channels" entries must be strings');
    const g = parseChannelGrant(entry, publishAll || publishSome.has(entry));
    if (g.prefix ? prefixProblem(g.pattern) : channelProblem(g.pattern)) {
      throw invalid('invalid token: bad channel in "channels"');
    }
    channels.push(g);
  }
  const exp = typeof payload.exp === 'number' ? payload.exp * 1000 : undefined;
  // A token signed with a rotated-out secret lasts no longer than that secret.
  const expiresAt = secretUntil !== undefined ? Math.min(exp ?? secretUntil, secretUntil) : exp;
  // `info`: what presence shows of the user (docs/presence.md), kept as JSON text; its size is bounded by presence.
  const info = payload['info'] === undefined || payload['info'] === null ? undefined : JSON.stringify(payload['info']);
  return { subject: typeof payload.sub === 'string' ? payload.sub : undefined, channels, expiresAt, ...(info !== undefined ? { info } : {}) };
}

function prefixProblem(prefix: string): string | undefined {
  if (prefix === '') return undefined; // `*`: every channel (the issuer's choice).
  if (Buffer.byteLength(prefix) >= MAX_CHANNEL_BYTES) return 'too long';
  return channelProblem(prefix);
}

export interface SignTokenOptions {
  /** The secret (HERALD_SECRET) for HS*; or a private key for other algorithms. */
  readonly secret: string | KeyObject;
  /** Channels granted: exact names or prefix patterns ending in `*`. */
  readonly channels: readonly string[];
  /** The `sub` claim: the user the token is for. */
  readonly subject?: string;
  /** The `info` claim: any JSON value presence members carry (docs/presence.md). */
  readonly info?: unknown;
  /** Seconds until `exp`. @default 3600 */
  readonly ttlSeconds?: number;
  /** `true` or a list of entries of `channels` the holder may publish to over WebSocket. */
  readonly publish?: boolean | readonly string[];
  readonly audience?: string;
  readonly issuer?: string;
  /** @default "HS256" */
  readonly algorithm?: string;
}

/** Sign a subscription token. The result is accepted by any node configured with the same secret (or public key). */
export async function signToken(options: SignTokenOptions): Promise<string> {
  if (options.channels.length === 0) throw new HeraldError('bad_request', 'a token needs at least one channel');
  for (const c of options.channels) {
    const g = parseChannelGrant(c);
    if (g.prefix ? prefixProblem(g.pattern) : channelProblem(g.pattern)) {
      throw new HeraldError('invalid_channel', `invalid channel: ${JSON.stringify(c)}`);
    }
  }
  const ttl = options.ttlSeconds ?? 3600;
  if (!Number.isFinite(ttl) || ttl <= 0) throw new HeraldError('bad_request', 'ttl must be a positive number of seconds');
  const claims: JWTPayload = { channels: [...options.channels] };
  if (options.info !== undefined) claims['info'] = options.info;
  if (options.publish !== undefined && options.publish !== false) {
    claims['publish'] = options.publish === true ? true : [...options.publish];
  }
  const alg = options.algorithm ?? 'HS256';
  const { SignJWT } = await loadJose();
  let jwt = new SignJWT(claims).setProtectedHeader({ alg, typ: 'JWT' }).setIssuedAt().setExpirationTime(`${Math.round(ttl)}s`);
  if (options.subject !== undefined) jwt = jwt.setSubject(options.subject);
  if (options.audience !== undefined) jwt = jwt.setAudience(options.audience);
  if (options.issuer !== undefined) jwt = jwt.setIssuer(options.issuer);
  const key = typeof options.secret === 'string' ? new TextEncoder().encode(options.secret) : options.secret;
  if (typeof options.secret === 'string' && options.secret.length === 0) {
    throw new HeraldError('bad_request', 'a secret is needed to sign a token');
  }
  return jwt.sign(key);
}
