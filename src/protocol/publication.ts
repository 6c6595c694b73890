/**
 * A publication: one message on one channel, as brokers carry it between nodes and wire formats encode it. It lives
 * here, at the bottom, because every layer speaks it: the broker delivers it, the hub fans it out, the codecs encode
 * it, and none of them may import another's module for it.
 */
import type { StreamPosition } from './message-id.js';

export interface Publication {
  readonly channel: string;
  readonly data: string;
  /**
   * `data` is JSON text: the publisher gave a JSON value that is not a string (docs/protocol.md "JSON data"). /ws,
   * and the streams that ask with `jsonData=1`, carry it as that value; /sub lines, SSE and /poll otherwise carry the
   * text as a string, exactly as before. Set only where true; a plain Redis PUBLISH is never JSON. Whoever sets it
   * guarantees valid JSON without CR or LF (so it cannot break an SSE event), see `jsonDataText`.
   */
  readonly json?: boolean;
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
