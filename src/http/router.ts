/**
 * The route table: exact paths to handlers. Anything else is 404. Errors thrown by a handler become the documented
 * JSON error answer, and are counted by code.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HeraldError } from '../errors.js';
import type { NodeMetrics } from '../core/metrics.js';
import type { Logger } from '../util/log.js';
import { sendError } from './respond.js';
import { queryParams } from './request.js';
import type { RouteSpec } from './routes.js';
import { headerBytesOf, headLimitError, originForm, type HeadLimits } from './wire.js';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, query: URLSearchParams) => void | Promise<void>;

export class Router {
  private readonly routes = new Map<string, { handler: RouteHandler; allow: string }>();
  /** Routes for every path under a prefix (the Pusher API's `/apps/`), tried after the exact ones. */
  private readonly prefixes: { prefix: string; handler: RouteHandler; allow: string }[] = [];

  constructor(
    private readonly metrics: NodeMetrics,
    private readonly log: Logger,
    private readonly limits: HeadLimits,
    /** Runs before every route (the --dev Host check); throws a HeraldError to refuse. */
    private readonly before: (req: IncomingMessage) => void = () => undefined,
  ) {}

  /** `allow` is what a 405 answer's `Allow` header says the route takes. */
  add(path: string, handler: RouteHandler, allow = 'GET'): this {
    this.routes.set(path, { handler, allow });
    return this;
  }

  /** Mount the handler of a route of the table (http/routes.ts): its path and methods come from there. */
  mount(route: RouteSpec, handler: RouteHandler): this {
    return this.add(route.path, handler, route.allow);
  }

  /** Route every path that starts with `prefix` (ending in "/") to `handler`; it answers its own 404s. */
  addPrefix(prefix: string, handler: RouteHandler, allow = 'GET'): this {
    this.prefixes.push({ prefix, handler, allow });
    return this;
  }

  private find(path: string): { handler: RouteHandler; allow: string } | undefined {
    return this.routes.get(path) ?? this.prefixes.find((p) => path.startsWith(p.prefix));
  }

  /** Log every answer (the access log): `watch` is called once per request, before it is routed. */
  watchRequests(watch: (req: IncomingMessage, res: ServerResponse) => void): void {
    this.watch = watch;
  }

  private watch: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;

  /** The `request` listener of the HTTP server. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    toOriginForm(req);
    this.watch?.(req, res);
    this.dispatch(req, res).catch((err: unknown) => this.fail(req, res, err));
  };

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = req.url ?? '/';
    // The bounds, checked as the hand-written readers check them (http/wire.ts).
    const over = headLimitError(raw.length, headerBytesOf(req.rawHeaders), this.limits);
    if (over) throw over;
    // node:http's own Host check (requireHostHeader) answers with an empty body; this one with the documented JSON.
    if (req.httpVersionMajor === 1 && req.httpVersionMinor === 1 && req.headers.host === undefined) {
      throw new HeraldError('bad_request', 'HTTP/1.1 request without Host');
    }
    if (raw === '*') {
      // Asterisk-form (RFC 9112 §3.2.4) is for OPTIONS, about the server as a whole: say what it takes.
      if (req.method !== 'OPTIONS') throw new HeraldError('bad_request', 'a * target is for OPTIONS only');
      res.writeHead(204, { Allow: 'GET, POST, OPTIONS' }).end();
      return;
    }
    this.before(req);
    const q = raw.indexOf('?');
    const path = q < 0 ? raw : raw.slice(0, q);
    const route = this.find(path);
    if (!route) throw new HeraldError('not_found', `no route ${path.slice(0, 100)}`);
    await route.handler(req, res, queryParams(q < 0 ? '' : raw.slice(q + 1)));
  }

  private fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const route = this.find((req.url ?? '/').split('?')[0] ?? '/');
    const e = sendError(req, res, err, route ? { Allow: route.allow } : {});
    this.metrics.rejected.inc({ code: e.code });
    // Only the path is logged: a query string may carry a token or a sealed key.
    const path = (req.url ?? '/').split('?')[0]?.slice(0, 200);
    if (e.code === 'internal') this.log.error('request failed', { path, err: String(e.cause) });
    else this.log.debug('request refused', { path, code: e.code, reason: e.message });
  }
}

/**
 * An absolute-form target (`GET http://host/sub?x HTTP/1.1`, which RFC 9112 §3.2.2 says a server must accept) is
 * routed by its path and query; its authority replaces `Host`, as the RFC asks (the --dev Host check sees it).
 */
export function toOriginForm(req: IncomingMessage): void {
  const url = req.url ?? '/';
  if (url.startsWith('/') || url === '*') return;
  const o = originForm(url);
  if (o.authority === undefined) return;
  req.url = o.target;
  req.headers.host = o.authority;
}
