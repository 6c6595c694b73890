/**
 * Who may use /admin. A login form posts the admin secret; the answer is a signed cookie (HttpOnly, SameSite=Strict,
 * Path=/admin, with an expiry inside the signature): EventSource cannot send an Authorization header, and a cookie
 * the page's script cannot read is one an injected script cannot steal either.
 *
 * State-changing requests (login, logout, publish, disconnect) must come from the dashboard's own origin: their
 * `Origin` must name the `Host` they were sent to (browsers send it on every cross-origin and same-origin POST), and
 * all but the login carry a CSRF token in a header, an HMAC of the cookie's nonce that only a page of this origin
 * can fetch (GET /admin/api/session; no CORS, so another site cannot read it). SameSite=Strict alone would do in
 * current browsers; the Origin check and the token make it not depend on that.
 *
 * Failed logins are limited per client address and in total (a fixed window, no timer), so the secret cannot be
 * guessed at speed. The cookie's key is derived from the admin secret, so nodes sharing a secret accept each other's
 * cookies; without a secret (--dev) it is random per process.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HeraldError } from '../../errors.js';
import { cookieValue } from '../request.js';

export const ADMIN_COOKIE = 'herald_admin';
/** How long a login lasts. */
export const ADMIN_SESSION_SECONDS = 8 * 3600;
/** Failed logins allowed per client address per window, and from all addresses together. */
export const LOGIN_FAILURES_PER_ADDRESS = 5;
export const LOGIN_FAILURES_TOTAL = 100;
export const LOGIN_WINDOW_MS = 60_000;
/** Client addresses whose failures are remembered at most (the oldest are forgotten first). */
const MAX_TRACKED_ADDRESSES = 10_000;

export interface AdminLogin {
  /** The cookie's expiry, ms since the epoch. */
  readonly expiresAt: number;
  readonly nonce: string;
}

export class AdminAuth {
  private readonly key: Buffer;
  private readonly secretDigest: Buffer | undefined;
  private readonly failures = new Map<string, { count: number; since: number }>();
  private total = { count: 0, since: 0 };

  /**
   * `secret` undefined: no login (--dev without an admin secret): every visitor of GET /admin is given a cookie,
   * signed with `machineKey` (the workers of one `herald serve --workers N` share it, so a cookie one worker set is
   * good on the others) or a random key of this process.
   */
  constructor(secret: string | undefined, machineKey?: Buffer) {
    this.secretDigest = secret === undefined ? undefined : sha256(secret);
    this.key = secret === undefined ? (machineKey ?? randomBytes(32)) : createHmac('sha256', secret).update('herald admin cookie v1').digest();
  }

  get needsLogin(): boolean {
    return this.secretDigest !== undefined;
  }

  /**
   * Check a login attempt from `address`. Returns the cookie to set; throws `unauthorized` for a wrong secret and
   * `too_many_requests` while the address (or everyone) is over the failure bound: then even the right secret waits.
   */
  login(presented: string, address: string, now = Date.now()): string {
    this.refuseIfLimited(address, now);
    if (this.secretDigest && !timingSafeEqual(sha256(presented), this.secretDigest)) {
      this.countFailure(address, now);
      throw new HeraldError('unauthorized', 'wrong admin secret');
    }
    return this.issue(now);
  }

  /** A fresh signed cookie value. */
  issue(now = Date.now()): string {
    const payload = `v1.${(now + ADMIN_SESSION_SECONDS * 1000).toString(36)}.${randomBytes(16).toString('base64url')}`;
    return `${payload}.${this.mac(payload)}`;
  }

  /** The request's login, or undefined when it has no valid, unexpired cookie. */
  loginOf(req: IncomingMessage, now = Date.now()): AdminLogin | undefined {
    const value = cookieValue(req.headers.cookie, ADMIN_COOKIE);
    if (value === undefined || value.length > 200) return undefined;
    const parts = value.split('.');
    if (parts.length !== 4 || parts[0] !== 'v1') return undefined;
    const [, exp = '', nonce = '', mac = ''] = parts;
    const payload = `v1.${exp}.${nonce}`;
    if (!equalText(mac, this.mac(payload))) return undefined;
    const expiresAt = parseInt(exp, 36);
    if (!Number.isFinite(expiresAt) || expiresAt <= now) return undefined;
    return { expiresAt, nonce };
  }

  /** The CSRF token that goes with a login. */
  csrfOf(login: AdminLogin): string {
    return this.mac(`csrf.${login.nonce}`);
  }

  /** Throws unless the request carries a valid login; returns it. */
  requireLogin(req: IncomingMessage): AdminLogin {
    const login = this.loginOf(req);
    if (!login) throw new HeraldError('unauthorized', 'log in at /admin first');
    return login;
  }

  /** For a state-changing request: same origin, and (with a login) the login's CSRF token in `X-Herald-CSRF`. */
  requireSameOrigin(req: IncomingMessage, login?: AdminLogin): void {
    const origin = req.headers.origin;
    const host = req.headers.host;
    if (origin === undefined || host === undefined || (origin !== `http://${host}` && origin !== `https://${host}`)) {
      throw new HeraldError('origin_not_allowed', 'admin actions must come from the dashboard page itself');
    }
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin') {
      throw new HeraldError('origin_not_allowed', 'admin actions must come from the dashboard page itself');
    }
    if (!login) return;
    const token = req.headers['x-herald-csrf'];
    if (typeof token !== 'string' || !equalText(token, this.csrfOf(login))) {
      throw new HeraldError('forbidden', 'missing or wrong CSRF token');
    }
  }

  private refuseIfLimited(address: string, now: number): void {
    const mine = this.failures.get(address);
    const limited =
      (mine !== undefined && now - mine.since < LOGIN_WINDOW_MS && mine.count >= LOGIN_FAILURES_PER_ADDRESS) ||
      (now - this.total.since < LOGIN_WINDOW_MS && this.total.count >= LOGIN_FAILURES_TOTAL);
    if (limited) throw new HeraldError('too_many_requests', 'too many failed logins: wait a minute');
  }

  private countFailure(address: string, now: number): void {
    if (now - this.total.since >= LOGIN_WINDOW_MS) this.total = { count: 0, since: now };
    this.total.count++;
    const mine = this.failures.get(address);
    if (mine && now - mine.since < LOGIN_WINDOW_MS) {
      mine.count++;
      return;
    }
    this.failures.delete(address);
    if (this.failures.size >= MAX_TRACKED_ADDRESSES) {
      const oldest = this.failures.keys().next().value;
      if (oldest !== undefined) this.failures.delete(oldest);
    }
    this.failures.set(address, { count: 1, since: now });
  }

  private mac(payload: string): string {
    return createHmac('sha256', this.key).update(payload).digest('base64url');
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Constant-time comparison of two strings of any length. */
function equalText(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}
