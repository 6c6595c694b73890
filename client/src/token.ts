/**
 * Reading a JWT's `exp` without verifying it: the client only needs to know when to ask for a fresh token before it
 * connects with a stale one (the server, which verifies, would refuse it, and EventSource cannot say why).
 */
interface Base64Globals {
  atob?(data: string): string;
}

/** Milliseconds since the epoch at which the token expires, or undefined when it has no readable `exp`. */
export function tokenExpiry(token: string): number | undefined {
  const payload = token.split('.')[1];
  const atob = (globalThis as unknown as Base64Globals).atob;
  if (payload === undefined || !atob) return undefined;
  try {
    const b64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const claims: unknown = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)));
    if (typeof claims === 'object' && claims !== null && 'exp' in claims && typeof claims.exp === 'number') {
      return claims.exp * 1000;
    }
  } catch {
    /* not a JWT we can read: let the server judge it */
  }
  return undefined;
}

/** Ask for a new token this long before `exp`, so a connection never starts with one about to lapse. */
export const TOKEN_REFRESH_MARGIN_MS = 5000;
