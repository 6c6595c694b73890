/**
 * Recently seen message ids per channel. Resume should never replay a message, but an at-least-once edge (a server
 * that sends history and live copies of one message around a reconnect) must not reach the application twice.
 * Bounded: only the last `window` ids of each channel are kept.
 */
export class SeenIds {
  private readonly perChannel = new Map<string, { set: Set<string>; order: string[]; head: number }>();

  constructor(private readonly window: number) {}

  /** Record `id` on `channel`; false when it was already seen. */
  add(channel: string, id: string): boolean {
    if (this.window <= 0) return true;
    let ring = this.perChannel.get(channel);
    if (!ring) this.perChannel.set(channel, (ring = { set: new Set(), order: [], head: 0 }));
    if (ring.set.has(id)) return false;
    if (ring.order.length < this.window) ring.order.push(id);
    else {
      const old = ring.order[ring.head];
      if (old !== undefined) ring.set.delete(old);
      ring.order[ring.head] = id;
      ring.head = (ring.head + 1) % this.window;
    }
    ring.set.add(id);
    return true;
  }

  forget(channel: string): void {
    this.perChannel.delete(channel);
  }
}
