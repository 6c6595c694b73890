/**
 * What every subscribe transport reads off a request. Stream requests reach Herald two ways (see http/front.ts):
 * parsed by Herald's lean front reader on a fresh connection, or by node:http on a kept-alive one. Both become a
 * `StreamRequest`, so transports and auth never depend on which.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { SubscribeCredentials } from '../auth/grant.js';
import type { ClientAddress } from './client-address.js';

export interface StreamRequest {
  readonly method: string;
  /** The path without the query string. */
  readonly path: string;
  readonly query: URLSearchParams;
  /** A request header by lower-case name; repeated headers joined with ", ". */
  header(name: string): string | undefined;
  readonly remoteAddress: string;
  readonly httpVersion: '1.0' | '1.1';
  readonly socket: Socket;
}

/**
 * The query of a request target. Both readers hold the target as latin1 (one char per byte), but raw non-ASCII bytes in
 * a URL are UTF-8 (curl sends `channel=café` unencoded): decode them as UTF-8, as percent-escapes already are.
 */
export function queryParams(rawQuery: string): URLSearchParams {
  // eslint-disable-next-line no-control-regex
  const ascii = /^[\u0000-\u007f]*$/.test(rawQuery);
  return new URLSearchParams(ascii ? rawQuery : Buffer.from(rawQuery, 'latin1').toString('utf8'));
}

/** A request header by lower-case name; repeated headers joined with ", ". */
export function headerOf(req: IncomingMessage): (name: string) => string | undefined {
  return (name) => {
    const v = req.headers[name];
    return Array.isArray(v) ? v.join(', ') : v;
  };
}

/** `clients` finds the client behind trusted proxies (http/client-address.ts); without it the peer is the client. */
export function streamRequestFromNode(req: IncomingMessage, query: URLSearchParams, clients?: ClientAddress): StreamRequest {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const header = headerOf(req);
  return {
    method: req.method ?? 'GET',
    path: q < 0 ? url : url.slice(0, q),
    query,
    header,
    remoteAddress: clients ? clients.of(req.socket.remoteAddress, header) : (req.socket.remoteAddress ?? 'unknown'),
    // Chunked framing only for HTTP/1.1 and later: node:http also admits HTTP/0.9-style requests.
    httpVersion: req.httpVersionMajor > 1 || (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) ? '1.1' : '1.0',
    socket: req.socket,
  };
}

/** The `Authorization: Bearer X` credential, or undefined. */
export function bearerOf(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
  return m?.[1];
}

/**
 * The credentials of a subscribe request. The token comes from `token=`, else `Authorization: Bearer`, else the
 * cookie named `tokenCookie` (EventSource can send cookies but no headers).
 */
export function subscribeCredentials(req: StreamRequest, tokenCookie = ''): SubscribeCredentials {
  return {
    channels: req.query.getAll('channel'),
    keys: req.query.getAll('key'),
    token:
      req.query.get('token') ??
      bearerOf(req.header('authorization')) ??
      (tokenCookie ? cookieValue(req.header('cookie'), tokenCookie) : undefined),
    remoteAddress: req.remoteAddress,
  };
}

/** The value of cookie `name` in a `Cookie` header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    let v = part.slice(eq + 1).trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
    try {
      v = decodeURIComponent(v);
    } catch {
      /* not percent-encoded: take it as it is */
    }
    return v === '' ? undefined : v;
  }
  return undefined;
}
