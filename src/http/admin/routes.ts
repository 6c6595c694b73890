/**
 * GET /admin: the live dashboard (issue 9 §1). Off unless an admin secret is set; on in --dev, where no secret is
 * needed (--dev binds loopback and checks Host). The routes are returned as a list, so the public listener and an
 * internal one can both mount them.
 *
 *   GET  /admin                 the page (or the login form)          POST /admin/login    secret → cookie
 *   GET  /admin/admin.js|.css   the page's script and style           POST /admin/logout
 *   GET  /admin/events          SSE: every node's stats, once a second (AdminEvents)
 *   GET  /admin/api/session     this node's id and the CSRF token
 *   GET  /admin/api/channel     ?name=C: subscribers on every node, history, presence
 *   POST /admin/api/publish     {"channel","data"}: a test message
 *   POST /admin/api/disconnect  {"client"}: ends that client's stream, on whichever node holds it
 *
 * Every answer carries a strict CSP, nosniff and no-store; the page's figures are set with textContent only.
 */
import type { Presence } from '../../presence/presence.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HeraldNode } from '../../core/node.js';
import type { ClusterStats } from '../../core/node-stats.js';
import { HeraldError } from '../../errors.js';
import { channelProblem } from '../../protocol/channel.js';
import type { Logger } from '../../util/log.js';
import { readJsonBody } from '../body.js';
import { sendError } from '../respond.js';
import type { RouteHandler } from '../router.js';
import { ADMIN_COOKIE, ADMIN_SESSION_SECONDS, AdminAuth } from './auth.js';
import { AdminEvents } from './events.js';
import { ChannelInspector, DISCONNECT_MESSAGE } from './inspect.js';
import { adminPage, loginPage, staticFile } from './pages.js';

export const ADMIN_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** Headers on every /admin answer. */
export const ADMIN_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': ADMIN_CSP,
  'X-Content-Type-Options': 'nosniff',
  'Cache-Control': 'no-store',
  // Not no-referrer: under it Chromium sends `Origin: null` with form posts, and the login's Origin check refuses them.
  'Referrer-Policy': 'same-origin',
  'X-Frame-Options': 'DENY',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

const MAX_ACTION_BODY = 16 * 1024;
const MAX_TEST_MESSAGE = 8 * 1024;

export interface AdminRoute {
  readonly path: string;
  readonly handler: RouteHandler;
  /** The method(s) a 405 names. */
  readonly allow: string;
}

export interface AdminOptions {
  readonly node: HeraldNode;
  readonly stats: ClusterStats;
  /** The admin secret; undefined in --dev without one (no login). */
  readonly secret: string | undefined;
  /** The cookie key the workers of one machine share when there is no secret (src/cluster/). */
  readonly machineKey?: Buffer;
  /** Publish a test message the way the publish API does (history policy, metrics). */
  readonly publish: (channel: string, data: string) => Promise<{ id?: string }>;
  /** The client's address (trusted proxies applied), for the login limit. */
  readonly addressOf: (req: IncomingMessage) => string;
  readonly log: Logger;
  /** Presence, shown in the channel view where the channel keeps it. */
  readonly presence?: Presence;
}

export class AdminDashboard {
  private readonly auth: AdminAuth;
  private readonly events: AdminEvents;
  private readonly inspector: ChannelInspector;

  constructor(private readonly options: AdminOptions) {
    this.auth = new AdminAuth(options.secret, options.machineKey);
    this.events = new AdminEvents(options.stats, options.node.nodeId, ADMIN_HEADERS);
    this.inspector = new ChannelInspector(options.node, options.stats, options.presence);
    // A disconnect sent by another node's dashboard for a client this node holds.
    options.node.control.on(DISCONNECT_MESSAGE, (m) => {
      const client = m.body['client'];
      if (typeof client !== 'string') return;
      const session = options.node.findSession(client);
      if (!session) return;
      options.log.info('client disconnected from the admin dashboard', { client, by: m.from });
      session.disconnect('disconnected');
    });
  }

