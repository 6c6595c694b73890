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
