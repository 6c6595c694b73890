/**
 * A publication: one message on one channel, as brokers carry it between nodes and wire formats encode it. It lives
 * here, at the bottom, because every layer speaks it: the broker delivers it, the hub fans it out, the codecs encode
 * it, and none of them may import another's module for it.
 */
import type { StreamPosition } from './message-id.js';

export interface Publication {
  readonly channel: string;
  readonly data: string;
  /** Position in the channel's history, where the broker keeps one: orders the message within its channel. */
  readonly id?: string;
  /**
   * `id` parsed. Brokers may leave it out: the Hub fills it in once per message (see `withPosition`), so sessions
   * compare numbers and never parse per subscriber.
   */
  readonly position?: StreamPosition;
  /** Milliseconds since the epoch when the node received it. */
  readonly ts: number;
}
