/**
 * Which web pages may use this node: the origin rules of the WebSocket upgrade (cross-site WebSocket hijacking) and
 * of CORS on the HTTP transports, both from `allowedOrigins`. Requests without `Origin` come from non-browser clients,
 * which can send any header anyway, so these rules protect browsers' users only.
 */

/** May a browser page from `origin` open a WebSocket here? */
export function originAllowed(origin: string | undefined, allowed: readonly string[], dev: boolean): boolean {
  // --dev with no list configured: pages served from anywhere on the developer's machine may connect.
  if (origin === undefined || (dev && allowed.length === 0)) return true;
  return allowed.includes('*') || allowed.includes(origin);
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

/**
 * The origins CORS lets read a stream (`/sub`, `/sse`, `/poll`, the health checks): `allowedOrigins`, except in
 * --dev with no list configured, where any page may, as its WebSocket already can (`*`, so without cookies: in --dev
 * every channel is open to anonymous subscribers anyway). Keyless publishing in --dev keeps its own, stricter rule
 * (http/dev-guard.ts), so this never opens publishing to other sites.
 */
export function corsOrigins(config: { readonly allowedOrigins: readonly string[]; readonly dev: boolean }): readonly string[] {
  return config.dev && config.allowedOrigins.length === 0 ? ['*'] : config.allowedOrigins;
}
