/**
 * Recently seen message ids per channel. Resume should never replay a message, but an at-least-once edge (a server
 * that sends history and live copies of one message around a reconnect) must not reach the application twice.
 * Bounded: only the last `window` ids of each channel are kept.
 *
 * An id is `<offset>-<epoch>` (docs/protocol.md, "Message ids and resume"), and ids are compared within one epoch
 * only: a message of another epoch starts the channel's memory afresh. When Redis rolls back, offsets are handed out
 * again; the server then starts a new epoch or sends `reload`, and the client calls forget(). Either way an id
 * remembered from before can no longer drop a new message (issue 13: 3,330 messages were dropped that way).
 */
interface Ring {
  readonly epoch: string;
  readonly set: Set<string>;
  readonly order: string[];
  head: number;
}

/** The epoch part of a message id; an id without one is its own epoch-less text. */
export function epochOf(id: string): string {
  const dash = id.indexOf('-');
  return dash < 0 ? '' : id.slice(dash + 1);
}

export class SeenIds {
  private readonly perChannel = new Map<string, Ring>();

  constructor(private readonly window: number) {}

  /** Record `id` on `channel`; false when it was already seen in the same epoch. */
  add(channel: string, id: string): boolean {
    if (this.window <= 0) return true;
    const epoch = epochOf(id);
    let ring = this.perChannel.get(channel);
    if (!ring || ring.epoch !== epoch) this.perChannel.set(channel, (ring = { epoch, set: new Set(), order: [], head: 0 }));
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

  /** Forget every id of `channel` (after a reload: what comes next is new, whatever its id). */
  forget(channel: string): void {
    this.perChannel.delete(channel);
  }

  /** Forget every channel's ids. */
  clear(): void {
    this.perChannel.clear();
  }
}
