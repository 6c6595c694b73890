/**
 * What `--dev`'s open doors need to stay closed to other web sites. In --dev a request from this machine may publish
 * without an API key, and anything may subscribe; a web page the developer visits runs on this machine too:
 *
 * - DNS rebinding: a page on `evil.example` makes its name resolve to 127.0.0.1 and then talks to Herald as a
 *   same-origin page of `evil.example`. Its requests carry `Host: evil.example`, so in --dev the Host must name this
 *   machine (`localhost`, `*.localhost`, a 127.x address, `[::1]`, any port) or the configured `host`; else 403
 *   `host_not_allowed`, on every path (streams and WebSocket upgrades included).
 * - Cross-site publishing (CSRF): any page may POST a `text/plain` body to http://localhost:8080/api/publish without
 *   a preflight. Browsers name the page's origin (`Origin`, `Sec-Fetch-Site`), so the keyless --dev publish is refused
 *   (403 `origin_not_allowed`) for a page whose origin is neither served from this machine nor in `allowedOrigins`.
 *   Clients that are not browsers (curl, `herald publish`, backends) send neither header and are not affected.
 */
import { isIP } from 'node:net';
import type { HeraldConfig } from '../config.js';
import { HeraldError } from '../errors.js';

/** In --dev, throw 403 `host_not_allowed` unless the Host header names this machine or the configured host. */
export function checkDevHost(config: Pick<HeraldConfig, 'dev' | 'host'>, host: string | undefined): void {
  if (!config.dev || host === undefined || host === '') return; // no Host (HTTP/1.0): no browser sent it
  const name = hostName(host);
  if (name !== undefined && (isLocalName(name) || name === configuredName(config.host))) return;
  throw new HeraldError('host_not_allowed', `Host ${JSON.stringify(host.slice(0, 100))} refused in --dev (DNS rebinding guard): use localhost, or start with --host NAME`);
}

/**
 * Why a keyless --dev publish from a browser page is refused, or undefined when it is not a cross-site page's:
 * an `Origin` that is not this machine's nor allowed, or `Sec-Fetch-Site: cross-site` without an origin to judge.
 */
export function crossSiteProblem(header: (name: string) => string | undefined, allowedOrigins: readonly string[]): string | undefined {
  const origin = header('origin');
  if (origin !== undefined) {
    if (allowedOrigins.includes(origin) || allowedOrigins.includes('*') || isLocalOrigin(origin)) return undefined;
    return `publishing without an API key from origin ${JSON.stringify(origin.slice(0, 100))} is refused: add it to allowedOrigins`;
  }
  if ((header('sec-fetch-site') ?? '').toLowerCase() === 'cross-site') return 'publishing without an API key from another site is refused';
  return undefined;
}

/** A page served from this machine: `http(s)://localhost`, `*.localhost`, 127.x or `[::1]`, any port. */
function isLocalOrigin(origin: string): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // "null" (sandboxed frames, file:) and garbage
  }
  return (url.protocol === 'http:' || url.protocol === 'https:') && isLocalName(url.hostname.replace(/^\[|\]$/g, ''));
}

/** The host part of a Host header value, lower-case and without brackets or port; undefined when malformed. */
function hostName(host: string): string | undefined {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    const rest = h.slice(end + 1);
    if (end < 0 || (rest !== '' && !/^:\d{1,5}$/.test(rest))) return undefined;
    return h.slice(1, end);
  }
  const m = /^([^:\s]+)(?::\d{1,5})?$/.exec(h);
  return m?.[1];
}

function isLocalName(name: string): boolean {
  if (name === 'localhost' || name.endsWith('.localhost') || name === '::1') return true;
  return isIP(name) === 4 && name.startsWith('127.');
}

/** The configured bind address as a Host would name it; wildcards name no host. */
function configuredName(host: string): string | undefined {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === '0.0.0.0' || h === '::' || h === '' ? undefined : h;
}
