/**
 * The public routes, declared once. Each says its path, the methods it takes (a 405 answer's `Allow`), and which
 * reader may serve it on a fresh connection:
 *   - `front`: the front reader (http/front.ts) serves a plain `GET` itself, as a held stream on the raw socket;
 *   - `fast-publish`: the publish fast path (http/fast-publish.ts) serves a plain `POST`, request after request;
 *   - `node`: node:http only.
 * Whatever a hand-written reader does not serve (another method, a request that is not the plain case, a stream
 * on a kept-alive connection) goes to node:http, whose router (http/router.ts) has a handler for every route here,
 * mounted from this table (server.ts), so a path is never spelled twice.
 * Routes of their own rooms (the admin pages, the Pusher API under `/apps/`) are node:http's and are added by them.
 */
export type Reader = 'front' | 'fast-publish' | 'node';

export interface RouteSpec {
  readonly path: string;
  /** The methods it takes, as an `Allow` header says them. */
  readonly allow: string;
  readonly reader: Reader;
}

export const ROUTES = {
  sub: { path: '/sub', allow: 'GET', reader: 'front' },
  sse: { path: '/sse', allow: 'GET', reader: 'front' },
  publish: { path: '/api/publish', allow: 'POST', reader: 'fast-publish' },
  poll: { path: '/poll', allow: 'GET', reader: 'node' },
  ws: { path: '/ws', allow: 'GET', reader: 'node' },
  healthz: { path: '/healthz', allow: 'GET', reader: 'node' },
  readyz: { path: '/readyz', allow: 'GET', reader: 'node' },
  metrics: { path: '/metrics', allow: 'GET', reader: 'node' },
} as const satisfies Record<string, RouteSpec>;

const BY_PATH = new Map<string, RouteSpec>(Object.values(ROUTES).map((r) => [r.path, r]));

/** The hand-written reader for a request line's method and path (`node` when none: node:http reads it). */
export function readerFor(method: string, path: string): Reader {
  const route = BY_PATH.get(path);
  if (route === undefined) return 'node';
  if (route.reader === 'front' && method === 'GET') return 'front';
  if (route.reader === 'fast-publish' && method === 'POST') return 'fast-publish';
  return 'node';
}

/** The path of a request target (what comes before `?`). */
export function pathOf(target: string): string {
  const q = target.indexOf('?');
  return q < 0 ? target : target.slice(0, q);
}
