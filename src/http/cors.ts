/**
 * CORS preflight for the subscribe endpoints. A browser page that reads a stream with `fetch()` and an
 * `Authorization` header (or `Last-Event-ID`) first asks `OPTIONS`; only allowed origins get the permission, with the
 * same rules as the stream itself (credentials never with `*`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { corsHeaders } from '../auth/origin.js';
import type { RouteHandler } from './router.js';

const PREFLIGHT_MAX_AGE_SECONDS = 600;

/** Wrap a GET route so that `OPTIONS` answers the preflight (204) and everything else goes to `handler`. */
export function withPreflight(handler: RouteHandler, allowedOrigins: readonly string[]): RouteHandler {
  return (req, res, query) => (req.method === 'OPTIONS' ? answerPreflight(req, res, allowedOrigins) : handler(req, res, query));
}

/**
 * Wrap a simple GET route (a health check) so that allowed origins may read its answer: the SDK's readiness probe
 * asks `/readyz` from the page's origin (client/src/probe.ts). No preflight is needed for a plain GET.
 */
export function withCors(handler: RouteHandler, allowedOrigins: readonly string[]): RouteHandler {
  return (req, res, query) => {
    for (const [name, value] of Object.entries(corsHeaders(req.headers.origin, allowedOrigins))) res.setHeader(name, value);
    return handler(req, res, query);
  };
}

export function answerPreflight(req: IncomingMessage, res: ServerResponse, allowedOrigins: readonly string[]): void {
  const cors = corsHeaders(req.headers.origin, allowedOrigins);
  const headers: Record<string, string> = { ...cors, 'Content-Length': '0', Allow: 'GET, OPTIONS' };
  if (cors['Access-Control-Allow-Origin']) {
    headers['Access-Control-Allow-Methods'] = 'GET';
    headers['Access-Control-Allow-Headers'] = 'Authorization, Last-Event-ID';
    headers['Access-Control-Max-Age'] = String(PREFLIGHT_MAX_AGE_SECONDS);
  }
  res.writeHead(204, headers);
  res.end();
}
