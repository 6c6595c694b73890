/**
 * The memory broker's idempotency keys: (channel, key) → the id of the message published under it, for a window.
 *
 * Bounded and timer-free: entries sit in one Map in insertion order. Every node uses one window, so insertion order is
 * also expiry order: each insert first drops expired entries from the front, and when the map is full it drops the
 * oldest live one (counted in `evicted`: a retry of that message would be published again). A lookup checks the time.
 */

/** Most keys remembered at once (~200 bytes each with a 36-character key: ~20 MB at the bound). */
export const MAX_IDEMPOTENCY_KEYS = 100_000;

interface Entry {
  /** The id of the message published under the key; undefined for a channel without history. */
  readonly id: string | undefined;
  readonly expiresAt: number;
}

export class IdempotencyMemo {
  private readonly entries = new Map<string, Entry>();
  /** Live entries dropped because the map was full. */
  evicted = 0;

  constructor(private readonly max = MAX_IDEMPOTENCY_KEYS) {}

  /** The entry remembered for (channel, key), or undefined when none is live. */
  lookup(channel: string, key: string, now: number): Entry | undefined {
    const name = channel + '\u0000' + key;
    const e = this.entries.get(name);
    if (e === undefined) return undefined;
    if (e.expiresAt > now) return e;
    this.entries.delete(name);
    return undefined;
  }

  remember(channel: string, key: string, id: string | undefined, windowMs: number, now: number): void {
    for (const [name, e] of this.entries) {
      if (e.expiresAt > now && this.entries.size < this.max) break;
      if (e.expiresAt > now) this.evicted++;
      this.entries.delete(name);
    }
    this.entries.set(channel + '\u0000' + key, { id, expiresAt: now + windowMs });
  }

  size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }
}
