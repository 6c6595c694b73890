/** What every subscribe transport reads off an HTTP request: credentials, and the CORS answer for its Origin. */
import type { IncomingMessage } from 'node:http';
import { bearerToken } from '../auth/api-key.js';
import type { SubscribeCredentials } from '../auth/grant.js';

export function subscribeCredentials(req: IncomingMessage, query: URLSearchParams): SubscribeCredentials {
  return {
    channels: query.getAll('channel'),
    keys: query.getAll('key'),
    token: query.get('token') ?? bearerToken(req),
    remoteAddress: req.socket.remoteAddress ?? 'unknown',
  };
}

/**
 * CORS headers for a cross-origin stream. An origin is echoed only when it is allowed; `*` is sent only when the
 * configuration says `*`, and never together with credentials.
 */
export function corsHeaders(origin: string | undefined, allowed: readonly string[]): Record<string, string> {
  if (!origin) return {};
  if (allowed.includes(origin)) {
    return { 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true', Vary: 'Origin' };
  }
  if (allowed.includes('*')) return { 'Access-Control-Allow-Origin': '*', Vary: 'Origin' };
  return {};
}
