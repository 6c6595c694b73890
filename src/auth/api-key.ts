/**
 * Publish API keys, compared in constant time. Both sides are hashed first so the comparison takes the same time
 * whatever the length of the key presented.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { bearerOf } from '../transport/request.js';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export class ApiKeys {
  private readonly digests: Buffer[];
  constructor(keys: readonly string[]) {
    this.digests = keys.map(digest);
  }
  get configured(): boolean {
    return this.digests.length > 0;
  }
  /** True when `presented` equals one of the keys. Every key is compared, so timing does not tell which matched. */
  matches(presented: string): boolean {
    const d = digest(presented);
    let ok = false;
    for (const k of this.digests) ok = timingSafeEqual(d, k) || ok;
    return ok;
  }
}

/** The credential of `Authorization: Bearer X`, or undefined. */
export function bearerToken(req: IncomingMessage): string | undefined {
  return bearerOf(req.headers.authorization);
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}