  /** The routes to mount on a listener (the public one, or the internal port). */
  routes(): AdminRoute[] {
    const guarded = (handler: RouteHandler): RouteHandler => async (req, res, q) => {
      try {
        await handler(req, res, q);
      } catch (err) {
        // Answered here, with the admin headers; the router would answer without them.
        if (res.headersSent) throw err;
        sendError(req, res, err, ADMIN_HEADERS);
      }
    };
    return [
      { path: '/admin', handler: guarded((req, res) => this.page(req, res)), allow: 'GET' },
      { path: '/admin/admin.js', handler: guarded((req, res) => this.asset(req, res, 'admin.js')), allow: 'GET' },
      { path: '/admin/admin.css', handler: guarded((req, res) => this.asset(req, res, 'admin.css')), allow: 'GET' },
      { path: '/admin/login', handler: guarded((req, res) => this.login(req, res)), allow: 'POST' },
      { path: '/admin/logout', handler: guarded((req, res) => this.logout(req, res)), allow: 'POST' },
      { path: '/admin/events', handler: guarded((req, res) => this.stream(req, res)), allow: 'GET' },
      { path: '/admin/api/session', handler: guarded((req, res) => this.session(req, res)), allow: 'GET' },
      { path: '/admin/api/channel', handler: guarded((req, res, q) => this.channel(req, res, q)), allow: 'GET' },
      { path: '/admin/api/publish', handler: guarded((req, res) => this.publishTest(req, res)), allow: 'POST' },
      { path: '/admin/api/disconnect', handler: guarded((req, res) => this.disconnect(req, res)), allow: 'POST' },
    ];
  }

  /** End every dashboard stream (the node drains). */
  close(): void {
    this.events.close();
  }

  private page(req: IncomingMessage, res: ServerResponse): void {
    requireMethod(req, 'GET');
    if (this.auth.loginOf(req)) return send(res, 200, 'text/html; charset=utf-8', adminPage());
    if (!this.auth.needsLogin) {
      // --dev without a secret: no form, but the same cookie, so the rest of the dashboard works one way.
      return send(res, 200, 'text/html; charset=utf-8', adminPage(), { 'Set-Cookie': cookie(this.auth.issue()) });
    }
    send(res, 200, 'text/html; charset=utf-8', loginPage(undefined));
  }

  private asset(req: IncomingMessage, res: ServerResponse, name: 'admin.js' | 'admin.css'): void {
    requireMethod(req, 'GET');
    const type = name.endsWith('.js') ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8';
    send(res, 200, type, staticFile(name));
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    requireMethod(req, 'POST');
    this.auth.requireSameOrigin(req);
    const form = await readFormBody(req, MAX_ACTION_BODY);
    try {
      const value = this.auth.login(form.get('secret') ?? '', this.options.addressOf(req));
      res.writeHead(303, { ...ADMIN_HEADERS, Location: '/admin', 'Set-Cookie': cookie(value), 'Content-Length': '0' });
      res.end();
    } catch (err) {
      if (!(err instanceof HeraldError)) throw err;
      this.options.log.warn('admin login refused', { remote: this.options.addressOf(req), code: err.code });
      const headers: Record<string, string> = err.code === 'too_many_requests' ? { 'Retry-After': '60' } : {};
      send(res, err.status, 'text/html; charset=utf-8', loginPage(err.code === 'too_many_requests' ? 'Too many failed logins: wait a minute.' : 'Wrong secret.'), headers);
    }
  }

  private logout(req: IncomingMessage, res: ServerResponse): void {
    requireMethod(req, 'POST');
    const login = this.auth.requireLogin(req);
    this.auth.requireSameOrigin(req, login);
    res.writeHead(204, { ...ADMIN_HEADERS, 'Set-Cookie': `${ADMIN_COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0` });
    res.end();
  }

  private stream(req: IncomingMessage, res: ServerResponse): void {
    requireMethod(req, 'GET');
    const login = this.auth.requireLogin(req);
    this.events.open(req, res, login.expiresAt);
  }

