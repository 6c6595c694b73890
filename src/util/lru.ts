import { createHash } from 'node:crypto';

/**
 * The key under which a credential (token, sealed key) is cached: its SHA-256, as a 44-character string.
 * Never the credential's own text: V8 hashes strings over 16,383 characters by their length alone, so long keys of
 * one length share a Map bucket and each lookup compares them all. A fixed-size digest hashes well, costs a few
 * microseconds for the longest credential accepted, and a collision (another credential's cache entry) would need
 * a SHA-256 collision.
 */
export function credentialDigest(credential: string): string {
  return createHash('sha256').update(credential, 'utf8').digest('base64');
}

/**
 * A bounded least-recently-used map whose entries also expire. Map keeps insertion order, so re-inserting on a hit
 * makes the first key the least recently used one: eviction is O(1) with no linked list of our own.
 */
export class ExpiringLru<K, V> {
  private readonly map = new Map<K, { value: V; expiresAt: number }>();

  constructor(private readonly capacity: number) {}

  get(key: K, now = Date.now()): V | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    this.map.delete(key);
    if (e.expiresAt <= now) return undefined;
    this.map.set(key, e);
    return e.value;
  }

  /** Remember `value` until `expiresAt` (ms since the epoch). A capacity of 0 remembers nothing. */
  set(key: K, value: V, expiresAt: number): void {
    if (this.capacity <= 0) return;
    this.map.delete(key);
    this.map.set(key, { value, expiresAt });
    while (this.map.size > this.capacity) {
      const oldest = this.map.keys().next();
      if (oldest.done) break;
      this.map.delete(oldest.value);
    }
  }

  delete(key: K): void {
    this.map.delete(key);
  }

  get size(): number {
    return this.map.size;
  }
}
