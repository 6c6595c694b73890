/**
 * Reading a JWT's `exp` without verifying it: the client only needs to know when to ask for a fresh token before it
 * connects with a stale one (the server, which verifies, would refuse it, and EventSource cannot say why).
 */
interface Base64Globals {
  atob?(data: string): string;
}

/** The token's claims, unverified, or undefined when it is not a JWT the client can read. */
function claimsOf(token: string): object | undefined {
  const payload = token.split('.')[1];
  const atob = (globalThis as unknown as Base64Globals).atob;
  if (payload === undefined || !atob) return undefined;
  try {
    const b64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const claims: unknown = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)));
    return typeof claims === 'object' && claims !== null ? claims : undefined;
  } catch {
    return undefined; // not a JWT we can read: let the server judge it
  }
}

/** Milliseconds since the epoch at which the token expires, or undefined when it has no readable `exp`. */
export function tokenExpiry(token: string): number | undefined {
  const claims = claimsOf(token);
  return claims && 'exp' in claims && typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
}

/**
 * The exact channels a token grants (its `channels` claim without the `prefix.*` patterns): what the server subscribes
 * when a token comes without `channel=`. The client names them explicitly so it knows each channel's place in a
 * resume cursor and can subscribe them one by one on a WebSocket.
 */
export function tokenChannels(token: string): string[] {
  const claims = claimsOf(token);
  if (!claims || !('channels' in claims) || !Array.isArray(claims.channels)) return [];
  return claims.channels.filter((c): c is string => typeof c === 'string' && !c.endsWith('*'));
}

/** Ask for a new token this long before `exp`, so a connection never starts with one about to lapse. */
export const TOKEN_REFRESH_MARGIN_MS = 5000;