  private session(req: IncomingMessage, res: ServerResponse): void {
    requireMethod(req, 'GET');
    const login = this.auth.requireLogin(req);
    sendJsonAdmin(res, 200, { node: this.options.node.nodeId, csrf: this.auth.csrfOf(login), expiresAt: login.expiresAt });
  }

  private async channel(req: IncomingMessage, res: ServerResponse, q: URLSearchParams): Promise<void> {
    requireMethod(req, 'GET');
    this.auth.requireLogin(req);
    const name = checkedChannel(q.get('name'));
    sendJsonAdmin(res, 200, await this.inspector.inspect(name));
  }

  private async publishTest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    requireMethod(req, 'POST');
    const login = this.auth.requireLogin(req);
    this.auth.requireSameOrigin(req, login);
    const body = await readJsonBody(req, MAX_ACTION_BODY, 8);
    const fields = asRecord(body);
    const channel = checkedChannel(fields['channel']);
    const data = fields['data'];
    if (typeof data !== 'string' || Buffer.byteLength(data) > MAX_TEST_MESSAGE) {
      throw new HeraldError('bad_request', `data must be a string of at most ${MAX_TEST_MESSAGE} bytes`);
    }
    const result = await this.options.publish(channel, data);
    this.options.log.info('test message published from the admin dashboard', { channel });
    sendJsonAdmin(res, 200, { id: result.id ?? null });
  }

  private async disconnect(req: IncomingMessage, res: ServerResponse): Promise<void> {
    requireMethod(req, 'POST');
    const login = this.auth.requireLogin(req);
    this.auth.requireSameOrigin(req, login);
    const client = asRecord(await readJsonBody(req, MAX_ACTION_BODY, 8))['client'];
    if (typeof client !== 'string' || !/^[0-9a-z]{1,32}-[0-9a-z]{1,11}$/.test(client)) {
      throw new HeraldError('bad_request', 'client must be a client id such as k3f9q2a-1z');
    }
    const node = this.options.node;
    const local = node.findSession(client);
    if (local) {
      this.options.log.info('client disconnected from the admin dashboard', { client });
      local.disconnect('disconnected');
      return sendJsonAdmin(res, 200, { client, node: node.nodeId, result: 'disconnected' });
    }
    const holder = client.slice(0, client.lastIndexOf('-'));
    if (holder === node.nodeId || !this.options.stats.find(holder)) {
      throw new HeraldError('not_found', 'no such client (gone already, or its node is not sharing stats)');
    }
    await node.control.send(DISCONNECT_MESSAGE, { client }, holder);
    // Sent to the node that holds it: at most once, like every broker message; the page sees the count drop.
    sendJsonAdmin(res, 202, { client, node: holder, result: 'sent' });
  }
}

function requireMethod(req: IncomingMessage, method: 'GET' | 'POST'): void {
  if (req.method === method || (method === 'GET' && req.method === 'HEAD')) return;
  throw new HeraldError('method_not_allowed', `use ${method}`);
}

function cookie(value: string): string {
  return `${ADMIN_COOKIE}=${value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=${ADMIN_SESSION_SECONDS}`;
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...ADMIN_HEADERS, 'Content-Type': type, 'Content-Length': String(Buffer.byteLength(body)), ...headers });
  res.end(body);
}

function sendJsonAdmin(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(body));
}

function asRecord(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HeraldError('bad_request', 'body must be a JSON object');
  return body as Record<string, unknown>;
}

function checkedChannel(name: unknown): string {
  if (typeof name !== 'string') throw new HeraldError('bad_request', 'a channel name is required');
  const problem = channelProblem(name);
  if (problem) throw new HeraldError('invalid_channel', problem);
  return name;
}

/** An `application/x-www-form-urlencoded` body of at most `maxBytes`. */
function readFormBody(req: IncomingMessage, maxBytes: number): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (b: Buffer) => {
      size += b.length;
      // Rejected once; the rest is read and dropped, and the answer closes the connection (sendError).
      if (size > maxBytes) reject(new HeraldError('payload_too_large', `body over ${maxBytes} bytes`));
      else chunks.push(b);
    });
    req.on('error', (err) => reject(new HeraldError('bad_request', 'request body aborted', { cause: err })));
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
  });
}
